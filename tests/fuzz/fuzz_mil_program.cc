// libFuzzer target: the ML Program walk with blob validation against a
// weight file (both from the input), and the graph validation.
#include "format/mil_program.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz;
  auto in = fuzz::ParseProgramInput(data, size);
  if (!in) return 0;
  (void)format::ListProgramWeights(in->model.mlprogram(), [&](const format::BlobRef& r) -> absl::StatusOr<format::BlobMetadata> {
    if (!in->file.ok()) return in->file.status();
    return in->file->Metadata(r.offset);
  }, /*include_small=*/true);
  (void)format::ValidateProgramGraph(in->model.mlprogram());
  return 0;
}
