// libFuzzer target: load and run a NeuralNetwork with the reference
// executor, the legacy format's counterpart of fuzz_program_executor (the
// service runs the .mlmodel files it was sent for output checks). Any status
// is fine; a crash, a sanitizer report, a hang or an allocation past the
// limits is not. Tensors are capped far below the default so that every run
// is quick: what is tested is that layer parameters, blob shapes and image
// preprocessing are checked before they are used.
#include <cstddef>
#include <cstdint>

#include "execute/nn_executor.h"
#include "execute/synthetic_inputs.h"
#include "format/package.h"
#include "tests/fuzz/fuzz_support.h"

namespace {
const bool kSmallTensors = [] {
  coremlz::execute::SetMaxTensorElements(int64_t{1} << 14);
  return true;
}();
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz;
  auto model = format::ParseModelSpec(absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!model.ok()) return 0;
  auto executor = execute::NnExecutor::Load(*model);
  if (!executor.ok()) return 0;
  auto specs = execute::DescribeInputs(*model, **executor);
  if (!specs.ok()) return 0;
  (void)(*executor)->Run(execute::SyntheticInputs(*specs, 1, 0));
  return 0;
}
