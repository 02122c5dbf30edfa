// libFuzzer target: evaluating every constexpr op of a program (both
// generations, chains) from a fuzzed spec and weight file. Shapes in a fuzzed
// program can claim enormous tensors; the decoder must refuse before
// allocating (libFuzzer's -malloc_limit_mb catches one that does not).
#include "engine/decompress.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz;
  auto in = fuzz::ParseProgramInput(data, size);
  if (!in) return 0;
  fuzz::MemoryValueReader reader(in->file.ok() ? &*in->file : nullptr);
  (void)engine::DecompressProgram(in->model.mlprogram(), &reader);
  return 0;
}
