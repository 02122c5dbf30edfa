// NeuralNetwork layer kernels against slow, obvious references or values
// worked out by hand, on the edge cases the spec names (padding kinds,
// strides, dilation, groups, rank-5 and ND inputs, broadcasting), and the
// NN executor's handling of inputs, image preprocessing and errors.
#include <cmath>
#include <random>

#include "absl/strings/match.h"
#include "execute/nn_executor.h"
#include "gtest/gtest.h"
#include "tests/execute/nn_test_util.h"

namespace coremlz::execute {
namespace {

using testing::Random;
using testing::RunLayer;
using testing::Wire;


void ExpectNear(absl::Span<const float> got, absl::Span<const float> want, float tol = 1e-4f) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << "element " << i;
}

// ---- convolution ----

struct ConvCase {
  int64_t batch, cin, h, w, cout, kh, kw, sh, sw, dh, dw, groups;
  enum { kValid, kSameBottomRight, kSameTopLeft } padding;
  int64_t pt, pb, pl, pr;  // valid padding amounts
};

// Direct loops over every output, input channel and kernel tap.
std::vector<float> ConvReference(const ConvCase& c, const Tensor& x, const std::vector<float>& w,
                                 const std::vector<float>& bias, int64_t* oh_out, int64_t* ow_out) {
  const int64_t keh = (c.kh - 1) * c.dh + 1, kew = (c.kw - 1) * c.dw + 1;
  int64_t pt = c.pt, pb = c.pb, pl = c.pl, pr = c.pr, oh, ow;
  if (c.padding == ConvCase::kValid) {
    oh = (c.h + pt + pb - keh) / c.sh + 1;
    ow = (c.w + pl + pr - kew) / c.sw + 1;
  } else {
    oh = (c.h + c.sh - 1) / c.sh;
    ow = (c.w + c.sw - 1) / c.sw;
    const int64_t th = std::max<int64_t>(0, (oh - 1) * c.sh + keh - c.h);
    const int64_t tw = std::max<int64_t>(0, (ow - 1) * c.sw + kew - c.w);
    const bool tl = c.padding == ConvCase::kSameTopLeft;
    pt = tl ? th - th / 2 : th / 2;
    pl = tl ? tw - tw / 2 : tw / 2;
  }
  *oh_out = oh;
  *ow_out = ow;
  const int64_t cin_g = c.cin / c.groups, cout_g = c.cout / c.groups;
  std::vector<float> y(c.batch * c.cout * oh * ow);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t o = 0; o < c.cout; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = bias.empty() ? 0 : bias[o];
          const int64_t g = o / cout_g;
          for (int64_t ic = 0; ic < cin_g; ++ic)
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                const int64_t yy = i * c.sh - pt + ky * c.dh, xx = j * c.sw - pl + kx * c.dw;
                if (yy < 0 || yy >= c.h || xx < 0 || xx >= c.w) continue;
                acc += x.floats()[((b * c.cin + g * cin_g + ic) * c.h + yy) * c.w + xx] *
                       w[((o * cin_g + ic) * c.kh + ky) * c.kw + kx];
              }
          y[((b * c.cout + o) * oh + i) * ow + j] = static_cast<float>(acc);
        }
  return y;
}

Wire ConvParams(const ConvCase& c, bool bias) {
  Wire p;
  p.Varint(1, c.cout).Varint(2, c.cin / c.groups).Varint(10, c.groups);
  p.Ints(20, {c.kh, c.kw}).Ints(30, {c.sh, c.sw}).Ints(40, {c.dh, c.dw});
  if (c.padding == ConvCase::kValid) {
    Wire amounts;
    amounts.Message(10, Wire().Varint(1, c.pt).Varint(2, c.pb)).Message(10, Wire().Varint(1, c.pl).Varint(2, c.pr));
    p.Message(50, Wire().Message(1, amounts));
  } else {
    p.Message(51, Wire().Varint(1, c.padding == ConvCase::kSameTopLeft ? 1 : 0));
  }
  if (bias) p.Varint(70, 1);
  return p;
}

TEST(NnConvolution, MatchesDirectLoopsOnPaddingStrideDilationGroups) {
  std::mt19937 rng(1);
  const ConvCase cases[] = {
      {1, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, ConvCase::kValid, 0, 0, 0, 0},
      {2, 4, 8, 6, 6, 3, 2, 2, 1, 1, 2, 2, ConvCase::kValid, 1, 2, 0, 3},
      {1, 6, 9, 9, 6, 3, 3, 2, 2, 1, 1, 6, ConvCase::kSameBottomRight},  // depthwise
      {1, 4, 10, 7, 8, 4, 4, 3, 2, 1, 1, 2, ConvCase::kSameTopLeft},     // odd padding: top-left heavy
      {1, 4, 10, 7, 8, 4, 4, 3, 2, 1, 1, 2, ConvCase::kSameBottomRight},
      {1, 2, 11, 13, 3, 3, 3, 1, 1, 3, 2, 1, ConvCase::kSameBottomRight},  // dilated
      {1, 3, 5, 5, 2, 1, 1, 1, 1, 1, 1, 1, ConvCase::kValid, 0, 0, 0, 0},  // 1x1
      // Large enough that the kernel runs in row bands.
      {1, 32, 61, 200, 3, 5, 5, 2, 1, 1, 1, 1, ConvCase::kSameBottomRight},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "cin " << c.cin << ", " << c.h << "x" << c.w << ", kernel " << c.kh << "x"
                                      << c.kw << ", stride " << c.sh << "x" << c.sw << ", dilation " << c.dh << "x"
                                      << c.dw << ", groups " << c.groups << ", padding " << c.padding);
    for (bool bias : {false, true}) {
      const Tensor x = Random(rng, {c.batch, c.cin, c.h, c.w});
      const Tensor wt = Random(rng, {c.cout * (c.cin / c.groups) * c.kh * c.kw});
      const std::vector<float> w(wt.floats().begin(), wt.floats().end());
      std::vector<float> b;
      if (bias) {
        const Tensor bt = Random(rng, {c.cout});
        b.assign(bt.floats().begin(), bt.floats().end());
      }
      std::map<std::string, std::vector<float>> weights = {{"weights", w}};
      if (bias) weights["bias"] = b;
      auto y = RunLayer("convolution", ConvParams(c, bias), {x}, weights);
      ASSERT_TRUE(y.ok()) << y.status();
      int64_t oh, ow;
      const std::vector<float> want = ConvReference(c, x, w, b, &oh, &ow);
      EXPECT_EQ(y->shape(), (Shape{c.batch, c.cout, oh, ow}));
      ExpectNear(y->floats(), want, 1e-3f);
    }
  }
}

