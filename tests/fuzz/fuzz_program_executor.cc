// libFuzzer target: load and run an ML Program with the reference executor
// (the service runs models it was sent, for output checks). Any status is
// fine; a crash, a sanitizer report, a hang or an allocation past the limits
// is not. Tensors are capped far below the default so that every run is
// quick and small: what is tested is that every shape computed from program
// values is checked before it is allocated, not the kernels' speed.
#include "execute/program_executor.h"
#include "execute/synthetic_inputs.h"
#include "tests/fuzz/fuzz_support.h"

namespace {
const bool kSmallTensors = [] {
  coremlz::execute::SetMaxTensorElements(int64_t{1} << 14);
  return true;
}();
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz;
  auto in = fuzz::ParseProgramInput(data, size);
  if (!in) return 0;
  fuzz::MemoryValueReader reader(in->file.ok() ? &*in->file : nullptr);
  auto executor = execute::ProgramExecutor::Load(in->model.mlprogram(), &reader, "");
  if (!executor.ok()) return 0;
  auto specs = execute::DescribeInputs(in->model, **executor);
  if (!specs.ok()) return 0;
  execute::Session session;
  for (int run = 0; run < 2; ++run) {  // a second run reads the state the first wrote
    auto outputs = (*executor)->Run(execute::SyntheticInputs(*specs, 1, run), &session);
    if (!outputs.ok()) break;
  }
  return 0;
}
