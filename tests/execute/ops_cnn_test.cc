// The CNN ops added after the first round: depth_to_space / space_to_depth,
// pixel_shuffle / pixel_unshuffle, sliding_windows, upsample_bilinear,
// resize_nearest_neighbor, crop, local_response_norm, l2_pool,
// linear_activation, thresholded_relu, softplus_parametric and gru's iOS18
// reset_after / input_bias. Each against hand-computed small cases (values
// from the op definitions' own examples where they give them) and a slow
// reference written from the definition, never from the kernel.
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "op_test_util.h"

namespace coremlz::execute::testing {
namespace {

void ExpectValues(const Tensor& got, const Shape& shape, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_EQ(got.shape(), shape);
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got.AsDouble(i), want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

std::vector<double> Iota(int64_t n) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return v;
}

Tensor IotaFloat(Shape shape) {
  std::vector<float> v(NumElements(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::Float(std::move(shape), std::move(v));
}

absl::StatusCode Code(const absl::StatusOr<std::vector<Tensor>>& r) { return r.status().code(); }

// ---- depth_to_space, pixel_shuffle and their inverses ---------------------

TEST(RearrangeOps, BlockAndChannelOrderOnAHandExample) {
  // Eight channels of one pixel, block 2: two output channels of 2x2.
  Tensor x = IotaFloat({1, 8, 1, 1});
  // TensorFlow's DepthToSpace: the block offset is the major part of the
  // channel index, so output channel 0 takes channels 0, 2, 4, 6.
  auto d2s = RunOp("depth_to_space", {{"x", {x}}, {"block_size", {Tensor::IntScalar(2)}}});
  ASSERT_TRUE(d2s.ok()) << d2s.status();
  ExpectValues((*d2s)[0], {1, 2, 2, 2}, {0, 2, 4, 6, 1, 3, 5, 7});
  // PyTorch's PixelShuffle: the channel is major, so channel 0 takes 0..3.
  auto shuffle = RunOp("pixel_shuffle", {{"x", {x}}, {"upscale_factor", {Tensor::IntScalar(2)}}});
  ASSERT_TRUE(shuffle.ok()) << shuffle.status();
  ExpectValues((*shuffle)[0], {1, 2, 2, 2}, Iota(8));
}

TEST(RearrangeOps, MatchSlowScatterReferencesAndRoundTrip) {
  std::mt19937 rng(31);
  const int64_t n = 2, c = 3, h = 2, w = 3;
  for (int64_t b : {2, 3}) {
    SCOPED_TRACE(b);
    Tensor x = Random(rng, {n, c * b * b, h, w});
    // References scatter every input element to where the definitions put
    // it (the kernels gather instead).
    std::vector<double> d2s(x.size()), shuffle(x.size());
    const Shape out = {n, c, h * b, w * b};
    for (int64_t i = 0; i < x.size(); ++i) {
      const std::vector<int64_t> at = Unflat(x.shape(), i);
      const int64_t depth = at[1];
      {  // depth = (by * b + bx) * c + k
        const int64_t k = depth % c, by = depth / c / b, bx = depth / c % b;
        d2s[Flat(out, {at[0], k, at[2] * b + by, at[3] * b + bx})] = x.floats()[i];
      }
      {  // depth = k * b * b + by * b + bx
        const int64_t k = depth / (b * b), by = depth % (b * b) / b, bx = depth % b;
        shuffle[Flat(out, {at[0], k, at[2] * b + by, at[3] * b + bx})] = x.floats()[i];
      }
    }
    auto got_d2s = RunOp("depth_to_space", {{"x", {x}}, {"block_size", {Tensor::IntScalar(b)}}});
    auto got_shuffle = RunOp("pixel_shuffle", {{"x", {x}}, {"upscale_factor", {Tensor::IntScalar(b)}}});
    ASSERT_TRUE(got_d2s.ok() && got_shuffle.ok());
    ExpectValues((*got_d2s)[0], out, d2s, 0);
    ExpectValues((*got_shuffle)[0], out, shuffle, 0);
    const std::vector<double> original(x.floats().begin(), x.floats().end());
    auto s2d = RunOp("space_to_depth", {{"x", {(*got_d2s)[0]}}, {"block_size", {Tensor::IntScalar(b)}}});
    auto unshuffle = RunOp("pixel_unshuffle", {{"x", {(*got_shuffle)[0]}}, {"downscale_factor", {Tensor::IntScalar(b)}}});
    ASSERT_TRUE(s2d.ok() && unshuffle.ok());
    ExpectValues((*s2d)[0], x.shape(), original, 0);
    ExpectValues((*unshuffle)[0], x.shape(), original, 0);
  }
  // Channels not divisible by b^2, spatial dims not divisible by b, rank 3.
  Tensor odd = Random(rng, {1, 3, 2, 2});
  EXPECT_EQ(Code(RunOp("depth_to_space", {{"x", {odd}}, {"block_size", {Tensor::IntScalar(2)}}})),
            absl::StatusCode::kInvalidArgument);
  Tensor narrow = Random(rng, {1, 1, 3, 4});
  EXPECT_EQ(Code(RunOp("pixel_unshuffle", {{"x", {narrow}}, {"downscale_factor", {Tensor::IntScalar(2)}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("space_to_depth", {{"x", {Random(rng, {4, 2, 2})}}, {"block_size", {Tensor::IntScalar(2)}}})),
            absl::StatusCode::kInvalidArgument);
}

TEST(SlidingWindowsOp, WindowsAlongAnyAxis) {
  // The definition's shape: [*d0, (d - size) / stride + 1, size, *dn].
  auto r = RunOp("sliding_windows", {{"x", {IotaFloat({6})}}, {"axis", {Tensor::IntScalar(0)}},
                                     {"size", {Tensor::IntScalar(3)}}, {"stride", {Tensor::IntScalar(2)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectValues((*r)[0], {2, 3}, {0, 1, 2, 2, 3, 4});

  std::mt19937 rng(32);
  Tensor x = Random(rng, {2, 7, 3});
  auto mid = RunOp("sliding_windows", {{"x", {x}}, {"axis", {Tensor::IntScalar(-2)}}, {"size", {Tensor::IntScalar(2)}}});
  ASSERT_TRUE(mid.ok()) << mid.status();
  std::vector<double> want;
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t k = 0; k < 6; ++k)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t c = 0; c < 3; ++c) want.push_back(x.floats()[Flat(x.shape(), {a, k + j, c})]);
  ExpectValues((*mid)[0], {2, 6, 2, 3}, want, 0);
  // Integers move too; a window longer than the dim is refused.
  auto ints = RunOp("sliding_windows", {{"x", {Ints({5, 6, 7})}}, {"axis", {Tensor::IntScalar(0)}},
                                        {"size", {Tensor::IntScalar(2)}}});
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ((*ints)[0].dtype(), DType::kInt32);
  ExpectValues((*ints)[0], {2, 2}, {5, 6, 6, 7});
  EXPECT_EQ(Code(RunOp("sliding_windows", {{"x", {Ints({5, 6})}}, {"axis", {Tensor::IntScalar(0)}},
                                           {"size", {Tensor::IntScalar(3)}}})),
            absl::StatusCode::kInvalidArgument);
}

// ---- resizing ---------------------------------------------------------------

TEST(UpsampleBilinearOp, GridPointsOfTheDefinitionsExamples) {
  // upsample_bilinear's docstring: Xin = 2 on [0, 1]; the output values of
  // the input [0, 1] are the grid points themselves.
  Tensor x = Tensor::Float({1, 1, 2}, {0, 1});
  struct Case {
    double scale;
    bool align;
    std::vector<double> grid;
  };
  const Case cases[] = {
      {2.5, false, {0, 0.1, 0.5, 0.9, 1}},
      {2.5, true, {0, 0.25, 0.5, 0.75, 1}},
      {3, false, {0, 0, 1.0 / 3, 2.0 / 3, 1, 1}},
      {3, true, {0, 0.2, 0.4, 0.6, 0.8, 1}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.scale << " " << c.align);
    auto r = RunOp("upsample_bilinear", {{"x", {x}}, {"scale_factor_width", {Tensor::FloatScalar(c.scale)}},
                                         {"align_corners", {BoolScalar(c.align)}}});
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectValues((*r)[0], {1, 1, static_cast<int64_t>(c.grid.size())}, c.grid);
  }
  // Neither aligned corners nor half-pixel centres: i * in / out.
  auto legacy = RunOp("upsample_bilinear", {{"x", {x}}, {"scale_factor_width", {Tensor::FloatScalar(2)}},
                                            {"align_corners", {BoolScalar(false)}},
                                            {"half_pixel_centers", {BoolScalar(false)}}});
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  ExpectValues((*legacy)[0], {1, 1, 4}, {0, 0.5, 1, 1});
  EXPECT_EQ(Code(RunOp("upsample_bilinear", {{"x", {x}}, {"align_corners", {BoolScalar(true)}},
                                             {"half_pixel_centers", {BoolScalar(true)}}})),
            absl::StatusCode::kInvalidArgument);
}

TEST(UpsampleBilinearOp, TwoDimensionsInterpolateSeparably) {
  std::mt19937 rng(33);
  Tensor x = Random(rng, {2, 3, 4});
  auto r = RunOp("upsample_bilinear", {{"x", {x}}, {"scale_factor_height", {Tensor::FloatScalar(2)}},
                                       {"scale_factor_width", {Tensor::IntScalar(2)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  // align_corners (the default): grid i * (in - 1) / (out - 1).
  std::vector<double> want;
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t j = 0; j < 8; ++j) {
        const double gy = i * 2.0 / 5, gx = j * 3.0 / 7;
        const int64_t y0 = static_cast<int64_t>(gy), x0 = static_cast<int64_t>(gx);
        const int64_t y1 = std::min<int64_t>(y0 + 1, 2), x1 = std::min<int64_t>(x0 + 1, 3);
        auto v = [&](int64_t y, int64_t xx) { return static_cast<double>(x.floats()[(p * 3 + y) * 4 + xx]); };
        const double fy = gy - y0, fx = gx - x0;
        want.push_back((v(y0, x0) * (1 - fx) + v(y0, x1) * fx) * (1 - fy) + (v(y1, x0) * (1 - fx) + v(y1, x1) * fx) * fy);
      }
  ExpectValues((*r)[0], {2, 6, 8}, want);
}

TEST(ResizeNearestNeighborOp, HalfPixelCentres) {
  // Width 3 -> 5: input floor((i + 0.5) * 3 / 5) = 0, 0, 1, 2, 2; height 2 -> 1:
  // floor(0.5 * 2) = 1.
  Tensor x = Tensor::Float({1, 2, 3}, {10, 11, 12, 20, 21, 22});
  auto r = RunOp("resize_nearest_neighbor", {{"x", {x}}, {"target_size_height", {Tensor::IntScalar(1)}},
                                             {"target_size_width", {Tensor::IntScalar(5)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectValues((*r)[0], {1, 1, 5}, {20, 20, 21, 22, 22});
  // Integer upsampling repeats each pixel, like upsample_nearest_neighbor.
  std::mt19937 rng(34);
  Tensor y = Random(rng, {2, 2, 3});
  auto a = RunOp("resize_nearest_neighbor", {{"x", {y}}, {"target_size_height", {Tensor::IntScalar(4)}},
                                             {"target_size_width", {Tensor::IntScalar(9)}}});
  auto b = RunOp("upsample_nearest_neighbor", {{"x", {y}}, {"scale_factor_height", {Tensor::IntScalar(2)}},
                                               {"scale_factor_width", {Tensor::IntScalar(3)}}});
  ASSERT_TRUE(a.ok() && b.ok());
  ExpectValues((*a)[0], {2, 4, 9}, std::vector<double>((*b)[0].floats().begin(), (*b)[0].floats().end()), 0);
}

TEST(CropOp, RemovesTheGivenBorders) {
  Tensor x = IotaFloat({2, 1, 4, 5});
  auto r = RunOp("crop", {{"x", {x}}, {"crop_height", {Ints({1, 2})}}, {"crop_width", {Ints({2, 0})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  // Row 1 of each 4x5 plane, columns 2..4.
  ExpectValues((*r)[0], {2, 1, 1, 3}, {7, 8, 9, 27, 28, 29});
  EXPECT_EQ(Code(RunOp("crop", {{"x", {x}}, {"crop_height", {Ints({2, 2})}}, {"crop_width", {Ints({0, 0})}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("crop", {{"x", {x}}, {"crop_height", {Ints({1})}}, {"crop_width", {Ints({0, 0})}}})),
            absl::StatusCode::kInvalidArgument);
}

// ---- normalisation and pooling ---------------------------------------------

TEST(LocalResponseNormOp, MatchesTheFormulaWithPyTorchsWindow) {
  std::mt19937 rng(35);
  for (int64_t size : {1, 3, 4, 5}) {
    SCOPED_TRACE(size);
    Tensor x = Random(rng, {2, 6, 3, 2});
    const double alpha = 0.5, beta = 0.6, k = 1.5;
    auto r = RunOp("local_response_norm", {{"x", {x}}, {"size", {Tensor::IntScalar(size)}},
                                           {"alpha", {Tensor::FloatScalar(alpha)}}, {"beta", {Tensor::FloatScalar(beta)}},
                                           {"k", {Tensor::FloatScalar(k)}}});
    ASSERT_TRUE(r.ok()) << r.status();
    std::vector<double> want(x.size());
    for (int64_t i = 0; i < x.size(); ++i) {
      const std::vector<int64_t> at = Unflat(x.shape(), i);
      double sum = 0;
      // PyTorch pads size / 2 channels before and (size - 1) / 2 after.
      for (int64_t j = 0; j < 6; ++j) {
        if (j < at[1] - size / 2 || j > at[1] + (size - 1) / 2) continue;
        const double v = x.floats()[Flat(x.shape(), {at[0], j, at[2], at[3]})];
        sum += v * v;
      }
      want[i] = x.floats()[i] / std::pow(k + alpha / size * sum, beta);
    }
    ExpectValues((*r)[0], x.shape(), want);
  }
  // The defaults (alpha 1e-4, beta 0.75, k 1) on one channel.
  auto d = RunOp("local_response_norm", {{"x", {Tensor::Float({1, 1, 1}, {2})}}, {"size", {Tensor::IntScalar(1)}}});
  ASSERT_TRUE(d.ok());
  ExpectValues((*d)[0], {1, 1, 1}, {2 / std::pow(1 + 1e-4 * 4, 0.75)});
  EXPECT_EQ(Code(RunOp("local_response_norm", {{"x", {Tensor::Float({2, 2}, {1, 2, 3, 4})}}, {"size", {Tensor::IntScalar(1)}}})),
            absl::StatusCode::kInvalidArgument);
}

TEST(L2PoolOp, RootOfTheWindowsSumOfSquares) {
  std::mt19937 rng(36);
  Tensor x = Random(rng, {1, 2, 4, 5});
  auto r = RunOp("l2_pool", {{"x", {x}}, {"kernel_sizes", {Ints({2, 3})}}, {"strides", {Ints({2, 1})}},
                             {"pad_type", {Str("custom")}}, {"pad", {Ints({1, 0, 1, 1})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  // Padded 5x7: out (5 - 2) / 2 + 1 = 2 rows, (7 - 3) + 1 = 5 columns; the
  // padding contributes nothing.
  std::vector<double> want;
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t oy = 0; oy < 2; ++oy)
      for (int64_t ox = 0; ox < 5; ++ox) {
        double sq = 0;
        for (int64_t ky = 0; ky < 2; ++ky)
          for (int64_t kx = 0; kx < 3; ++kx) {
            const int64_t y = oy * 2 + ky - 1, xx = ox + kx - 1;
            if (y < 0 || y >= 4 || xx < 0 || xx >= 5) continue;
            const double v = x.floats()[Flat(x.shape(), {0, c, y, xx})];
            sq += v * v;
          }
        want.push_back(std::sqrt(sq));
      }
  ExpectValues((*r)[0], {1, 2, 2, 5}, want);
  // 1-D.
  auto one = RunOp("l2_pool", {{"x", {Tensor::Float({1, 1, 4}, {3, 4, 0, 2})}}, {"kernel_sizes", {Ints({2})}},
                               {"strides", {Ints({2})}}, {"pad_type", {Str("valid")}}});
  ASSERT_TRUE(one.ok()) << one.status();
  ExpectValues((*one)[0], {1, 1, 2}, {5, 2});
}

// ---- activations ------------------------------------------------------------

TEST(MoreActivationOps, LinearThresholdedReluAndParametricSoftplus) {
  Tensor x = Tensor::Float({1, 2, 3}, {-2, -0.5, 0, 0.5, 1, 40});
  auto lin = RunOp("linear_activation", {{"x", {x}}, {"alpha", {Tensor::FloatScalar(2)}}, {"beta", {Tensor::FloatScalar(-1)}}});
  ASSERT_TRUE(lin.ok());
  ExpectValues((*lin)[0], x.shape(), {-5, -2, -1, 0, 1, 79});
  auto thr = RunOp("thresholded_relu", {{"x", {x}}, {"alpha", {Tensor::FloatScalar(0.5)}}});
  ASSERT_TRUE(thr.ok());
  ExpectValues((*thr)[0], x.shape(), {0, 0, 0, 0.5, 1, 40});
  // Per channel (axis 1): alpha_c * log(1 + exp(beta_c * x)); 40 * 3 = 120
  // would overflow a naive exp in float.
  Tensor alpha = Tensor::Float({2}, {1.5, 0.5}), beta = Tensor::Float({2}, {2, 3});
  auto sp = RunOp("softplus_parametric", {{"x", {x}}, {"alpha", {alpha}}, {"beta", {beta}}});
  ASSERT_TRUE(sp.ok()) << sp.status();
  std::vector<double> want;
  for (int64_t i = 0; i < 6; ++i) {
    const int64_t c = i / 3;
    const double t = beta.floats()[c] * x.floats()[i];
    want.push_back(alpha.floats()[c] * (t > 30 ? t : std::log1p(std::exp(t))));
  }
  ExpectValues((*sp)[0], x.shape(), want);
  EXPECT_EQ(Code(RunOp("softplus_parametric", {{"x", {x}}, {"alpha", {Tensor::Float({3}, {1, 1, 1})}}, {"beta", {beta}}})),
            absl::StatusCode::kInvalidArgument);
}

// ---- gru, iOS18 -------------------------------------------------------------

double Sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

// PyTorch's GRU cell (torch.nn.GRU's documented equations) with gates
// stored in Core ML's [r, o(n), z] order: n = tanh(W_in x + b_in + r * (W_hn
// h + b_hn)) when reset_after, else tanh(W_in x + b_in + r * W_hn h + b_hn).
TEST(GruOp, ResetAfterAndInputBiasFollowPyTorchsCell) {
  std::mt19937 rng(37);
  const int64_t seq = 3, batch = 2, in = 3, hidden = 4;
  for (bool reset_after : {true, false}) {
    SCOPED_TRACE(reset_after);
    Tensor x = Random(rng, {seq, batch, in}), h0 = Random(rng, {batch, hidden});
    Tensor wih = Random(rng, {3 * hidden, in}), whh = Random(rng, {3 * hidden, hidden});
    Tensor b_i = Random(rng, {3 * hidden}), b_h = Random(rng, {3 * hidden});
    std::vector<double> h(h0.floats().begin(), h0.floats().end()), out(seq * batch * hidden);
    auto dot_x = [&](int64_t row, int64_t t, int64_t b) {
      double s = 0;
      for (int64_t i = 0; i < in; ++i) s += wih.floats()[row * in + i] * x.floats()[(t * batch + b) * in + i];
      return s;
    };
    auto dot_h = [&](int64_t row, int64_t b) {
      double s = 0;
      for (int64_t j = 0; j < hidden; ++j) s += whh.floats()[row * hidden + j] * h[b * hidden + j];
      return s;
    };
    for (int64_t t = 0; t < seq; ++t) {
      std::vector<double> next(h.size());
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t k = 0; k < hidden; ++k) {
          const int64_t r_row = k, n_row = hidden + k, z_row = 2 * hidden + k;
          const double r = Sigmoid(dot_x(r_row, t, b) + b_i.floats()[r_row] + dot_h(r_row, b) + b_h.floats()[r_row]);
          const double z = Sigmoid(dot_x(z_row, t, b) + b_i.floats()[z_row] + dot_h(z_row, b) + b_h.floats()[z_row]);
          const double gate_h = reset_after ? r * (dot_h(n_row, b) + b_h.floats()[n_row])
                                            : r * dot_h(n_row, b) + b_h.floats()[n_row];
          const double n = std::tanh(dot_x(n_row, t, b) + b_i.floats()[n_row] + gate_h);
          next[b * hidden + k] = (1 - z) * n + z * h[b * hidden + k];
        }
      h = next;
      std::copy(h.begin(), h.end(), out.begin() + t * batch * hidden);
    }
    Args args = {{"x", {x}}, {"initial_h", {h0}}, {"weight_ih", {wih}}, {"weight_hh", {whh}}, {"bias", {b_h}},
                 {"input_bias", {b_i}}, {"reset_after", {BoolScalar(reset_after)}}, {"output_sequence", {BoolScalar(true)}}};
    auto got = RunOp("gru", args, 18, 2);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectValues((*got)[0], {seq, batch, hidden}, out, 1e-4);
    ExpectValues((*got)[1], {batch, hidden}, h, 1e-4);
  }
}

}  // namespace
}  // namespace coremlz::execute::testing
