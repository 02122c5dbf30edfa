// The NeuralNetwork layers added after the first round - lrn, l2normalize,
// mvn, scale, bias, reduce, padding, crop, upsample, slice, reshapeStatic,
// flattenTo2D, squeeze, expandDims, concatND, softmaxND, sliceStatic, clip,
// embedding(ND) - against values worked out by hand or slow references
// written from NeuralNetwork.proto's definitions. Parameters are written in
// wire form by the proto's field numbers.
#include <cmath>
#include <random>

#include "execute/nn_layer.h"
#include "gtest/gtest.h"
#include "tests/execute/nn_test_util.h"

namespace coremlz::execute {
namespace {

using testing::Random;
using testing::RunLayer;
using testing::Wire;


Tensor Iota(Shape shape) {
  std::vector<float> v(NumElements(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::Float(std::move(shape), std::move(v));
}

void Expect(const absl::StatusOr<Tensor>& got, const Shape& shape, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->shape(), shape);
  ASSERT_EQ(got->size(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got->floats()[i], want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

// BorderAmounts {[top, bottom], [left, right]} at `field`.
Wire Borders(int field, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  Wire amounts;
  amounts.Message(10, Wire().Varint(1, top).Varint(2, bottom)).Message(10, Wire().Varint(1, left).Varint(2, right));
  return Wire().Message(field, amounts);
}

// ---- normalisation ----

TEST(NnLrn, MatchesTheFormulaOverItsChannelWindow) {
  std::mt19937 rng(41);
  Tensor x = Random(rng, {1, 2, 5, 2, 3});
  const float alpha = 0.3f, beta = 0.8f, k = 2;
  for (int64_t size : {3, 4}) {
    SCOPED_TRACE(size);
    Wire p;
    p.Float(1, alpha).Float(2, beta).Varint(3, size).Float(4, k);
    std::vector<double> want(x.size());
    for (int64_t i = 0; i < x.size(); ++i) {
      const int64_t c = i / 6 % 5, base = i - c * 6;
      double sum = 0;
      for (int64_t j = std::max<int64_t>(0, c - size / 2); j <= std::min<int64_t>(4, c + (size - 1) / 2); ++j) {
        sum += static_cast<double>(x.floats()[base + j * 6]) * x.floats()[base + j * 6];
      }
      want[i] = x.floats()[i] / std::pow(k + alpha / size * sum, beta);
    }
    Expect(RunLayer("lrn", p, {x}), x.shape(), want);
  }
  // k unset defaults to 1.
  Expect(RunLayer("lrn", Wire().Float(1, 1).Float(2, 1).Varint(3, 1), {Tensor::Float({1, 1, 1}, {2})}), {1, 1, 1},
         {2.0 / (1 + 4)});
}

TEST(NnL2NormalizeAndMvn, PerItemAndPerChannel) {
  // One item [C=2, 1, 2]: x / sqrt(1 + 4 + 4 + 16 + eps).
  Tensor x = Tensor::Float({1, 2, 1, 2}, {1, 2, 2, 4});
  Expect(RunLayer("l2normalize", Wire(), {x}), x.shape(), {0.2, 0.4, 0.4, 0.8});
  // mvn per channel: each channel's two values become -1 and +1 (mean
  // removed, divided by the biased standard deviation).
  Wire per_channel;
  per_channel.Varint(2, 1);
  Expect(RunLayer("mvn", per_channel, {x}), x.shape(), {-1, 1, -1, 1}, 1e-4);
  // Across channels, mean only: mean of all four is 2.25.
  Wire across;
  across.Varint(1, 1);
  Expect(RunLayer("mvn", across, {x}), x.shape(), {-1.25, -0.25, -0.25, 1.75});
}

TEST(NnScaleAndBias, BroadcastOverChannelsAndPlanes) {
  Tensor x = Iota({2, 2, 1, 3});  // batch 2, C 2, H 1, W 3
  // Per channel scale [C], spatial bias [1, H, W].
  Wire p;
  p.Ints(1, {2}).Varint(3, 1).Ints(4, {1, 1, 3});
  std::vector<double> want;
  const double scale[2] = {2, -1}, bias[3] = {10, 20, 30};
  for (int64_t i = 0; i < 12; ++i) want.push_back(x.floats()[i] * scale[i / 3 % 2] + bias[i % 3]);
  Expect(RunLayer("scale", p, {x}, {{"scale", {2, -1}}, {"bias", {10, 20, 30}}}), x.shape(), want);
  // bias of the full [C, H, W].
  std::vector<double> with_bias;
  for (int64_t i = 0; i < 12; ++i) with_bias.push_back(x.floats()[i] + (i % 6) * 0.5);
  Expect(RunLayer("bias", Wire().Ints(1, {2, 1, 3}), {x}, {{"bias", {0, 0.5, 1, 1.5, 2, 2.5}}}), x.shape(), with_bias);
  // A shape that does not broadcast is refused.
  EXPECT_EQ(RunLayer("bias", Wire().Ints(1, {3}), {x}, {{"bias", {1, 2, 3}}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnReduce, EveryModeAlongItsAxes) {
  std::mt19937 rng(42);
  Tensor x = Random(rng, {2, 3, 2, 4});
  for (float& v : x.mutable_floats()) v = std::fabs(v) + 0.1f;  // LOGSUM needs positive values
  struct Axes {
    int code;
    bool c, h, w;
  };
  const Axes axes[] = {{0, true, true, true}, {1, false, true, true}, {2, true, false, false},
                       {3, false, true, false}, {4, false, false, true}};
  for (const Axes& a : axes) {
    for (int mode = 0; mode <= 9; ++mode) {
      if (mode == 9 && (a.code == 0 || a.code == 1)) continue;  // ARGMAX: C, H or W only
      SCOPED_TRACE(::testing::Message() << "axis " << a.code << " mode " << mode);
      const int64_t oc = a.c ? 1 : 3, oh = a.h ? 1 : 2, ow = a.w ? 1 : 4;
      std::vector<double> want;
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t c = 0; c < oc; ++c)
          for (int64_t i = 0; i < oh; ++i)
            for (int64_t j = 0; j < ow; ++j) {
              std::vector<double> v;
              for (int64_t cc = 0; cc < 3; ++cc)
                for (int64_t ii = 0; ii < 2; ++ii)
                  for (int64_t jj = 0; jj < 4; ++jj) {
                    if ((!a.c && cc != c) || (!a.h && ii != i) || (!a.w && jj != j)) continue;
                    v.push_back(x.floats()[((b * 3 + cc) * 2 + ii) * 4 + jj]);
                  }
              double r = mode == 2 ? 1 : 0;
              for (double e : v) {
                if (mode == 0 || mode == 1) r += e;
                if (mode == 2) r *= e;
                if (mode == 3) r += std::log(e + 1e-6);
                if (mode == 4 || mode == 6) r += e * e;
                if (mode == 5) r += std::fabs(e);
              }
              if (mode == 1) r /= v.size();
              if (mode == 6) r = std::sqrt(r);
              if (mode == 7) r = *std::max_element(v.begin(), v.end());
              if (mode == 8) r = *std::min_element(v.begin(), v.end());
              if (mode == 9) r = std::max_element(v.begin(), v.end()) - v.begin();
              want.push_back(r);
            }
      Expect(RunLayer("reduce", Wire().Varint(1, mode).Varint(3, a.code), {x}), {2, oc, oh, ow}, want, 1e-4);
    }
  }
  EXPECT_EQ(RunLayer("reduce", Wire().Varint(1, 9).Varint(3, 0), {x}).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- spatial ----

TEST(NnPadding, ConstantReflectionReplication) {
  Tensor x = Tensor::Float({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  Wire constant = Borders(10, 1, 0, 2, 1);
  constant.Message(1, Wire().Float(1, 9));
  Expect(RunLayer("padding", constant, {x}), {1, 3, 6},
         {9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9});
  Wire reflection = Borders(10, 1, 0, 2, 1);
  reflection.Message(2, Wire());
  // Rows: reflect row 1 above; columns: [c2 c1 | c0 c1 c2 | c1].
  Expect(RunLayer("padding", reflection, {x}), {1, 3, 6},
         {6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5});
  Wire replication = Borders(10, 0, 1, 1, 0);
  replication.Message(3, Wire());
  Expect(RunLayer("padding", replication, {x}), {1, 3, 4}, {1, 1, 2, 3, 4, 4, 5, 6, 4, 4, 5, 6});
  Wire too_far = Borders(10, 2, 0, 0, 0);
  too_far.Message(2, Wire());
  EXPECT_EQ(RunLayer("padding", too_far, {x}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NnCropAndSlice, RemoveBordersAndStride) {
  Tensor x = Iota({1, 2, 3, 4});
  Expect(RunLayer("crop", Borders(1, 1, 0, 1, 2), {x}), {1, 2, 2, 1}, {5, 9, 17, 21});
  // slice along W: [1, 4) by 2 -> columns 1 and 3.
  Expect(RunLayer("slice", Wire().Varint(1, 1).Varint(2, 4).Varint(3, 2).Varint(4, 2), {x}), {1, 2, 3, 2},
         {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
  // slice along C with a negative start: the last channel.
  Wire last;
  last.Varint(1, static_cast<uint64_t>(-1)).Varint(2, 2).Varint(4, 0);
  auto c = RunLayer("slice", last, {x});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->shape(), (Shape{1, 1, 3, 4}));
  EXPECT_EQ(c->floats()[0], 12);
}

TEST(NnUpsample, NearestAndBilinearGridModes) {
  Tensor x = Tensor::Float({1, 1, 2}, {0, 1});
  Expect(RunLayer("upsample", Wire().Ints(1, {1, 2}), {x}), {1, 1, 4}, {0, 0, 1, 1});
  // Bilinear grid points of the input [0, 1] for Xin = 2, Xout = 4.
  Expect(RunLayer("upsample", Wire().Ints(1, {1, 2}).Varint(5, 1).Varint(6, 1), {x}), {1, 1, 4},
         {0, 1.0 / 3, 2.0 / 3, 1});  // ALIGN_CORNERS_TRUE: i / 3
  Expect(RunLayer("upsample", Wire().Ints(1, {1, 2}).Varint(5, 1).Varint(6, 2), {x}), {1, 1, 4},
         {0, 0.25, 0.75, 1});  // ALIGN_CORNERS_FALSE: (i + 0.5) / 2 - 0.5
  Expect(RunLayer("upsample", Wire().Ints(1, {1, 2}).Varint(5, 1), {x}), {1, 1, 4},
         {0, 0.5, 1, 1});  // DEFAULT: i * (2 - 0.5) / 3
  // Both axes, nearest, on a rank-5 blob.
  Tensor y = Iota({1, 1, 1, 2, 2});
  Expect(RunLayer("upsample", Wire().Ints(1, {2, 2}), {y}), {1, 1, 1, 4, 4},
         {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3});
  Wire fractional;
  fractional.Float(7, 1.5f).Float(7, 1.5f);
  EXPECT_EQ(RunLayer("upsample", fractional, {x}).status().code(), absl::StatusCode::kUnimplemented);
}

// ---- ND ----

TEST(NnNdShape, ReshapeFlattenSqueezeExpand) {
  Tensor x = Iota({2, 3, 4});
  auto r = RunLayer("reshapeStatic", Wire().Ints(1, {4, static_cast<int64_t>(-1)}), {x});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->shape(), (Shape{4, 6}));
  // flattenTo2D's examples in the proto: (5, 5, 3) axis -2 -> (5, 15);
  // (2, 3, 2) axis -1 -> (6, 2); (5, 2) axis 0 -> (1, 10).
  EXPECT_EQ(RunLayer("flattenTo2D", Wire().Varint(1, static_cast<uint64_t>(-2)), {Iota({5, 5, 3})})->shape(), (Shape{5, 15}));
  EXPECT_EQ(RunLayer("flattenTo2D", Wire().Varint(1, static_cast<uint64_t>(-1)), {Iota({2, 3, 2})})->shape(), (Shape{6, 2}));
  EXPECT_EQ(RunLayer("flattenTo2D", Wire(), {Iota({5, 2})})->shape(), (Shape{1, 10}));
  Tensor ones = Iota({1, 3, 1, 2});
  EXPECT_EQ(RunLayer("squeeze", Wire().Ints(1, {0}), {ones})->shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(RunLayer("squeeze", Wire().Varint(2, 1), {ones})->shape(), (Shape{3, 2}));
  EXPECT_EQ(RunLayer("squeeze", Wire().Ints(1, {1}), {ones}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunLayer("expandDims", Wire().Ints(1, {0, -1}), {Iota({3, 2})})->shape(), (Shape{1, 3, 2, 1}));
  // The values never move.
  auto e = RunLayer("expandDims", Wire().Ints(1, {1}), {x});
  ASSERT_TRUE(e.ok());
  for (int64_t i = 0; i < x.size(); ++i) ASSERT_EQ(e->floats()[i], x.floats()[i]);
}

TEST(NnNdShape, ConcatSoftmaxAndSliceStatic) {
  Tensor a = Iota({2, 1, 2}), b = Tensor::Float({2, 2, 2}, {10, 11, 12, 13, 14, 15, 16, 17});
  Expect(RunLayer("concatND", Wire().Varint(1, static_cast<uint64_t>(-2)), {a, b}), {2, 3, 2},
         {0, 1, 10, 11, 12, 13, 2, 3, 14, 15, 16, 17});
  // softmaxND along axis 0.
  Tensor s = Tensor::Float({2, 2}, {0, 1, std::log(3.0f), 1});
  Expect(RunLayer("softmaxND", Wire(), {s}), {2, 2}, {0.25, 0.5, 0.75, 0.5});
  // sliceStatic on [3, 4]: rows 2..0 backwards, columns 1.. by 2; then the
  // same with row 1 squeezed.
  Tensor x = Iota({3, 4});
  Wire p;
  p.Ints(1, {2, 1}).Ints(3, {0, 0}).Ints(2, {0, 0}).Ints(4, {1, 1}).Ints(5, {-1, 2});
  Expect(RunLayer("sliceStatic", p, {x}), {3, 2}, {9, 11, 5, 7, 1, 3});
  Wire squeezed;
  squeezed.Ints(1, {1, 0}).Ints(3, {2, 4}).Ints(5, {1, 1}).Ints(6, {1, 0});
  Expect(RunLayer("sliceStatic", squeezed, {x}), {4}, {4, 5, 6, 7});
}

TEST(NnNdShape, ClipAndEmbedding) {
  Expect(RunLayer("clip", Wire().Float(1, -1).Float(2, 2), {Tensor::Float({4}, {-3, 0.5, 2, 5})}), {4}, {-1, 0.5, 2, 2});
  // Vocabulary 3, 2 outputs: weights [outputs, vocabulary].
  const std::map<std::string, std::vector<float>> w = {{"weights", {1, 2, 3, 4, 5, 6}}, {"bias", {0.5, -0.5}}};
  Expect(RunLayer("embeddingND", Wire().Varint(1, 3).Varint(2, 2).Varint(3, 1), {Tensor::Float({2, 1}, {2, 0})}, w),
         {2, 2}, {3.5, 5.5, 1.5, 3.5});
  Expect(RunLayer("embedding", Wire().Varint(1, 3).Varint(2, 2), {Tensor::Float({1, 1, 1, 1, 1}, {1})}, w),
         {1, 1, 2, 1, 1}, {2, 5});
  EXPECT_EQ(RunLayer("embeddingND", Wire().Varint(1, 3).Varint(2, 2), {Tensor::Float({1, 1}, {3})}, w).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::execute
