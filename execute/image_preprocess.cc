#include "execute/image_preprocess.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_wire.h"

namespace coremlz::execute {

namespace Spec = CoreML::Specification;

absl::StatusOr<int64_t> ImageChannels(const Spec::ImageFeatureType& image) {
  switch (image.colorspace()) {
    case Spec::ImageFeatureType::GRAYSCALE:
    case Spec::ImageFeatureType::GRAYSCALE_FLOAT16:
      return 1;
    case Spec::ImageFeatureType::RGB:
    case Spec::ImageFeatureType::BGR:
      return 3;
    default:
      return absl::InvalidArgumentError(absl::StrCat("image colour space ", image.colorspace(), " is not valid"));
  }
}

absl::StatusOr<ImagePreprocess> ReadImagePreprocess(
    const google::protobuf::RepeatedPtrField<std::string>& preprocessing, const std::string& input,
    const Spec::ImageFeatureType& image) {
  ASSIGN_OR_RETURN(const int64_t channels, ImageChannels(image));
  ImagePreprocess out;
  for (const std::string& bytes : preprocessing) {
    // NeuralNetworkPreprocessing { featureName = 1; oneof { scaler = 10;
    // meanImage = 11 } }
    ASSIGN_OR_RETURN(WireMessage entry, WireMessage::Parse(bytes));
    if (entry.Has(1) && entry.String(1) != input) continue;
    if (entry.Has(10)) {
      // NeuralNetworkImageScaler { channelScale = 10; blueBias = 20;
      // greenBias = 21; redBias = 22; grayBias = 30 }
      ASSIGN_OR_RETURN(WireMessage s, entry.Message(10));
      ImagePreprocess::Scaler scaler;
      scaler.scale = s.Float(10);
      const float blue = s.Float(20), green = s.Float(21), red = s.Float(22), gray = s.Float(30);
      if (channels == 1) {
        scaler.bias = {gray};
      } else if (image.colorspace() == Spec::ImageFeatureType::BGR) {
        scaler.bias = {blue, green, red};
      } else {
        scaler.bias = {red, green, blue};
      }
      out.scalers.push_back(std::move(scaler));
    }
    if (entry.Has(11)) {
      // NeuralNetworkMeanImage { repeated float meanImage = 1 }, [C, H, W].
      ASSIGN_OR_RETURN(WireMessage m, entry.Message(11));
      ASSIGN_OR_RETURN(std::vector<float> mean, m.Floats(1));
      if (static_cast<int64_t>(mean.size()) != channels * image.height() * image.width()) {
        return absl::InvalidArgumentError(absl::StrCat("the mean image of input '", input, "' has ", mean.size(),
                                                       " values; the image has ",
                                                       channels * image.height() * image.width()));
      }
      out.mean_images.push_back(std::move(mean));
    }
  }
  return out;
}

absl::Status ApplyImagePreprocess(const ImagePreprocess& preprocess, Tensor* pixels) {
  if (preprocess.scalers.empty() && preprocess.mean_images.empty()) return absl::OkStatus();
  const int64_t r = pixels->rank();
  if (r < 3) return absl::InvalidArgumentError("an image must have shape [.., C, H, W]");
  const int64_t c = pixels->dim(r - 3), plane = pixels->dim(r - 2) * pixels->dim(r - 1);
  auto v = pixels->mutable_floats();
  for (const ImagePreprocess::Scaler& s : preprocess.scalers) {
    if (static_cast<int64_t>(s.bias.size()) != c)
      return absl::InvalidArgumentError("the image has the wrong channel count");
    for (int64_t i = 0; i < pixels->size(); ++i) v[i] = s.scale * v[i] + s.bias[(i / plane) % c];
  }
  for (const std::vector<float>& mean : preprocess.mean_images) {
    const int64_t n = static_cast<int64_t>(mean.size());
    if (n != c * plane) return absl::InvalidArgumentError("the mean image does not match the image's size");
    for (int64_t i = 0; i < pixels->size(); ++i) v[i] -= mean[i % n];
  }
  return absl::OkStatus();
}

}  // namespace coremlz::execute
