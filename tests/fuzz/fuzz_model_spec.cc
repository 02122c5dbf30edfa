// libFuzzer target: .mlmodel bytes -> Model spec -> NeuralNetwork weights
// (listing and decoding every storage form) or the ML Program walk.
#include <cstddef>
#include <cstdint>

#include "format/mil_program.h"
#include "format/neural_network_weights.h"
#include "format/package.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz::format;
  auto model = ParseModelSpec(absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!model.ok()) return 0;
  (void)SerializeModelSpec(*model);
  if (HasNeuralNetwork(*model)) {
    auto weights = ListNeuralNetworkWeights(&*model);
    if (weights.ok()) {
      for (const auto& w : *weights) (void)DecodeWeightParams(w);
    }
  }
  if (model->has_mlprogram()) {
    (void)ListProgramWeights(model->mlprogram(), [](const BlobRef&) -> absl::StatusOr<BlobMetadata> {
      return absl::NotFoundError("no weight file");
    });
  }
  return 0;
}