TEST(NnConvolution, RankFiveInputKeepsItsLeadingAxes) {
  std::mt19937 rng(2);
  const ConvCase c{1, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, ConvCase::kSameBottomRight};
  Tensor x = Random(rng, {1, 1, 2, 5, 5});
  const Tensor wt = Random(rng, {3 * 2 * 9});
  const std::vector<float> w(wt.floats().begin(), wt.floats().end());
  auto y = RunLayer("convolution", ConvParams(c, false), {x}, {{"weights", w}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 1, 3, 5, 5}));
  x.Reshape({1, 2, 5, 5});
  int64_t oh, ow;
  ExpectNear(y->floats(), ConvReference(c, x, w, {}, &oh, &ow));
}

TEST(NnConvolution, WrongChannelCountIsRefused) {
  std::mt19937 rng(3);
  const ConvCase c{1, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, ConvCase::kValid, 0, 0, 0, 0};
  auto y = RunLayer("convolution", ConvParams(c, false), {Random(rng, {1, 3, 5, 5})},
                    {{"weights", std::vector<float>(3 * 2 * 9)}});
  EXPECT_EQ(y.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(y.status().message(), "test_layer")) << y.status();
}

// Deconvolution: every input pixel scatters its kernel into the full
// output, which the padding then crops.
TEST(NnConvolution, DeconvolutionMatchesScatterReference) {
  std::mt19937 rng(4);
  struct Case {
    int64_t cin, h, w, cout, k, s, groups;
    bool same;
    int64_t crop_t, crop_b, crop_l, crop_r;
  };
  for (const Case& c : {Case{3, 4, 5, 2, 3, 2, 1, false, 0, 0, 0, 0}, Case{4, 3, 3, 4, 4, 2, 2, false, 1, 1, 0, 2},
                        Case{2, 5, 4, 3, 3, 2, 1, true, 0, 0, 0, 0}}) {
    const Tensor x = Random(rng, {1, c.cin, c.h, c.w});
    const int64_t cout_g = c.cout / c.groups, cin_g = c.cin / c.groups;
    const Tensor wt = Random(rng, {c.cin * cout_g * c.k * c.k});
    const Tensor bt = Random(rng, {c.cout});
    const int64_t fh = (c.h - 1) * c.s + c.k, fw = (c.w - 1) * c.s + c.k;
    std::vector<double> full(c.cout * fh * fw, 0);
    for (int64_t ic = 0; ic < c.cin; ++ic)
      for (int64_t oc = 0; oc < cout_g; ++oc)
        for (int64_t i = 0; i < c.h; ++i)
          for (int64_t j = 0; j < c.w; ++j)
            for (int64_t ky = 0; ky < c.k; ++ky)
              for (int64_t kx = 0; kx < c.k; ++kx) {
                const int64_t o = (ic / cin_g) * cout_g + oc;
                full[(o * fh + i * c.s + ky) * fw + j * c.s + kx] +=
                    x.floats()[(ic * c.h + i) * c.w + j] * wt.floats()[((ic * cout_g + oc) * c.k + ky) * c.k + kx];
              }
    int64_t ct = c.crop_t, cl = c.crop_l, oh = fh - c.crop_t - c.crop_b, ow = fw - c.crop_l - c.crop_r;
    if (c.same) {
      oh = c.h * c.s, ow = c.w * c.s;
      ct = (fh - oh) / 2, cl = (fw - ow) / 2;
    }
    std::vector<float> want(c.cout * oh * ow);
    for (int64_t o = 0; o < c.cout; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j)
          want[(o * oh + i) * ow + j] = static_cast<float>(full[(o * fh + i + ct) * fw + j + cl] + bt.floats()[o]);
    Wire p;
    p.Varint(1, c.cout).Varint(2, c.cin).Varint(10, c.groups).Ints(20, {c.k, c.k}).Ints(30, {c.s, c.s});
    if (c.same) {
      p.Message(51, Wire());
    } else {
      Wire amounts;
      amounts.Message(10, Wire().Varint(1, c.crop_t).Varint(2, c.crop_b))
          .Message(10, Wire().Varint(1, c.crop_l).Varint(2, c.crop_r));
      p.Message(50, Wire().Message(1, amounts));
    }
    p.Varint(60, 1).Varint(70, 1);
    auto y = RunLayer("convolution", p, {x},
                      {{"weights", std::vector<float>(wt.floats().begin(), wt.floats().end())},
                       {"bias", std::vector<float>(bt.floats().begin(), bt.floats().end())}});
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_EQ(y->shape(), (Shape{1, c.cout, oh, ow}));
    ExpectNear(y->floats(), want);
  }
}

