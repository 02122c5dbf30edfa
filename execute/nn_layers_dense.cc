// NeuralNetwork innerProduct, batchnorm and softmax layers.
#include <algorithm>
#include <cmath>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Leading axes (batch), C = axis -3, and H * W, for the layers that work
// along the channel axis.
struct ChannelView {
  int64_t outer = 1, channels = 1, inner = 1;
};
absl::StatusOr<ChannelView> ChannelsOf(const Tensor& x, const NnLayerLabel& label) {
  if (x.rank() < 3 || !x.is_float()) return label.Invalid("expects a float input of rank >= 3");
  ChannelView v;
  for (int64_t i = 0; i + 3 < x.rank(); ++i) v.outer *= x.dim(i);
  v.channels = x.dim(x.rank() - 3);
  v.inner = x.dim(x.rank() - 2) * x.dim(x.rank() - 1);
  return v;
}

}  // namespace

absl::StatusOr<NnKernel> BuildInnerProduct(const NnLayerSpec& spec) {
  const int64_t in_channels = spec.params.Int(1), out_channels = spec.params.Int(2);
  ASSIGN_OR_RETURN(const Tensor* weights, spec.Weight("weights"));
  const Tensor* bias = spec.params.Bool(10) ? spec.OptionalWeight("bias") : nullptr;
  if (spec.params.Bool(10) && bias == nullptr) return spec.Invalid("hasBias is set but there is no bias");
  if (in_channels <= 0 || out_channels <= 0 || weights->size() != in_channels * out_channels) {
    return spec.Invalid("the weights do not match [outputChannels, inputChannels]");
  }
  if (bias != nullptr && bias->size() != out_channels) return spec.Invalid("bias must have outputChannels values");
  const NnLayerLabel label = spec;
  return NnKernel([=, weights = *weights, bias = bias ? *bias : Tensor()](
                      const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 1 || x.rank() > 5) return label.Invalid("expects a float input of rank 1 to 5");
    const Shape& d = x.shape();
    // How each rank folds into a matrix [rows, C_in], and the output shape
    // (NeuralNetwork.proto, InnerProductLayerParams).
    int64_t rows = 1, cols = 1;
    Shape out;
    switch (x.rank()) {
      case 1:
        rows = 1, cols = d[0], out = {out_channels};
        break;
      case 2:
        rows = d[0], cols = d[1], out = {d[0], out_channels};
        break;
      case 3:
        rows = d[0] * d[1], cols = d[2], out = {d[0], d[1], out_channels};
        break;
      case 4:
        rows = d[0], cols = d[1] * d[2] * d[3], out = {d[0], out_channels, 1, 1};
        break;
      default:
        rows = d[0] * d[1], cols = d[2] * d[3] * d[4], out = {d[0], d[1], out_channels, 1, 1};
        break;
    }
    if (cols != in_channels) {
      return label.Invalid(absl::StrCat("expects ", in_channels, " input channels, got ", cols));
    }
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    Eigen::Map<const RowMatrix> xm(x.floats().data(), rows, cols);
    Eigen::Map<const RowMatrix> wm(weights.floats().data(), out_channels, in_channels);
    Eigen::Map<RowMatrix> ym(y.mutable_floats().data(), rows, out_channels);
    ym.noalias() = xm * wm.transpose();
    if (bias.size() > 0) {
      ym.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.floats().data(), out_channels);
    }
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildBatchnorm(const NnLayerSpec& spec) {
  const int64_t channels = spec.params.Int(1);
  const bool compute_mean_var = spec.params.Bool(5);
  const bool instance = spec.params.Bool(6);
  float epsilon = spec.params.Float(10);
  if (epsilon == 0) epsilon = 1e-5f;  // "defaults to 1e-5 if not set or set to 0"
  ASSIGN_OR_RETURN(const Tensor* gamma, spec.Weight("gamma"));
  ASSIGN_OR_RETURN(const Tensor* beta, spec.Weight("beta"));
  const Tensor* mean = spec.OptionalWeight("mean");
  const Tensor* variance = spec.OptionalWeight("variance");
  if (!compute_mean_var && (mean == nullptr || variance == nullptr)) return spec.Invalid("has no mean or variance");
  for (const Tensor* t : {gamma, beta, mean, variance}) {
    if (t != nullptr && !(compute_mean_var && (t == mean || t == variance)) && t->size() != channels) {
      return spec.Invalid("gamma, beta, mean and variance must have `channels` values");
    }
  }
  const NnLayerLabel label = spec;
  return NnKernel(
      [=, gamma = *gamma, beta = *beta, mean = mean ? *mean : Tensor(), variance = variance ? *variance : Tensor()](
          const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
        const Tensor& x = *in[0];
        ASSIGN_OR_RETURN(ChannelView v, ChannelsOf(x, label));
        if (v.channels != channels)
          return label.Invalid(absl::StrCat("expects ", channels, " channels, got ", v.channels));
        Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
        const float* src = x.floats().data();
        float* dst = y.mutable_floats().data();
        // Normalizes the planes [first, last) of channel c with (mu, var).
        auto apply = [&](int64_t b, int64_t c, double mu, double var) {
          const double scale = gamma.floats()[c] / std::sqrt(var + epsilon);
          const double shift = beta.floats()[c] - mu * scale;
          const int64_t base = (b * channels + c) * v.inner;
          for (int64_t i = 0; i < v.inner; ++i) dst[base + i] = static_cast<float>(src[base + i] * scale + shift);
        };
        // Mean and (biased) variance of channel c over the batches [b0, b1).
        auto stats = [&](int64_t b0, int64_t b1, int64_t c, double* mu, double* var) {
          double sum = 0, sq = 0;
          for (int64_t b = b0; b < b1; ++b) {
            const float* p = src + (b * channels + c) * v.inner;
            for (int64_t i = 0; i < v.inner; ++i) sum += p[i];
          }
          const double n = static_cast<double>((b1 - b0) * v.inner);
          *mu = n > 0 ? sum / n : 0;
          for (int64_t b = b0; b < b1; ++b) {
            const float* p = src + (b * channels + c) * v.inner;
            for (int64_t i = 0; i < v.inner; ++i) sq += (p[i] - *mu) * (p[i] - *mu);
          }
          *var = n > 0 ? sq / n : 0;
        };
        for (int64_t c = 0; c < channels; ++c) {
          if (!compute_mean_var) {
            for (int64_t b = 0; b < v.outer; ++b) apply(b, c, mean.floats()[c], variance.floats()[c]);
          } else if (instance) {
            for (int64_t b = 0; b < v.outer; ++b) {
              double mu, var;
              stats(b, b + 1, c, &mu, &var);
              apply(b, c, mu, var);
            }
          } else {
            double mu, var;
            stats(0, v.outer, c, &mu, &var);
            for (int64_t b = 0; b < v.outer; ++b) apply(b, c, mu, var);
          }
        }
        return Outputs(std::move(y));
      });
}

absl::StatusOr<NnKernel> BuildSoftmax(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    ASSIGN_OR_RETURN(ChannelView v, ChannelsOf(x, label));
    Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
    const float* src = x.floats().data();
    float* dst = y.mutable_floats().data();
    for (int64_t b = 0; b < v.outer; ++b) {
      for (int64_t i = 0; i < v.inner; ++i) {
        const int64_t base = b * v.channels * v.inner + i;
        float peak = -INFINITY;
        for (int64_t c = 0; c < v.channels; ++c) peak = std::max(peak, src[base + c * v.inner]);
        double sum = 0;
        for (int64_t c = 0; c < v.channels; ++c) sum += std::exp(static_cast<double>(src[base + c * v.inner]) - peak);
        for (int64_t c = 0; c < v.channels; ++c) {
          dst[base + c * v.inner] =
              static_cast<float>(std::exp(static_cast<double>(src[base + c * v.inner]) - peak) / sum);
        }
      }
    }
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
