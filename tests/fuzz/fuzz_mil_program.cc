// libFuzzer target: the ML Program walk with blob validation against a
// weight file (both from the input).
#include "format/mil_program.h"
#include "format/package.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz;
  fuzz::SpecAndWeights in;
  if (!fuzz::Split(data, size, &in)) return 0;
  auto model = format::ParseModelSpec(in.spec, "model.mlmodel");
  if (!model.ok() || !model->has_mlprogram()) return 0;
  auto file = format::BlobStorageReader::Open(in.weights, "weight.bin");
  (void)format::ListProgramWeights(model->mlprogram(), [&](const format::BlobRef& r) -> absl::StatusOr<format::BlobMetadata> {
    if (!file.ok()) return file.status();
    return file->Metadata(r.offset);
  }, /*include_small=*/true);
  return 0;
}
