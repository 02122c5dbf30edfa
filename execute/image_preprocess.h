// Image inputs of a NeuralNetwork: how many channels an image feature has
// and the network's preprocessing of it (NeuralNetworkPreprocessing: a
// scaler, y = channelScale * x + per-channel bias, or a mean image to
// subtract). The executor takes images as float pixels [1, C, H, W] with the
// channels in the order the feature's colour space names them (BGR: blue
// first), which is also the order the biases apply in.
#ifndef COREMLZ_EXECUTE_IMAGE_PREPROCESS_H_
#define COREMLZ_EXECUTE_IMAGE_PREPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/model.pb.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// 1 for the grayscale colour spaces, 3 for RGB and BGR.
absl::StatusOr<int64_t> ImageChannels(const CoreML::Specification::ImageFeatureType& image);

struct ImagePreprocess {
  struct Scaler {
    float scale = 1;
    std::vector<float> bias;  // one per channel, in the image's channel order
  };
  // Applied in the order the network lists them.
  std::vector<Scaler> scalers;
  std::vector<std::vector<float>> mean_images;  // [C, H, W] each
};

// The preprocessing entries of `preprocessing` (NeuralNetwork's serialized
// NeuralNetworkPreprocessing messages) that apply to `input`: those naming
// it, and unnamed ones, which apply to the network's image input.
absl::StatusOr<ImagePreprocess> ReadImagePreprocess(
    const google::protobuf::RepeatedPtrField<std::string>& preprocessing, const std::string& input,
    const CoreML::Specification::ImageFeatureType& image);

// Preprocesses `pixels` ([.., C, H, W]) in place.
absl::Status ApplyImagePreprocess(const ImagePreprocess& preprocess, Tensor* pixels);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_IMAGE_PREPROCESS_H_
