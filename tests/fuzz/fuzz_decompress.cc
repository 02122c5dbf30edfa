// libFuzzer target: evaluating every constexpr op of a program (both
// generations, chains) from a fuzzed spec and weight file.
#include "engine/decompress.h"
#include "format/package.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz;
  fuzz::SpecAndWeights in;
  if (!fuzz::Split(data, size, &in)) return 0;
  auto model = format::ParseModelSpec(in.spec, "model.mlmodel");
  if (!model.ok() || !model->has_mlprogram()) return 0;
  auto file = format::BlobStorageReader::Open(in.weights, "weight.bin");
  fuzz::MemoryValueReader reader(file.ok() ? &*file : nullptr);
  // Shapes in a fuzzed program can claim enormous tensors; the decoder must
  // refuse before allocating. Cap what a single run may use.
  (void)engine::DecompressProgram(model->mlprogram(), &reader);
  return 0;
}