// ---- pooling ----

Tensor Iota(Shape shape, float start = 1) {
  std::vector<float> v(NumElements(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return Tensor::Float(std::move(shape), std::move(v));
}

Wire Pool(int type, std::vector<int64_t> k, std::vector<int64_t> s) {
  Wire p;
  p.Varint(1, type).Ints(10, k).Ints(20, s);
  return p;
}

TEST(NnPooling, ValidMaxAverageAndL2) {
  const Tensor x = Iota({1, 1, 4, 4});  // 1..16
  auto max = RunLayer("pooling", Pool(0, {2, 2}, {2, 2}).Message(30, Wire()), {x});
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(max->shape(), (Shape{1, 1, 2, 2}));
  ExpectNear(max->floats(), {6, 8, 14, 16});
  auto avg = RunLayer("pooling", Pool(1, {2, 2}, {2, 2}), {x});
  ASSERT_TRUE(avg.ok());
  ExpectNear(avg->floats(), {3.5, 5.5, 11.5, 13.5});
  auto l2 = RunLayer("pooling", Pool(2, {2, 2}, {2, 2}), {x});
  ASSERT_TRUE(l2.ok());
  ExpectNear(l2->floats(), {std::sqrt(1.f + 4 + 25 + 36), std::sqrt(9.f + 16 + 49 + 64),
                            std::sqrt(81.f + 100 + 169 + 196), std::sqrt(121.f + 144 + 225 + 256)});
}

TEST(NnPooling, SamePaddingAveragesIncludeOrExcludeThePadding) {
  const Tensor x = Iota({1, 3, 3});  // rank 3: [C, H, W]
  auto include = RunLayer("pooling", Pool(1, {3, 3}, {1, 1}).Message(31, Wire()), {x});
  ASSERT_TRUE(include.ok()) << include.status();
  EXPECT_EQ(include->shape(), (Shape{1, 3, 3}));
  // Corner: (1 + 2 + 4 + 5) over the 9 positions, padding counted.
  EXPECT_NEAR(include->floats()[0], 12.f / 9, 1e-5);
  EXPECT_NEAR(include->floats()[4], 45.f / 9, 1e-5);
  auto exclude = RunLayer("pooling", Pool(1, {3, 3}, {1, 1}).Message(31, Wire()).Varint(50, 1), {x});
  ASSERT_TRUE(exclude.ok());
  EXPECT_NEAR(exclude->floats()[0], 12.f / 4, 1e-5);
  EXPECT_NEAR(exclude->floats()[1], (1.f + 2 + 3 + 4 + 5 + 6) / 6, 1e-5);
  // Max never takes the zero padding: all-negative input keeps its values.
  std::vector<float> neg(9);
  for (int i = 0; i < 9; ++i) neg[i] = -1.f - i;
  auto max = RunLayer("pooling", Pool(0, {3, 3}, {1, 1}).Message(31, Wire()), {Tensor::Float({1, 3, 3}, neg)});
  ASSERT_TRUE(max.ok());
  ExpectNear(max->floats(), {-1, -1, -2, -1, -1, -2, -4, -4, -5});
}

TEST(NnPooling, ValidPaddingAmountsAndIncludeLastPixel) {
  const Tensor x = Iota({1, 1, 1, 5});  // one row: 1..5
  // Valid with 1 pixel of padding left and right: windows [-1,1), [1,3),
  // [3,5) for k = 2, s = 2.
  Wire amounts;
  amounts.Message(10, Wire()).Message(10, Wire().Varint(1, 1).Varint(2, 1));
  auto valid = RunLayer("pooling", Pool(1, {1, 2}, {1, 2}).Message(30, Wire().Message(1, amounts)), {x});
  ASSERT_TRUE(valid.ok()) << valid.status();
  EXPECT_EQ(valid->shape(), (Shape{1, 1, 1, 3}));
  ExpectNear(valid->floats(), {0.5, 2.5, 4.5});
  // includeLastPixel without padding: ceil((5 - 2) / 2) + 1 = 3 windows,
  // the last one holding the last pixel alone.
  auto last = RunLayer("pooling", Pool(0, {1, 2}, {1, 2}).Message(32, Wire()), {x});
  ASSERT_TRUE(last.ok()) << last.status();
  ExpectNear(last->floats(), {2, 4, 5});
  auto last_avg = RunLayer("pooling", Pool(1, {1, 2}, {1, 2}).Message(32, Wire()), {x});
  ASSERT_TRUE(last_avg.ok());
  ExpectNear(last_avg->floats(), {1.5, 3.5, 5});
  // With padding 1: ceil((5 + 2 - 2) / 2) + 1 = 4, but the fourth window
  // would start in the end padding, so 3: [-1,1), [1,3), [3,5).
  auto padded = RunLayer("pooling", Pool(0, {1, 2}, {1, 2}).Message(32, Wire().Ints(10, {0, 1})), {x});
  ASSERT_TRUE(padded.ok()) << padded.status();
  ExpectNear(padded->floats(), {1, 3, 5});
}

TEST(NnPooling, GlobalPooling) {
  const Tensor x = Iota({2, 3, 4});
  auto avg = RunLayer("pooling", Pool(1, {}, {}).Varint(60, 1), {x});
  ASSERT_TRUE(avg.ok()) << avg.status();
  EXPECT_EQ(avg->shape(), (Shape{2, 1, 1}));
  ExpectNear(avg->floats(), {6.5, 18.5});
  auto max = RunLayer("pooling", Pool(0, {}, {}).Varint(60, 1), {x});
  ASSERT_TRUE(max.ok());
  ExpectNear(max->floats(), {12, 24});
}

// ---- innerProduct, batchnorm, softmax ----

TEST(NnInnerProduct, EveryRankFoldsAsTheSpecSays) {
  std::mt19937 rng(5);
  const int64_t cin = 6, cout = 4;
  const Tensor wt = Random(rng, {cout * cin}), bt = Random(rng, {cout});
  const std::vector<float> w(wt.floats().begin(), wt.floats().end()), b(bt.floats().begin(), bt.floats().end());
  struct Case {
    Shape in, out;
  };
  for (const Case& c : {Case{{6}, {4}}, Case{{3, 6}, {3, 4}}, Case{{2, 3, 6}, {2, 3, 4}},
                        Case{{2, 6, 1, 1}, {2, 4, 1, 1}}, Case{{2, 3, 1, 2}, {2, 4, 1, 1}},
                        Case{{1, 2, 6, 1, 1}, {1, 2, 4, 1, 1}}, Case{{2, 1, 3, 1, 2}, {2, 1, 4, 1, 1}}}) {
    const Tensor x = Random(rng, c.in);
    auto y = RunLayer("innerProduct", Wire().Varint(1, cin).Varint(2, cout).Varint(10, 1), {x},
                      {{"weights", w}, {"bias", b}});
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_EQ(y->shape(), c.out);
    const int64_t rows = x.size() / cin;
    std::vector<float> want(rows * cout);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < cout; ++o) {
        double acc = b[o];
        for (int64_t i = 0; i < cin; ++i) acc += x.floats()[r * cin + i] * w[o * cin + i];
        want[r * cout + o] = static_cast<float>(acc);
      }
    ExpectNear(y->floats(), want);
  }
  auto wrong = RunLayer("innerProduct", Wire().Varint(1, cin).Varint(2, cout), {Random(rng, {5})}, {{"weights", w}});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NnBatchnorm, GivenAndComputedStatistics) {
  std::mt19937 rng(6);
  const Tensor x = Random(rng, {2, 3, 2, 2});
  const std::vector<float> gamma = {1.5, -0.5, 2}, beta = {0.1, 0.2, -0.3}, mean = {0.2, -0.1, 0}, var = {0.5, 2, 1};
  auto y = RunLayer("batchnorm", Wire().Varint(1, 3).Float(10, 1e-3f), {x},
                    {{"gamma", gamma}, {"beta", beta}, {"mean", mean}, {"variance", var}});
  ASSERT_TRUE(y.ok()) << y.status();
  std::vector<float> want(x.size());
  for (int64_t i = 0; i < x.size(); ++i) {
    const int64_t c = (i / 4) % 3;
    want[i] = gamma[c] * (x.floats()[i] - mean[c]) / std::sqrt(var[c] + 1e-3f) + beta[c];
  }
  ExpectNear(y->floats(), want);
  // Instance normalization: per image and channel, epsilon 1e-5 by default.
  auto inst =
      RunLayer("batchnorm", Wire().Varint(1, 3).Varint(5, 1).Varint(6, 1), {x}, {{"gamma", gamma}, {"beta", beta}});
  ASSERT_TRUE(inst.ok()) << inst.status();
  for (int64_t plane = 0; plane < 6; ++plane) {
    const int64_t c = plane % 3;
    double mu = 0, v = 0;
    for (int k = 0; k < 4; ++k) mu += x.floats()[plane * 4 + k] / 4.0;
    for (int k = 0; k < 4; ++k) v += std::pow(x.floats()[plane * 4 + k] - mu, 2) / 4.0;
    for (int k = 0; k < 4; ++k) {
      EXPECT_NEAR(inst->floats()[plane * 4 + k],
                  gamma[c] * (x.floats()[plane * 4 + k] - mu) / std::sqrt(v + 1e-5) + beta[c], 1e-4);
    }
  }
  // Batch statistics: per channel over both images.
  auto batch =
      RunLayer("batchnorm", Wire().Varint(1, 3).Varint(5, 1), {x}, {{"gamma", {1, 1, 1}}, {"beta", {0, 0, 0}}});
  ASSERT_TRUE(batch.ok());
  for (int c = 0; c < 3; ++c) {
    double sum = 0;
    for (int b = 0; b < 2; ++b)
      for (int k = 0; k < 4; ++k) sum += batch->floats()[(b * 3 + c) * 4 + k];
    EXPECT_NEAR(sum, 0, 1e-4);
  }
}

TEST(NnSoftmax, AlongTheChannelAxis) {
  std::mt19937 rng(7);
  const Tensor x = Random(rng, {1, 1, 4, 2, 3});
  auto y = RunLayer("softmax", Wire(), {x});
  ASSERT_TRUE(y.ok()) << y.status();
  for (int64_t i = 0; i < 6; ++i) {
    double denom = 0;
    for (int c = 0; c < 4; ++c) denom += std::exp(x.floats()[c * 6 + i]);
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(y->floats()[c * 6 + i], std::exp(x.floats()[c * 6 + i]) / denom, 1e-6);
  }
}

// ---- activation and unary ----

TEST(NnActivation, EveryNonlinearityWithItsParameters) {
  const std::vector<float> xs = {-3, -1, -0.25, 0, 0.5, 2};
  const Tensor x = Tensor::Float({1, 1, 6}, xs);
  struct Case {
    int field;
    Wire params;
    std::function<double(double)> f;
  };
  const Case cases[] = {
      {5, Wire().Float(1, 2).Float(2, 0.5), [](double v) { return 2 * v + 0.5; }},
      {10, Wire(), [](double v) { return std::max(v, 0.0); }},
      {15, Wire().Float(1, 0.1f), [](double v) { return v >= 0 ? v : 0.1 * v; }},
      {20, Wire().Float(1, 0.5), [](double v) { return v >= 0.5 ? v : 0; }},
      {30, Wire(), [](double v) { return std::tanh(v); }},
      {31, Wire().Float(1, 1.5).Float(2, 0.5), [](double v) { return 1.5 * std::tanh(0.5 * v); }},
      {40, Wire(), [](double v) { return 1 / (1 + std::exp(-v)); }},
      {41, Wire().Float(1, 0.2f).Float(2, 0.5), [](double v) { return std::min(std::max(0.2 * v + 0.5, 0.0), 1.0); }},
      {50, Wire().Float(1, 0.7f), [](double v) { return v >= 0 ? v : 0.7 * (std::exp(v) - 1); }},
      {60, Wire(), [](double v) { return v / (1 + std::fabs(v)); }},
      {70, Wire(), [](double v) { return std::log(1 + std::exp(v)); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    auto y = RunLayer("activation", Wire().Message(c.field, c.params), {x});
    ASSERT_TRUE(y.ok()) << y.status();
    for (size_t i = 0; i < xs.size(); ++i) EXPECT_NEAR(y->floats()[i], c.f(xs[i]), 1e-5) << xs[i];
  }
}

TEST(NnActivation, PerChannelParameters) {
  const Tensor x = Tensor::Float({2, 1, 2}, {-1, 2, -3, 4});  // [C=2, H=1, W=2]
  auto prelu = RunLayer("activation", Wire().Message(25, Wire()), {x}, {{"PReLU.alpha", {0.5, 0.1f}}});
  ASSERT_TRUE(prelu.ok()) << prelu.status();
  ExpectNear(prelu->floats(), {-0.5, 2, -0.3f, 4});
  auto shared = RunLayer("activation", Wire().Message(25, Wire()), {x}, {{"PReLU.alpha", {0.25}}});
  ASSERT_TRUE(shared.ok());
  ExpectNear(shared->floats(), {-0.25, 2, -0.75, 4});
  auto softplus = RunLayer("activation", Wire().Message(71, Wire()), {x},
                           {{"parametricSoftplus.alpha", {2, 1}}, {"parametricSoftplus.beta", {1, 0.5}}});
  ASSERT_TRUE(softplus.ok()) << softplus.status();
  ExpectNear(softplus->floats(),
             {static_cast<float>(2 * std::log1p(std::exp(-1.0))), static_cast<float>(2 * std::log1p(std::exp(2.0))),
              static_cast<float>(std::log1p(std::exp(-1.5))), static_cast<float>(std::log1p(std::exp(2.0)))});
  auto wrong = RunLayer("activation", Wire().Message(25, Wire()), {x}, {{"PReLU.alpha", {1, 2, 3}}});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NnActivation, UnknownNonlinearityIsUnimplemented) {
  auto y = RunLayer("activation", Wire().Message(99, Wire()), {Tensor::Float({1}, {1})});
  EXPECT_EQ(y.status().code(), absl::StatusCode::kUnimplemented) << y.status();
}

TEST(NnUnary, EveryOperationAfterScaleAndShift) {
  const std::vector<float> xs = {0.25, 1, 4};
  const Tensor x = Tensor::Float({3}, xs);
  struct Case {
    int op;
    std::function<double(double)> f;
  };
  // scale 2, shift 0.5, alpha 3, epsilon 1e-6 (default).
  const Case cases[] = {
      {0, [](double v) { return std::sqrt(v); }},   {1, [](double v) { return 1 / std::sqrt(v + 1e-6); }},
      {2, [](double v) { return 1 / (v + 1e-6); }}, {3, [](double v) { return std::pow(v, 3); }},
      {4, [](double v) { return std::exp(v); }},    {5, [](double v) { return std::log(v); }},
      {6, [](double v) { return std::fabs(v); }},   {7, [](double v) { return std::max(3.0, v); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    auto y = RunLayer("unary", Wire().Varint(1, c.op).Float(2, 3).Float(4, 0.5).Float(5, 2), {x});
    ASSERT_TRUE(y.ok()) << y.status();
    for (size_t i = 0; i < xs.size(); ++i)
      EXPECT_NEAR(y->floats()[i], c.f(2 * xs[i] + 0.5), 1e-3 * std::fabs(c.f(2 * xs[i] + 0.5)) + 1e-5);
  }
  // Scale 0 means 1 (unset); threshold as PoseNet's ReLU6 halves use it.
  auto threshold = RunLayer("unary", Wire().Varint(1, 7).Float(2, -6), {Tensor::Float({3}, {-8, -6, 1})});
  ASSERT_TRUE(threshold.ok());
  ExpectNear(threshold->floats(), {-6, -6, 1});
}

// ---- multi-input and broadcastable elementwise ----

TEST(NnElementwise, AddMultiplyAverageMaxMin) {
  const Tensor a = Iota({1, 2, 1, 2});                     // 1..4
  const Tensor b = Tensor::Float({1, 2, 1, 1}, {10, 20});  // per channel
  const Tensor c = Tensor::Float({1, 2, 1, 2}, {-1, 5, 0, 100});
  auto add = RunLayer("add", Wire(), {a, b, c});
  ASSERT_TRUE(add.ok()) << add.status();
  EXPECT_EQ(add->shape(), (Shape{1, 2, 1, 2}));
  ExpectNear(add->floats(), {10, 17, 23, 124});
  auto add_alpha = RunLayer("add", Wire().Float(1, 0.5), {a});
  ASSERT_TRUE(add_alpha.ok());
  ExpectNear(add_alpha->floats(), {1.5, 2.5, 3.5, 4.5});
  auto mul = RunLayer("multiply", Wire(), {a, b});
  ASSERT_TRUE(mul.ok());
  ExpectNear(mul->floats(), {10, 20, 60, 80});
  auto mul_alpha = RunLayer("multiply", Wire().Float(1, -2), {a});
  ASSERT_TRUE(mul_alpha.ok());
  ExpectNear(mul_alpha->floats(), {-2, -4, -6, -8});
  auto avg = RunLayer("average", Wire(), {a, c});
  ASSERT_TRUE(avg.ok());
  ExpectNear(avg->floats(), {0, 3.5, 1.5, 52});
  auto max = RunLayer("max", Wire(), {a, c});
  ASSERT_TRUE(max.ok());
  ExpectNear(max->floats(), {1, 5, 3, 100});
  auto min = RunLayer("min", Wire(), {a, c});
  ASSERT_TRUE(min.ok());
  ExpectNear(min->floats(), {-1, 2, 0, 4});
  EXPECT_FALSE(RunLayer("max", Wire(), {a}).ok()) << "max of one input";
  EXPECT_FALSE(RunLayer("add", Wire(), {a, Tensor::Float({3}, {1, 2, 3})}).ok()) << "shapes that do not broadcast";
}

TEST(NnElementwise, MinAndMaxBroadcastable) {
  const Tensor x = Tensor::Float({2, 3}, {-1, 5, 300, 0, 255, 256});
  const Tensor hi = Tensor::Float({1}, {255});
  auto clipped = RunLayer("minBroadcastable", Wire(), {x, hi});
  ASSERT_TRUE(clipped.ok()) << clipped.status();
  ExpectNear(clipped->floats(), {-1, 5, 255, 0, 255, 255});
  auto floor = RunLayer("maxBroadcastable", Wire(), {Tensor::Float({3, 1}, {0, 1, 2}), Tensor::Float({2}, {0.5, 1.5})});
  ASSERT_TRUE(floor.ok());
  EXPECT_EQ(floor->shape(), (Shape{3, 2}));
  ExpectNear(floor->floats(), {0.5, 1.5, 1, 1.5, 2, 2});
}

// ---- data movement ----

TEST(NnShape, FlattenChannelFirstAndLast) {
  const Tensor x = Iota({1, 2, 2, 2}, 0);  // [B, C, H, W]: c0 = 0..3, c1 = 4..7
  auto first = RunLayer("flatten", Wire(), {x});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->shape(), (Shape{1, 8, 1, 1}));
  ExpectNear(first->floats(), {0, 1, 2, 3, 4, 5, 6, 7});
  auto last = RunLayer("flatten", Wire().Varint(1, 1), {x});
  ASSERT_TRUE(last.ok());
  ExpectNear(last->floats(), {0, 4, 1, 5, 2, 6, 3, 7});
}

TEST(NnShape, TransposeAndPermute) {
  const Tensor x = Iota({2, 3, 4}, 0);
  auto t = RunLayer("transpose", Wire().Ints(1, {2, 0, 1}), {x});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape(), (Shape{4, 2, 3}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(t->floats()[(i * 2 + j) * 3 + k], (j * 3 + k) * 4 + i);
  EXPECT_FALSE(RunLayer("transpose", Wire().Ints(1, {0, 0, 1}), {x}).ok());
  // Permute [Seq, C, H, W] with [0, 3, 1, 2]: [Seq, B, W, C, H].
  const Tensor y = Iota({1, 1, 2, 3, 4}, 0);
  auto p = RunLayer("permute", Wire().Ints(1, {0, 3, 1, 2}), {y});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->shape(), (Shape{1, 1, 4, 2, 3}));
  EXPECT_EQ(p->floats()[(1 * 2 + 1) * 3 + 2], (1 * 3 + 2) * 4 + 1);  // w=1, c=1, h=2
}

TEST(NnShape, ReshapeChannelFirstAndLast) {
  const Tensor x = Iota({1, 1, 2, 1, 3}, 0);  // C=2, H=1, W=3
  auto first = RunLayer("reshape", Wire().Ints(1, {3, 2, 1}), {x});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->shape(), (Shape{1, 1, 3, 2, 1}));
  ExpectNear(first->floats(), {0, 1, 2, 3, 4, 5});
  // Channel last: read as H, W, C = [0, 3, 1, 4, 2, 5], laid out as
  // [H'=2, W'=1, C'=3] and permuted to [C', H', W'].
  auto last = RunLayer("reshape", Wire().Ints(1, {3, 2, 1}).Varint(2, 1), {x});
  ASSERT_TRUE(last.ok()) << last.status();
  ExpectNear(last->floats(), {0, 4, 3, 2, 1, 5});
}

TEST(NnShape, ReorganizeDataOrdersChannelsAsTheModeSays) {
  // [C=8, 1, 1] -> [2, 2, 2].
  const Tensor x = Iota({8, 1, 1}, 0);
  auto d2s = RunLayer("reorganizeData", Wire().Varint(1, 1).Varint(2, 2), {x});
  ASSERT_TRUE(d2s.ok()) << d2s.status();
  EXPECT_EQ(d2s->shape(), (Shape{2, 2, 2}));
  // Depth to space, block-major (TensorFlow): out[c, by, bx] = in[(by * 2 + bx) * 2 + c].
  ExpectNear(d2s->floats(), {0, 2, 4, 6, 1, 3, 5, 7});
  // Pixel shuffle, channel-major (PyTorch): out[c, by, bx] = in[c * 4 + by * 2 + bx].
  auto shuffle = RunLayer("reorganizeData", Wire().Varint(1, 2).Varint(2, 2), {x});
  ASSERT_TRUE(shuffle.ok());
  ExpectNear(shuffle->floats(), {0, 1, 2, 3, 4, 5, 6, 7});
  // Space to depth inverts depth to space, on a batch of rank-5 blobs.
  std::mt19937 rng(8);
  const Tensor big = Random(rng, {1, 2, 3, 4, 6});
  auto s2d = RunLayer("reorganizeData", Wire().Varint(1, 0).Varint(2, 2), {big});
  ASSERT_TRUE(s2d.ok()) << s2d.status();
  EXPECT_EQ(s2d->shape(), (Shape{1, 2, 12, 2, 3}));
  auto back = RunLayer("reorganizeData", Wire().Varint(1, 1).Varint(2, 2), {*s2d});
  ASSERT_TRUE(back.ok());
  ExpectNear(back->floats(), big.floats(), 0);
  EXPECT_FALSE(RunLayer("reorganizeData", Wire().Varint(1, 0).Varint(2, 2), {Iota({1, 3, 3})}).ok());
}

TEST(NnShape, ConcatAlongChannelsOrSequence) {
  const Tensor a = Iota({1, 1, 1, 2, 1}, 0), b = Iota({1, 1, 2, 2, 1}, 10);
  auto c = RunLayer("concat", Wire(), {a, b});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->shape(), (Shape{1, 1, 3, 2, 1}));
  ExpectNear(c->floats(), {0, 1, 10, 11, 12, 13});
  auto seq = RunLayer("concat", Wire().Varint(100, 1), {a, a});
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(seq->shape(), (Shape{2, 1, 1, 2, 1}));
  EXPECT_FALSE(RunLayer("concat", Wire(), {a, Iota({1, 1, 1, 3, 1})}).ok());
}

TEST(NnShape, Constants) {
  auto nd = RunLayer("loadConstantND", Wire().Ints(1, {2, 3}), {}, {{"data", {1, 2, 3, 4, 5, 6}}});
  ASSERT_TRUE(nd.ok()) << nd.status();
  EXPECT_EQ(nd->shape(), (Shape{2, 3}));
  auto rank5 = RunLayer("loadConstant", Wire().Ints(1, {1, 2, 3}), {}, {{"data", {1, 2, 3, 4, 5, 6}}});
  ASSERT_TRUE(rank5.ok());
  EXPECT_EQ(rank5->shape(), (Shape{1, 1, 1, 2, 3}));
  EXPECT_FALSE(RunLayer("loadConstantND", Wire().Ints(1, {4}), {}, {{"data", {1, 2}}}).ok());
}

// ---- the executor: inputs, image preprocessing, errors ----

namespace Spec = CoreML::Specification;

Spec::FeatureDescription* AddImageInput(Spec::Model* m, const std::string& name,
                                        Spec::ImageFeatureType::ColorSpace space, int64_t h, int64_t w) {
  auto* f = m->mutable_description()->add_input();
  f->set_name(name);
  auto* image = f->mutable_type()->mutable_imagetype();
  image->set_colorspace(space);
  image->set_height(h);
  image->set_width(w);
  return f;
}

void AddArrayOutput(Spec::Model* m, const std::string& name, std::vector<int64_t> shape) {
  auto* f = m->mutable_description()->add_output();
  f->set_name(name);
  auto* array = f->mutable_type()->mutable_multiarraytype();
  for (int64_t d : shape) array->add_shape(d);
}

// Serialized NeuralNetworkPreprocessing with a scaler.
std::string Scaler(const std::string& input, float scale, float blue, float green, float red, float gray) {
  Wire s;
  s.Float(10, scale).Float(20, blue).Float(21, green).Float(22, red).Float(30, gray);
  Wire p;
  if (!input.empty()) p.Bytes(1, input);
  p.Message(10, s);
  return p.str();
}

TEST(NnExecutor, ImagePreprocessingFollowsTheColourSpace) {
  for (auto space : {Spec::ImageFeatureType::RGB, Spec::ImageFeatureType::BGR}) {
    SCOPED_TRACE(space);
    Spec::Model m;
    m.set_specificationversion(1);
    AddImageInput(&m, "image", space, 1, 2);
    AddArrayOutput(&m, "out", {3, 1, 2});
    auto* nn = m.mutable_neuralnetwork();
    nn->add_preprocessing(Scaler("image", 0.5, /*blue=*/100, /*green=*/200, /*red=*/300, 0));
    testing::AddLayer(nn, "identity", {"image"}, "out", 130, Wire().Message(5, Wire().Float(1, 1)));
    auto ex = NnExecutor::Load(m);
    ASSERT_TRUE(ex.ok()) << ex.status();
    ASSERT_EQ((*ex)->inputs().size(), 1u);
    EXPECT_EQ((*ex)->inputs()[0].shape, (Shape{1, 3, 1, 2}));
    auto out = (*ex)->Run({{"image", Tensor::Float({1, 3, 1, 2}, {2, 4, 6, 8, 10, 12})}});
    ASSERT_TRUE(out.ok()) << out.status();
    const Tensor& y = out->at("out");
    EXPECT_EQ(y.shape(), (Shape{3, 1, 2}));
    // Channel 0 is red for RGB, blue for BGR.
    const float first = space == Spec::ImageFeatureType::RGB ? 300 : 100,
                last = space == Spec::ImageFeatureType::RGB ? 100 : 300;
    ExpectNear(y.floats(), {1 + first, 2 + first, 3 + 200, 4 + 200, 5 + last, 6 + last});
  }
}

TEST(NnExecutor, GrayscaleImageUnnamedPreprocessingAndRankFourMapping) {
  Spec::Model m;
  m.set_specificationversion(4);
  AddImageInput(&m, "pixels", Spec::ImageFeatureType::GRAYSCALE, 2, 2);
  AddArrayOutput(&m, "out", {});
  auto* nn = m.mutable_neuralnetwork();
  nn->set_imageinputshapemapping(1);  // rank 4: [1, 1, H, W]
  nn->add_preprocessing(Scaler("", 1.f / 255, 0, 0, 0, -0.5f));
  testing::AddLayer(nn, "identity", {"pixels"}, "out", 130, Wire().Message(5, Wire().Float(1, 1)));
  auto ex = NnExecutor::Load(m);
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto out = (*ex)->Run({{"pixels", Tensor::Float({1, 1, 2, 2}, {0, 51, 204, 255})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("out").shape(), (Shape{1, 1, 2, 2}));
  ExpectNear(out->at("out").floats(), {-0.5, -0.3f, 0.3f, 0.5});
}

TEST(NnExecutor, RankFiveArrayInputsAndWrongShapes) {
  Spec::Model m;
  m.set_specificationversion(1);
  auto* in = m.mutable_description()->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_multiarraytype()->add_shape(3);
  AddArrayOutput(&m, "y", {3});
  auto* nn = m.mutable_neuralnetwork();
  testing::AddLayer(nn, "softmax", {"x"}, "y", 175, Wire());
  auto ex = NnExecutor::Load(m);
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_EQ((*ex)->inputs()[0].shape, (Shape{3}));
  auto out = (*ex)->Run({{"x", Tensor::Float({3}, {0, 0, std::log(2.f)})}});
  ASSERT_TRUE(out.ok()) << out.status();  // softmax over C of [1, 1, 3, 1, 1]
  EXPECT_EQ(out->at("y").shape(), (Shape{3}));
  ExpectNear(out->at("y").floats(), {0.25, 0.25, 0.5});
  EXPECT_EQ((*ex)->Run({{"x", Tensor::Float({4}, {0, 0, 0, 0})}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*ex)->Run({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NnExecutor, UnimplementedLayerIsNamedWithItsIndex) {
  Spec::Model m;
  m.set_specificationversion(1);
  auto* in = m.mutable_description()->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_multiarraytype()->add_shape(3);
  AddArrayOutput(&m, "z", {3});
  auto* nn = m.mutable_neuralnetwork();
  testing::AddLayer(nn, "first", {"x"}, "y", 175, Wire());
  testing::AddLayer(nn, "norm", {"y"}, "z", 340, Wire());  // sequenceRepeat
  auto ex = NnExecutor::Load(m);
  ASSERT_EQ(ex.status().code(), absl::StatusCode::kUnimplemented) << ex.status();
  EXPECT_TRUE(absl::StrContains(ex.status().message(), "layer 1 'norm' (sequenceRepeat)")) << ex.status();
}

TEST(NnExecutor, ConvolutionWithWeightsAsASecondInputIsUnimplemented) {
  Spec::Model m;
  m.set_specificationversion(4);
  for (const char* name : {"x", "w"}) {
    auto* in = m.mutable_description()->add_input();
    in->set_name(name);
    in->mutable_type()->mutable_multiarraytype()->add_shape(1);
  }
  AddArrayOutput(&m, "y", {1});
  auto* nn = m.mutable_neuralnetwork();
  auto* conv = nn->add_layers();
  conv->set_name("dynamic");
  conv->add_input("x");
  conv->add_input("w");
  conv->add_output("y");
  conv->mutable_convolution()->set_outputchannels(1);
  conv->mutable_convolution()->set_kernelchannels(1);
  conv->mutable_convolution()->mutable_weights()->add_floatvalue(0);
  for (int i = 1; i < 9; ++i) conv->mutable_convolution()->mutable_weights()->add_floatvalue(0);
  auto ex = NnExecutor::Load(m);
  EXPECT_EQ(ex.status().code(), absl::StatusCode::kUnimplemented) << ex.status();
  EXPECT_TRUE(absl::StrContains(ex.status().message(), "'dynamic' (convolution)")) << ex.status();
}

TEST(NnExecutor, MalformedNetworksAreInvalid) {
  Spec::Model m;
  m.set_specificationversion(1);
  auto* in = m.mutable_description()->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_multiarraytype()->add_shape(3);
  AddArrayOutput(&m, "y", {3});
  auto* nn = m.mutable_neuralnetwork();
  testing::AddLayer(nn, "reads_nothing_known", {"nope"}, "y", 175, Wire());
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kInvalidArgument);
  nn->clear_layers();
  testing::AddLayer(nn, "ok", {"x"}, "other", 175, Wire());
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kInvalidArgument) << "output y is never produced";
  nn->clear_layers();
  auto* bad = nn->add_layers();
  bad->set_name("garbage");
  bad->add_input("x");
  bad->add_output("y");
  bad->GetReflection()->MutableUnknownFields(bad)->AddLengthDelimited(175, std::string("\xff\xff\xff", 3));
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::execute
