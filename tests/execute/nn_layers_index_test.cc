// The NeuralNetwork resampling and indexing layers that Apple's gallery and
// older converter output use: resizeBilinear, cropResize, gatherND,
// scatter / scatterND / scatterAlongAxis, sliceDynamic, sliceBySize,
// reverseSeq, slidingWindows, constantPad's two-input form,
// categoricalDistribution and the random fills, each against a slow
// reference written in
// the test from NeuralNetwork.proto's definitions (element by element, with
// no code shared with the kernels), over every mode the layer has; malformed
// parameters or inputs are INVALID_ARGUMENT and forms the executor does not
// run are UNIMPLEMENTED naming the layer.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <random>
#include <tuple>

#include "absl/strings/match.h"
#include "coreml/model.pb.h"
#include "execute/nn_executor.h"
#include "execute/nn_layer.h"
#include "gtest/gtest.h"
#include "tests/execute/nn_test_util.h"

namespace coremlz::execute {
namespace {

using testing::Random;
using testing::RunLayer;
using testing::Wire;

void ExpectClose(const absl::StatusOr<Tensor>& got, const Tensor& want, double tol = 1e-5) {
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->shape(), want.shape());
  for (int64_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got->floats()[i], want.floats()[i], tol * std::max(1.0f, std::fabs(want.floats()[i])))
        << "element " << i;
  }
}

absl::StatusCode Code(const absl::StatusOr<Tensor>& t) { return t.status().code(); }

// True when `t` failed UNIMPLEMENTED with a message naming the test layer.
bool UnimplementedNamingLayer(const absl::StatusOr<Tensor>& t, const std::string& type) {
  return t.status().code() == absl::StatusCode::kUnimplemented &&
         absl::StrContains(t.status().message(), "'test_layer' (" + type + ")");
}

std::vector<int64_t> Unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) idx[d] = i % s[d], i /= s[d];
  return idx;
}

int64_t Ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t at = 0;
  for (size_t d = 0; d < s.size(); ++d) at = at * s[d] + idx[d];
  return at;
}

Tensor Floats(Shape shape, std::vector<float> v) { return Tensor::Float(std::move(shape), std::move(v)); }

// Whole-number indices in [-n, n) as floats.
Tensor RandomIndices(std::mt19937& rng, Shape shape, int64_t n) {
  std::uniform_int_distribution<int64_t> u(-n, n - 1);
  std::vector<float> v(NumElements(shape));
  for (float& x : v) x = static_cast<float>(u(rng));
  return Tensor::Float(std::move(shape), std::move(v));
}

int64_t Wrap(float v, int64_t n) { return v < 0 ? static_cast<int64_t>(v) + n : static_cast<int64_t>(v); }

// ---- bilinear sampling references ----

// numpy.linspace(start, end, n) (start alone for n = 1).
std::vector<double> Linspace(double start, double end, int64_t n) {
  std::vector<double> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(n == 1 ? start : start + (end - start) * i / (n - 1));
  return p;
}

// SamplingMode's grid of n points over [0, x - 1], as the proto words it.
std::vector<double> ProtoGrid(int mode, int64_t x, int64_t n) {
  std::vector<double> p;
  const double X = static_cast<double>(x), N = static_cast<double>(n);
  if (mode == 0) {
    p = Linspace(0, X - 1, n);
  } else if (mode == 1) {
    p = n == 1 ? std::vector<double>{(X - 1) / 2} : Linspace(0, X - 1, n);
  } else if (mode == 2) {
    p = Linspace(0, X - X / N, n);
  } else {
    const double spacing = std::max(1.0, X - 1) / N, start = 0.5 * spacing;
    p = Linspace(start, start + (N - 1) * spacing, n);
  }
  for (double& v : p) v = std::min(X - 1, std::max(0.0, v));
  return p;
}

// Plane (h x w at `src`) at (y, x): the four neighbours weighted by their
// distances; 0 outside the plane.
double Sample(const float* src, int64_t h, int64_t w, double y, double x) {
  if (y < 0 || x < 0 || y > h - 1 || x > w - 1) return 0;
  double sum = 0;
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      const double wy = std::max(0.0, 1 - std::fabs(y - r)), wx = std::max(0.0, 1 - std::fabs(x - c));
      sum += wy * wx * src[r * w + c];
    }
  return sum;
}

Wire Mode(int m) { return Wire().Varint(1, m); }

TEST(NnResizeBilinear, EveryModeMatchesTheProtoGrids) {
  std::mt19937 rng(11);
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{1, 1, 2, 1, 6}, Shape{3, 1, 1}}) {
    const Tensor x = Random(rng, shape);
    const int64_t r = x.rank(), h = x.dim(r - 2), w = x.dim(r - 1), planes = x.size() / (h * w);
    for (int mode = 0; mode < 4; ++mode)
      for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {8, 2}, {h, w}}) {
        SCOPED_TRACE(::testing::Message() << "shape rank " << r << " mode " << mode << " " << oh << "x" << ow);
        Shape out_shape = shape;
        out_shape[r - 2] = oh, out_shape[r - 1] = ow;
        std::vector<float> want;
        const std::vector<double> gy = ProtoGrid(mode, h, oh), gx = ProtoGrid(mode, w, ow);
        for (int64_t p = 0; p < planes; ++p)
          for (double yy : gy)
            for (double xx : gx)
              want.push_back(static_cast<float>(Sample(x.floats().data() + p * h * w, h, w, yy, xx)));
        ExpectClose(RunLayer("resizeBilinear", Wire().Ints(1, {oh, ow}).Message(2, Mode(mode)), {x}),
                    Floats(out_shape, want));
      }
  }
  // No targetSize is [1, 1]; no mode is STRICT_ALIGN_ENDPOINTS (the corner).
  const Tensor x = Random(rng, {2, 3, 3});
  ExpectClose(RunLayer("resizeBilinear", Wire(), {x}), Floats({2, 1, 1}, {x.floats()[0], x.floats()[9]}));
}

TEST(NnResizeBilinear, MalformedIsInvalid) {
  const Tensor x = Tensor::Zeros(DType::kFloat32, {1, 4, 4});
  EXPECT_EQ(Code(RunLayer("resizeBilinear", Wire().Ints(1, {2, 2, 2}), {x})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("resizeBilinear", Wire().Ints(1, {0, 2}), {x})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("resizeBilinear", Wire().Ints(1, {2, 2}).Message(2, Mode(4)), {x})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("resizeBilinear", Wire().Ints(1, {2, 2}), {Tensor::Zeros(DType::kFloat32, {4, 4})})),
            absl::StatusCode::kInvalidArgument);  // rank < 3
  EXPECT_EQ(Code(RunLayer("resizeBilinear", Wire().Ints(1, {1 << 20, 1 << 20}), {x})),
            absl::StatusCode::kResourceExhausted);  // past the tensor size limit
}

// A box in the proto's four BoxCoordinatesMode layouts.
std::vector<float> BoxIn(int mode, double y0, double x0, double y1, double x1) {
  switch (mode) {
    case 0:
      return {float(y0), float(x0), float(y1), float(x1)};
    case 1:
      return {float(x0), float(y0), float(x1), float(y1)};
    case 2:
      return {float((y0 + y1) / 2), float((x0 + x1) / 2), float(y1 - y0), float(x1 - x0)};
    default:
      return {float((x0 + x1) / 2), float((y0 + y1) / 2), float(x1 - x0), float(y1 - y0)};
  }
}

struct CropCase {
  int box_mode, sampling;
  bool normalized;
  int64_t k;  // 4, or 5 with a batch index first
  double scale;
  int64_t th, tw;
};

// Box i's corners [y0, x0, y1, x1] read back from its row of `roi` in the
// case's layout.
std::array<double, 4> Corners(const CropCase& cs, const std::vector<float>& roi, int64_t i) {
  const float* v = roi.data() + i * cs.k + (cs.k - 4);
  switch (cs.box_mode) {
    case 0:
      return {v[0], v[1], v[2], v[3]};
    case 1:
      return {v[1], v[0], v[3], v[2]};
    case 2:
      return {v[0] - v[2] / 2.0, v[1] - v[3] / 2.0, v[0] + v[2] / 2.0, v[1] + v[3] / 2.0};
    default:
      return {v[1] - v[3] / 2.0, v[0] - v[2] / 2.0, v[1] + v[3] / 2.0, v[0] + v[2] / 2.0};
  }
}

// cropResize of x [1, b, c, h, w] by `roi` as the proto words it: each
// box's corners scaled to pixels, linspace over the box (its start under
// STRICT_ALIGN_ENDPOINTS, its centre under ALIGN_ENDPOINTS for one point),
// sampled bilinear with 0 outside the image.
Tensor CropResizeReference(const Tensor& x, const std::vector<float>& roi, const CropCase& cs) {
  const int64_t b = x.dim(1), c = x.dim(2), h = x.dim(3), w = x.dim(4);
  const int64_t n = static_cast<int64_t>(roi.size()) / cs.k;
  const double sy = cs.scale * (cs.normalized ? h - 1 : 1), sx = cs.scale * (cs.normalized ? w - 1 : 1);
  std::vector<float> want;
  for (int64_t i = 0; i < n; ++i) {
    const auto [y0, x0, y1, x1] = Corners(cs, roi, i);
    std::vector<double> py = Linspace(y0 * sy, y1 * sy, cs.th), px = Linspace(x0 * sx, x1 * sx, cs.tw);
    if (cs.sampling == 1 && cs.th == 1) py = {(y0 + y1) / 2 * sy};
    if (cs.sampling == 1 && cs.tw == 1) px = {(x0 + x1) / 2 * sx};
    for (int64_t image = 0; image < b; ++image) {
      if (cs.k == 5 && image != static_cast<int64_t>(roi[i * cs.k])) continue;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* plane = x.floats().data() + (image * c + ch) * h * w;
        for (double yy : py) {
          for (double xx : px) want.push_back(static_cast<float>(Sample(plane, h, w, yy, xx)));
        }
      }
    }
  }
  return Floats({n, cs.k == 5 ? 1 : b, c, cs.th, cs.tw}, want);
}

TEST(NnCropResize, EveryBoxModeNormalizationAndSamplingMode) {
  std::mt19937 rng(12);
  const int64_t b = 2, c = 3, h = 5, w = 6;
  const Tensor x = Random(rng, {1, b, c, h, w});
  // Corners (height first) in pixels; the last box reaches past the image.
  const std::vector<std::array<double, 4>> corners = {{0, 0, 4, 5}, {1, 0.5, 3.5, 2}, {2, 3, 2, 3}, {-1, 4, 4.5, 7}};
  const int64_t n = static_cast<int64_t>(corners.size());
  std::vector<CropCase> cases;
  for (int box_mode = 0; box_mode < 4; ++box_mode)
    for (int sampling : {0, 1})
      for (bool normalized : {false, true})
        for (int64_t k : {4, 5})
          for (double scale : {1.0, 0.5})
            for (int64_t size : {1, 3}) cases.push_back({box_mode, sampling, normalized, k, scale, size, size + 1});
  for (const CropCase& cs : cases) {
    SCOPED_TRACE(::testing::Message() << "boxMode " << cs.box_mode << " mode " << cs.sampling << " normalized "
                                      << cs.normalized << " k " << cs.k << " scale " << cs.scale << " " << cs.th);
    std::vector<float> roi;
    for (int64_t i = 0; i < n; ++i) {
      auto [y0, x0, y1, x1] = corners[i];
      if (cs.normalized) y0 /= h - 1, y1 /= h - 1, x0 /= w - 1, x1 /= w - 1;
      if (cs.k == 5) roi.push_back(static_cast<float>(i % b));
      for (float v : BoxIn(cs.box_mode, y0, x0, y1, x1)) roi.push_back(v);
    }
    Wire params = Wire()
                      .Ints(1, {cs.th, cs.tw})
                      .Varint(2, cs.normalized)
                      .Message(3, Mode(cs.sampling))
                      .Message(4, Mode(cs.box_mode));
    if (cs.scale != 1.0) params.Float(5, static_cast<float>(cs.scale));
    ExpectClose(RunLayer("cropResize", params, {x, Floats({n, 1, cs.k, 1, 1}, roi)}), CropResizeReference(x, roi, cs));
  }
}

TEST(NnCropResize, MalformedIsInvalidAndOtherSamplingUnimplemented) {
  const Tensor x = Tensor::Zeros(DType::kFloat32, {1, 2, 1, 4, 4});
  const Tensor roi = Floats({1, 1, 4, 1, 1}, {0, 0, 3, 3});
  const Wire ok = Wire().Ints(1, {2, 2});
  ASSERT_TRUE(RunLayer("cropResize", ok, {x, roi}).ok());
  EXPECT_TRUE(UnimplementedNamingLayer(RunLayer("cropResize", Wire().Message(3, Mode(2)), {x, roi}), "cropResize"));
  EXPECT_TRUE(UnimplementedNamingLayer(RunLayer("cropResize", Wire().Message(3, Mode(3)), {x, roi}), "cropResize"));
  EXPECT_EQ(Code(RunLayer("cropResize", Wire().Message(3, Mode(5)), {x, roi})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("cropResize", Wire().Message(4, Mode(4)), {x, roi})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("cropResize", Wire().Ints(1, {2}), {x, roi})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("cropResize", ok, {Tensor::Zeros(DType::kFloat32, {2, 1, 4, 4}), roi})),
            absl::StatusCode::kInvalidArgument);  // image not rank 5
  EXPECT_EQ(Code(RunLayer("cropResize", ok, {x, Floats({1, 1, 3, 1, 1}, {0, 0, 3})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("cropResize", ok, {x, Floats({1, 4}, {0, 0, 3, 3})})), absl::StatusCode::kInvalidArgument);
  // The batch index must name an image.
  EXPECT_EQ(Code(RunLayer("cropResize", ok, {x, Floats({1, 1, 5, 1, 1}, {2, 0, 0, 3, 3})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("cropResize", ok, {x, Floats({1, 1, 5, 1, 1}, {0.5, 0, 0, 3, 3})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("cropResize", ok, {x, Floats({1, 1, 4, 1, 1}, {0, 0, NAN, 3})})),
            absl::StatusCode::kInvalidArgument);
}

// ---- gatherND ----

TEST(NnGatherND, TheProtoExamplesAgainstAnElementLoop) {
  std::mt19937 rng(13);
  for (auto [xs, is] : std::vector<std::pair<Shape, Shape>>{
           {{4, 2, 3, 4}, {6, 2}}, {{3, 3, 3, 4, 7}, {3, 5}}, {{5, 3, 2, 5}, {2, 7, 3, 2}}, {{5}, {1}}}) {
    const Tensor x = Random(rng, xs);
    const int64_t k = is.back();
    // Each index column its own axis' range.
    Tensor ids = Tensor::Zeros(DType::kFloat32, is);
    for (int64_t i = 0; i < ids.size(); ++i) {
      const int64_t n = xs[i % k];
      ids.mutable_floats()[i] = RandomIndices(rng, {1}, n).floats()[0];
    }
    Shape out(is.begin(), is.end() - 1);
    out.insert(out.end(), xs.begin() + k, xs.end());
    if (out.empty()) out = {1};
    std::vector<float> want(NumElements(out));
    const Shape lead(is.begin(), is.end() - 1), tail(xs.begin() + k, xs.end());
    for (int64_t o = 0; o < static_cast<int64_t>(want.size()); ++o) {
      const int64_t l = o / NumElements(tail), t = o % NumElements(tail);
      std::vector<int64_t> at;
      for (int64_t j = 0; j < k; ++j) at.push_back(Wrap(ids.floats()[l * k + j], xs[j]));
      for (int64_t v : Unravel(t, tail)) at.push_back(v);
      want[o] = x.floats()[Ravel(at, xs)];
    }
    ExpectClose(RunLayer("gatherND", Wire(), {x, ids}), Floats(out, want), 0);
  }
  const Tensor x = Tensor::Zeros(DType::kFloat32, {3, 2});
  EXPECT_EQ(Code(RunLayer("gatherND", Wire(), {x, Floats({1, 2}, {3, 0})})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("gatherND", Wire(), {x, Floats({1, 2}, {0, 0.5})})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("gatherND", Wire(), {x, Floats({1, 3}, {0, 0, 0})})), absl::StatusCode::kInvalidArgument);
}

// ---- the scatter family ----

float ApplyMode(int mode, float o, float u) {
  switch (mode) {
    case 0:
      return u;
    case 1:
      return o + u;
    case 2:
      return o - u;
    case 3:
      return o * u;
    case 4:
      return o / u;
    case 5:
      return std::max(o, u);
    default:
      return std::min(o, u);
  }
}

// Updates in [0.9, 1.1), near 1 so that a thousand SCATTER_MULs or DIVs
// into one element stay finite.
Tensor Updates(std::mt19937& rng, Shape shape) {
  Tensor u = Random(rng, std::move(shape));
  for (float& v : u.mutable_floats()) v = 1 + v / 10;
  return u;
}

// Scatters `updates` into `data` in updates' row-major order, each update
// element to the data index `target` maps its index to.
Tensor ScatterReference(const Tensor& data, const Tensor& updates, int mode,
                        const std::function<std::vector<int64_t>(const std::vector<int64_t>&)>& target) {
  Tensor out = data;
  for (int64_t i = 0; i < updates.size(); ++i) {
    float& o = out.mutable_floats()[Ravel(target(Unravel(i, updates.shape())), data.shape())];
    o = ApplyMode(mode, o, updates.floats()[i]);
  }
  return out;
}

TEST(NnScatter, EveryModeAlongAnAxisAgainstAnElementLoop) {
  std::mt19937 rng(14);
  struct Case {
    Shape data, indices;
    int64_t axis;
  };
  // The proto's examples, indices repeating (so modes accumulate).
  for (const Case& cs :
       {Case{{4, 3}, {5, 2, 3}, 1}, Case{{4, 4, 3}, {6}, -2}, Case{{5}, {5, 7, 5, 6}, -1}, Case{{3, 4}, {2}, 0}})
    for (int mode = 0; mode < 7; ++mode) {
      SCOPED_TRACE(::testing::Message() << "axis " << cs.axis << " mode " << mode);
      const int64_t r = static_cast<int64_t>(cs.data.size()), a = cs.axis < 0 ? cs.axis + r : cs.axis;
      const int64_t ir = static_cast<int64_t>(cs.indices.size());
      const Tensor data = Random(rng, cs.data), ids = RandomIndices(rng, cs.indices, cs.data[a]);
      Shape us(cs.data.begin(), cs.data.begin() + a);
      us.insert(us.end(), cs.indices.begin(), cs.indices.end());
      us.insert(us.end(), cs.data.begin() + a + 1, cs.data.end());
      const Tensor updates = Updates(rng, us);
      const Tensor want = ScatterReference(data, updates, mode, [&](const std::vector<int64_t>& u) {
        std::vector<int64_t> at(u.begin(), u.begin() + a);
        const std::vector<int64_t> which(u.begin() + a, u.begin() + a + ir);
        at.push_back(Wrap(ids.floats()[Ravel(which, cs.indices)], cs.data[a]));
        at.insert(at.end(), u.begin() + a + ir, u.end());
        return at;
      });
      ExpectClose(RunLayer("scatter", Wire().Varint(1, cs.axis).Varint(2, mode), {data, ids, updates}), want);
    }
  const Tensor data = Tensor::Zeros(DType::kFloat32, {3, 2});
  const Tensor u = Tensor::Zeros(DType::kFloat32, {1, 2});
  EXPECT_EQ(Code(RunLayer("scatter", Wire().Varint(2, 7), {data, Floats({1}, {0}), u})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("scatter", Wire(), {data, Floats({1}, {3}), u})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("scatter", Wire(), {data, Floats({1}, {0}), Tensor::Zeros(DType::kFloat32, {2, 2})})),
            absl::StatusCode::kInvalidArgument);  // updates of the wrong shape
  EXPECT_EQ(Code(RunLayer("scatter", Wire().Varint(1, 2), {data, Floats({1}, {0}), u})),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnScatterND, EveryModeAgainstAnElementLoop) {
  std::mt19937 rng(15);
  for (auto [ds, is] :
       std::vector<std::pair<Shape, Shape>>{{{3, 2}, {4, 2}}, {{7, 6}, {4, 7, 2, 5, 1}}, {{2, 3, 4}, {5, 2}}})
    for (int mode = 0; mode < 7; ++mode) {
      SCOPED_TRACE(mode);
      const int64_t k = is.back();
      const Tensor data = Random(rng, ds);
      Tensor ids = Tensor::Zeros(DType::kFloat32, is);
      for (int64_t i = 0; i < ids.size(); ++i) ids.mutable_floats()[i] = RandomIndices(rng, {1}, ds[i % k]).floats()[0];
      const Shape lead(is.begin(), is.end() - 1), tail(ds.begin() + k, ds.end());
      Shape us = lead;
      us.insert(us.end(), tail.begin(), tail.end());
      const Tensor updates = Updates(rng, us);
      const Tensor want = ScatterReference(data, updates, mode, [&](const std::vector<int64_t>& u) {
        const int64_t l = Ravel(std::vector<int64_t>(u.begin(), u.begin() + lead.size()), lead);
        std::vector<int64_t> at;
        for (int64_t j = 0; j < k; ++j) at.push_back(Wrap(ids.floats()[l * k + j], ds[j]));
        at.insert(at.end(), u.begin() + lead.size(), u.end());
        return at;
      });
      ExpectClose(RunLayer("scatterND", Wire().Varint(1, mode), {data, ids, updates}), want);
    }
  const Tensor data = Tensor::Zeros(DType::kFloat32, {3, 2});
  EXPECT_EQ(Code(RunLayer("scatterND", Wire(), {data, Floats({1, 2}, {0, 2}), Floats({1}, {1})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("scatterND", Wire(), {data, Floats({1, 2}, {0, 1}), Floats({2}, {1, 1})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("scatterND", Wire().Varint(1, 9), {data, Floats({1, 2}, {0, 1}), Floats({1}, {1})})),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnScatterAlongAxis, EveryModeAgainstAnElementLoop) {
  std::mt19937 rng(16);
  for (auto [ds, is, axis] : std::vector<std::tuple<Shape, Shape, int64_t>>{
           {{2, 5, 6}, {2, 2, 6}, -2}, {{4, 3}, {7, 3}, 0}, {{3, 4}, {3, 9}, 1}})
    for (int mode = 0; mode < 7; ++mode) {
      SCOPED_TRACE(mode);
      const int64_t a = axis < 0 ? axis + static_cast<int64_t>(ds.size()) : axis;
      const Tensor data = Random(rng, ds), ids = RandomIndices(rng, is, ds[a]), updates = Updates(rng, is);
      const Tensor want = ScatterReference(data, updates, mode, [&](const std::vector<int64_t>& u) {
        std::vector<int64_t> at = u;
        at[a] = Wrap(ids.floats()[Ravel(u, is)], ds[a]);
        return at;
      });
      ExpectClose(RunLayer("scatterAlongAxis", Wire().Varint(1, axis).Varint(2, mode), {data, ids, updates}), want);
    }
  const Tensor data = Tensor::Zeros(DType::kFloat32, {3, 2});
  EXPECT_EQ(Code(RunLayer("scatterAlongAxis", Wire(), {data, Floats({1, 3}, {0, 0, 0}), Floats({1, 3}, {1, 1, 1})})),
            absl::StatusCode::kInvalidArgument);  // indices differ off the axis
  EXPECT_EQ(Code(RunLayer("scatterAlongAxis", Wire(), {data, Floats({1, 2}, {0, 0}), Floats({1, 1}, {1})})),
            absl::StatusCode::kInvalidArgument);  // updates not of indices' shape
  EXPECT_EQ(Code(RunLayer("scatterAlongAxis", Wire(), {data, Floats({1, 2}, {0, -4}), Floats({1, 2}, {1, 1})})),
            absl::StatusCode::kInvalidArgument);
}

// ---- sliceDynamic, sliceBySize ----

// The positions one axis of n keeps: Python's range over [b, e) by s after
// NumPy's clamping, or the one element at b when squeezed.
std::vector<int64_t> AxisPositions(int64_t n, int64_t b, int64_t e, int64_t s, bool bm, bool em, bool sq) {
  if (sq) return {b < 0 ? b + n : b};
  if (b < 0) b += n;
  if (e < 0) e += n;
  if (s > 0) {
    b = bm ? 0 : std::clamp<int64_t>(b, 0, n);
    e = em ? n : std::clamp<int64_t>(e, 0, n);
  } else {
    b = bm ? n - 1 : std::clamp<int64_t>(b, -1, n - 1);
    e = em ? -1 : std::clamp<int64_t>(e, -1, n - 1);
  }
  std::vector<int64_t> p;
  for (int64_t i = b; s > 0 ? i < e : i > e; i += s) p.push_back(i);
  return p;
}

TEST(NnSliceDynamic, InputsOverrideParametersAgainstAnElementLoop) {
  std::mt19937 rng(17);
  const Tensor x = Random(rng, {4, 5, 6});
  struct Case {
    std::vector<int64_t> begin, end, strides, bmask, emask, squeeze;
  };
  const std::vector<Case> cases = {
      {{0, 1, 2}, {4, 4, 6}, {1, 1, 2}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}},
      {{-1, 3, 0}, {0, -6, 6}, {-1, -2, 3}, {0, 0, 1}, {1, 0, 0}, {0, 0, 0}},
      {{2, 0, -2}, {3, 5, 6}, {1, 2, 1}, {0, 1, 0}, {0, 1, 0}, {1, 0, 0}},
      {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}},  // empty
  };
  auto vec = [](const std::vector<int64_t>& v) {
    return Floats({static_cast<int64_t>(v.size())}, std::vector<float>(v.begin(), v.end()));
  };
  for (const Case& cs : cases) {
    std::vector<std::vector<int64_t>> pos;
    Shape full, out;
    for (int d = 0; d < 3; ++d) {
      pos.push_back(
          AxisPositions(x.dim(d), cs.begin[d], cs.end[d], cs.strides[d], cs.bmask[d], cs.emask[d], cs.squeeze[d]));
      full.push_back(static_cast<int64_t>(pos.back().size()));
      if (!cs.squeeze[d]) out.push_back(full.back());
    }
    std::vector<float> want;
    for (int64_t i = 0; i < NumElements(full); ++i) {
      const std::vector<int64_t> idx = Unravel(i, full);
      want.push_back(x.floats()[Ravel({pos[0][idx[0]], pos[1][idx[1]], pos[2][idx[2]]}, x.shape())]);
    }
    const Tensor expected = Floats(out, want);
    // Everything but begin as parameters, then more and more as inputs (the
    // parameters then holding decoys).
    const Wire params =
        Wire().Ints(2, cs.bmask).Ints(3, cs.end).Ints(4, cs.emask).Ints(5, cs.strides).Ints(6, cs.squeeze);
    ExpectClose(RunLayer("sliceDynamic", params, {x, vec(cs.begin)}), expected, 0);
    const Wire decoys =
        Wire().Ints(2, {1, 1, 1}).Ints(3, {0, 0, 0}).Ints(4, {1, 1, 1}).Ints(5, {3, 3, 3}).Ints(6, {1, 1, 1});
    const std::vector<Tensor> all = {
        x, vec(cs.begin), vec(cs.end), vec(cs.strides), vec(cs.bmask), vec(cs.emask), vec(cs.squeeze)};
    ExpectClose(RunLayer("sliceDynamic", decoys, all), expected, 0);
    if (!std::count(cs.squeeze.begin(), cs.squeeze.end(), 1) && cs.bmask == std::vector<int64_t>{0, 0, 0} &&
        cs.emask == std::vector<int64_t>{0, 0, 0}) {
      ExpectClose(RunLayer("sliceDynamic", Wire(), {x, vec(cs.begin), vec(cs.end), vec(cs.strides)}), expected, 0);
    }
  }
  // Strides default to 1 and masks to false when their parameters are empty.
  ExpectClose(RunLayer("sliceDynamic", Wire(), {x, vec({1, 2, 3}), vec({3, 4, 5})}),
              RunLayer("sliceStatic", Wire().Ints(1, {1, 2, 3}).Ints(3, {3, 4, 5}).Ints(5, {1, 1, 1}), {x}).value(), 0);
  EXPECT_EQ(Code(RunLayer("sliceDynamic", Wire(), {x, vec({0, 0, 0})})),
            absl::StatusCode::kInvalidArgument);  // no endIds
  EXPECT_EQ(Code(RunLayer("sliceDynamic", Wire(), {x, vec({0, 0}), vec({1, 1})})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("sliceDynamic", Wire(), {x, vec({0, 0, 0}), vec({1, 1, 1}), vec({1, 0, 1})})),
            absl::StatusCode::kInvalidArgument);  // zero stride
  EXPECT_EQ(Code(RunLayer("sliceDynamic", Wire(), {x, Floats({3}, {0, 0.5, 0}), vec({1, 1, 1})})),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnSliceBySize, AnyAxisAndBeginAgainstAnElementLoop) {
  std::mt19937 rng(18);
  const Tensor x = Random(rng, {3, 4, 5});
  for (int64_t axis : {0, 1, 2, -1})
    for (int64_t begin : {0, 1, -2})
      for (int64_t size : {1, 2}) {
        const int64_t a = axis < 0 ? axis + 3 : axis, start = begin < 0 ? begin + x.dim(a) : begin;
        Shape out = x.shape();
        out[a] = size;
        std::vector<float> want;
        for (int64_t i = 0; i < NumElements(out); ++i) {
          std::vector<int64_t> idx = Unravel(i, out);
          idx[a] += start;
          want.push_back(x.floats()[Ravel(idx, x.shape())]);
        }
        ExpectClose(RunLayer("sliceBySize", Wire().Varint(2, size).Varint(3, axis), {x, Floats({1}, {float(begin)})}),
                    Floats(out, want), 0);
      }
  EXPECT_EQ(Code(RunLayer("sliceBySize", Wire().Varint(2, 0), {x, Floats({1}, {0})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("sliceBySize", Wire().Varint(2, 3).Varint(3, 0), {x, Floats({1}, {1})})),
            absl::StatusCode::kInvalidArgument);  // passes the end
  EXPECT_EQ(Code(RunLayer("sliceBySize", Wire().Varint(2, 1).Varint(3, 3), {x, Floats({1}, {0})})),
            absl::StatusCode::kInvalidArgument);  // axis
  EXPECT_EQ(Code(RunLayer("sliceBySize", Wire().Varint(2, 1), {x, Floats({2}, {0, 0})})),
            absl::StatusCode::kInvalidArgument);
}

// ---- reverseSeq, slidingWindows ----

TEST(NnReverseSeq, TheProtoExamplesAndAnElementLoop) {
  // NeuralNetwork.proto's two examples.
  ExpectClose(RunLayer("reverseSeq", Wire().Varint(1, 0).Varint(2, 1),
                       {Floats({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7}), Floats({2}, {3, 0})}),
              Floats({2, 4}, {2, 1, 0, 3, 4, 5, 6, 7}), 0);
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[i] = float(i);
  ExpectClose(RunLayer("reverseSeq", Wire().Varint(1, 0).Varint(2, 1), {Floats({2, 3, 2}, v), Floats({2}, {2, 3})}),
              Floats({2, 3, 2}, {2, 3, 0, 1, 4, 5, 10, 11, 8, 9, 6, 7}), 0);
  std::mt19937 rng(19);
  const Tensor x = Random(rng, {3, 4, 5});
  for (auto [ba, sa] : std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {1, 2}, {0, -2}, {2, 0}}) {
    const int64_t b = ba < 0 ? ba + 3 : ba, s = sa < 0 ? sa + 3 : sa;
    std::vector<float> len;
    for (int64_t i = 0; i < x.dim(b); ++i) len.push_back(static_cast<float>(rng() % (x.dim(s) + 1)));
    std::vector<float> want(x.size());
    for (int64_t i = 0; i < x.size(); ++i) {
      std::vector<int64_t> idx = Unravel(i, x.shape());
      const int64_t l = static_cast<int64_t>(len[idx[b]]);
      if (idx[s] < l) idx[s] = l - 1 - idx[s];
      want[i] = x.floats()[Ravel(idx, x.shape())];
    }
    ExpectClose(RunLayer("reverseSeq", Wire().Varint(1, ba).Varint(2, sa), {x, Floats({x.dim(b)}, len)}),
                Floats(x.shape(), want), 0);
  }
  EXPECT_EQ(Code(RunLayer("reverseSeq", Wire().Varint(1, 0).Varint(2, 1), {x, Floats({3}, {1, 5, 1})})),
            absl::StatusCode::kInvalidArgument);  // longer than the axis
  EXPECT_EQ(Code(RunLayer("reverseSeq", Wire().Varint(1, 0).Varint(2, 1), {x, Floats({2}, {1, 1})})),
            absl::StatusCode::kInvalidArgument);  // one length per batch item
  EXPECT_EQ(Code(RunLayer("reverseSeq", Wire().Varint(1, 1).Varint(2, 1), {x, Floats({4}, {1, 1, 1, 1})})),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnSlidingWindows, EveryAxisAgainstAnElementLoop) {
  std::mt19937 rng(20);
  const Tensor x = Random(rng, {3, 7, 2});
  for (int64_t axis : {0, 1, -1})
    for (int64_t window : {1, 2, 3})
      for (int64_t step : {1, 2, 3}) {
        const int64_t a = axis < 0 ? axis + 3 : axis, n = x.dim(a);
        if (window > n) continue;
        const int64_t m = (n - window) / step + 1;
        Shape out(x.shape().begin(), x.shape().begin() + a);
        out.push_back(m), out.push_back(window);
        out.insert(out.end(), x.shape().begin() + a + 1, x.shape().end());
        std::vector<float> want;
        for (int64_t i = 0; i < NumElements(out); ++i) {
          std::vector<int64_t> idx = Unravel(i, out);
          idx[a] = idx[a] * step + idx[a + 1];
          idx.erase(idx.begin() + a + 1);
          want.push_back(x.floats()[Ravel(idx, x.shape())]);
        }
        ExpectClose(RunLayer("slidingWindows", Wire().Varint(1, axis).Varint(2, window).Varint(3, step), {x}),
                    Floats(out, want), 0);
      }
  EXPECT_EQ(Code(RunLayer("slidingWindows", Wire().Varint(2, 4).Varint(3, 1), {x})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("slidingWindows", Wire().Varint(2, 0).Varint(3, 1), {x})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("slidingWindows", Wire().Varint(2, 1).Varint(3, 0), {x})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("slidingWindows", Wire().Varint(1, 3).Varint(2, 1).Varint(3, 1), {x})),
            absl::StatusCode::kInvalidArgument);
}

// ---- constantPad with the amounts as an input, categoricalDistribution ----

TEST(NnConstantPad, AmountsFromTheSecondInputAgainstAnElementLoop) {
  std::mt19937 rng(22);
  const Tensor x = Random(rng, {2, 3, 4});
  const std::vector<std::vector<int64_t>> cases = {{0, 1, 2, 0, 1, 3}, {0, 0, 0, 0, 0, 0}, {3, 0, 0, 2, 1, 1}};
  for (const std::vector<int64_t>& pads : cases) {
    Shape out;
    for (int d = 0; d < 3; ++d) out.push_back(x.dim(d) + pads[2 * d] + pads[2 * d + 1]);
    std::vector<float> want;
    for (int64_t i = 0; i < NumElements(out); ++i) {
      std::vector<int64_t> idx = Unravel(i, out);
      bool inside = true;
      for (int d = 0; d < 3; ++d) {
        idx[d] -= pads[2 * d];
        inside = inside && idx[d] >= 0 && idx[d] < x.dim(d);
      }
      want.push_back(inside ? x.floats()[Ravel(idx, x.shape())] : 7.f);
    }
    // As [2 * rank] or [rank, 2]; the parameter, a decoy, is ignored.
    const std::vector<float> v(pads.begin(), pads.end());
    const Wire params = Wire().Float(1, 7).Ints(2, {9, 9, 9, 9, 9, 9});
    ExpectClose(RunLayer("constantPad", params, {x, Floats({6}, v)}), Floats(out, want), 0);
    ExpectClose(RunLayer("constantPad", params, {x, Floats({3, 2}, v)}), Floats(out, want), 0);
  }
  // padToGivenOutputSizeMode reads the input's values as sizes too.
  const auto to_size = RunLayer("constantPad", Wire().Varint(3, 1), {x, Floats({6}, {0, 0, 5, 0, 0, 4})});
  ASSERT_TRUE(to_size.ok()) << to_size.status();
  EXPECT_EQ(to_size->shape(), (Shape{2, 5, 4}));
  EXPECT_EQ(Code(RunLayer("constantPad", Wire(), {x, Floats({6}, {0, 1, 0, -1, 0, 0})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("constantPad", Wire(), {x, Floats({6}, {0, 1, 0, 0.5, 0, 0})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("constantPad", Wire(), {x, Floats({7}, {0, 0, 0, 0, 0, 0, 0})})),
            absl::StatusCode::kInvalidArgument);
  // Fewer amounts than axes may mean MIL's last-axes padding; not run.
  EXPECT_TRUE(UnimplementedNamingLayer(RunLayer("constantPad", Wire(), {x, Floats({2}, {1, 1})}), "constantPad"));
}

TEST(NnCategoricalDistribution, DrawsFollowTheDistributionAndRepeatWithTheSeed) {
  // Two rows: probabilities, and logits whose softmax (temperature 2) is known.
  const std::vector<double> probs = {0.1, 0.0, 0.6, 0.3};
  const std::vector<float> logits = {0, std::log(4.f) * 2, std::log(2.f) * 2, 0};  // / 2 -> weights 1, 4, 2, 1
  const int64_t n = 20000;
  struct Case {
    bool is_logits;
    float temperature;
    std::vector<float> x;
    std::vector<double> p;
  };
  for (const Case& cs : {Case{false, 0, {0.1f, 0.f, 0.6f, 0.3f}, probs},
                         Case{false, 0, {1.f, 0.f, 6.f, 3.f}, probs},  // weights need not sum to 1
                         Case{true, 2, logits, {1 / 8.0, 4 / 8.0, 2 / 8.0, 1 / 8.0}}}) {
    const Tensor x = Floats({2, 4}, [&] {
      std::vector<float> v = cs.x;
      v.insert(v.end(), cs.x.begin(), cs.x.end());
      return v;
    }());
    Wire params = Wire().Varint(1, 5).Varint(2, n).Varint(3, cs.is_logits);
    if (cs.temperature != 0) params.Float(5, cs.temperature);
    auto y = RunLayer("categoricalDistribution", params, {x});
    ASSERT_TRUE(y.ok()) << y.status();
    ASSERT_EQ(y->shape(), (Shape{2, n}));
    for (int64_t r = 0; r < 2; ++r) {
      std::vector<double> count(4, 0);
      for (int64_t i = 0; i < n; ++i) {
        const float c = y->floats()[r * n + i];
        ASSERT_TRUE(c == 0 || c == 1 || c == 2 || c == 3) << c;
        count[static_cast<int>(c)] += 1;
      }
      // 5 standard deviations of a binomial frequency at n = 20000 is < 0.018.
      for (int j = 0; j < 4; ++j) EXPECT_NEAR(count[j] / n, cs.p[j], 0.018) << "row " << r << " class " << j;
    }
    // The same seed draws the same samples; another seed other samples.
    ExpectClose(RunLayer("categoricalDistribution", params, {x}), *y, 0);
    Wire reseeded = Wire().Varint(1, 6).Varint(2, n).Varint(3, cs.is_logits);
    if (cs.temperature != 0) reseeded.Float(5, cs.temperature);
    auto other = RunLayer("categoricalDistribution", reseeded, {x});
    ASSERT_TRUE(other.ok());
    EXPECT_NE(std::vector<float>(other->floats().begin(), other->floats().end()),
              std::vector<float>(y->floats().begin(), y->floats().end()));
  }
  const Tensor x = Floats({1, 2}, {0.5f, 0.5f});
  EXPECT_EQ(Code(RunLayer("categoricalDistribution", Wire(), {x})),
            absl::StatusCode::kInvalidArgument);  // numSamples 0
  EXPECT_EQ(Code(RunLayer("categoricalDistribution", Wire().Varint(2, 1), {Floats({1, 2}, {0.5f, -0.5f})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("categoricalDistribution", Wire().Varint(2, 1), {Floats({1, 2}, {0, 0})})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("categoricalDistribution", Wire().Varint(2, 1).Varint(3, 1).Float(5, -1), {x})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(UnimplementedNamingLayer(RunLayer("categoricalDistribution", Wire().Varint(2, 1).Float(5, 2), {x}),
                                       "categoricalDistribution"));
}

TEST(NnRandomFill, EveryDistributionAndShapeFormDrawsItsMomentsAndRepeats) {
  const int64_t n = 20000;
  const Tensor like = Tensor::Zeros(DType::kFloat32, {4, n / 4});
  const Tensor shape = Floats({2}, {4, n / 4});
  struct Case {
    std::string family;
    float a, b;  // (mean, stdDev), (minVal, maxVal) or (prob)
    double mean, sd;
  };
  const std::vector<Case> cases = {{"randomNormal", 2, 3, 2, 3},
                                   {"randomUniform", -1, 3, 1, 4 / std::sqrt(12.0)},
                                   {"randomBernoulli", 0.3f, 0, 0.3, std::sqrt(0.3 * 0.7)}};
  for (const Case& cs : cases)
    for (const std::string form : {"Like", "Static", "Dynamic"}) {
      SCOPED_TRACE(cs.family + form);
      const bool bernoulli = cs.family == "randomBernoulli";
      auto params = [&](int seed) {
        Wire w = Wire().Varint(1, seed).Float(2, cs.a);
        if (!bernoulli) w.Float(3, cs.b);
        if (form == "Static") w.Ints(bernoulli ? 3 : 4, {4, n / 4});
        return w;
      };
      const std::vector<Tensor> in = form == "Like"      ? std::vector<Tensor>{like}
                                     : form == "Dynamic" ? std::vector<Tensor>{shape}
                                                         : std::vector<Tensor>{};
      auto y = RunLayer(cs.family + form, params(7), in);
      ASSERT_TRUE(y.ok()) << y.status();
      ASSERT_EQ(y->shape(), (Shape{4, n / 4}));
      double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
      for (float v : y->floats())
        sum += v, sq += double(v) * v, lo = std::min(lo, double(v)), hi = std::max(hi, double(v));
      const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
      // 5 standard errors of the mean; the spread within 3%.
      EXPECT_NEAR(mean, cs.mean, 5 * cs.sd / std::sqrt(double(n)));
      EXPECT_NEAR(sd, cs.sd, 0.03 * cs.sd);
      if (bernoulli) {
        for (float v : y->floats()) ASSERT_TRUE(v == 0 || v == 1) << v;
      }
      if (cs.family == "randomUniform") {
        EXPECT_TRUE(lo >= cs.a && hi < cs.b) << lo << " " << hi;
      }
      ExpectClose(RunLayer(cs.family + form, params(7), in), *y, 0);  // the seed repeats the draws
      auto other = RunLayer(cs.family + form, params(8), in);
      ASSERT_TRUE(other.ok());
      EXPECT_NE(std::vector<float>(other->floats().begin(), other->floats().end()),
                std::vector<float>(y->floats().begin(), y->floats().end()));
    }
  EXPECT_EQ(Code(RunLayer("randomBernoulliLike", Wire().Float(2, 1.5), {like})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("randomUniformLike", Wire().Float(2, 2).Float(3, 1), {like})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("randomNormalLike", Wire().Float(3, -1), {like})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("randomNormalStatic", Wire(), {})), absl::StatusCode::kInvalidArgument);  // no outputShape
  EXPECT_EQ(Code(RunLayer("randomNormalDynamic", Wire(), {Floats({2}, {2, -1})})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("randomNormalDynamic", Wire(), {Floats({2}, {2, 0.5})})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("randomUniformStatic", Wire().Float(3, 1).Ints(4, {1 << 20, 1 << 20}), {})),
            absl::StatusCode::kResourceExhausted);
}

// ---- through the executor ----

namespace Spec = CoreML::Specification;

// A network of one layer (oneof field `number`) on inputs "x" (and "k")
// loads, names its type, and checks its input count.
TEST(NnExecutorNewLayers, LoadByFieldNumberAndCheckInputCounts) {
  auto model = [](int number, const std::vector<std::string>& inputs, const Wire& params) {
    Spec::Model m;
    m.set_specificationversion(4);
    for (const char* name : {"x", "k", "u"}) {
      auto* in = m.mutable_description()->add_input();
      in->set_name(name);
      for (int64_t d : {2, 3, 4}) in->mutable_type()->mutable_multiarraytype()->add_shape(d);
    }
    auto* out = m.mutable_description()->add_output();
    out->set_name("y");
    out->mutable_type()->mutable_multiarraytype();
    auto* nn = m.mutable_neuralnetwork();
    nn->set_arrayinputshapemapping(1);
    testing::AddLayer(nn, "layer", inputs, "y", number, params);
    return m;
  };
  std::mt19937 rng(21);
  const Tensor x = Random(rng, {2, 3, 4});
  auto ex = NnExecutor::Load(model(211, {"x"}, Wire().Ints(1, {5, 2}).Message(2, Mode(1))));
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto y = (*ex)->Run({{"x", x}, {"k", x}, {"u", x}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->at("y").shape(), (Shape{2, 5, 2}));
  ex = NnExecutor::Load(model(1470, {"x", "k"}, Wire().Varint(2, 1)));
  ASSERT_TRUE(ex.ok()) << ex.status();
  // Too many inputs is a form the executor does not run; too few is invalid.
  for (auto [number, type] : std::vector<std::pair<int, std::string>>{
           {212, "cropResize"}, {940, "gatherND"}, {965, "reverseSeq"}, {1470, "sliceBySize"}}) {
    auto three = NnExecutor::Load(model(number, {"x", "k", "u"}, Wire()));
    EXPECT_EQ(three.status().code(), absl::StatusCode::kUnimplemented) << type;
    EXPECT_TRUE(absl::StrContains(three.status().message(), "'layer' (" + type + ")")) << three.status();
    EXPECT_EQ(NnExecutor::Load(model(number, {"x"}, Wire())).status().code(), absl::StatusCode::kInvalidArgument)
        << type;
  }
  for (int number : {935, 945, 954}) {
    EXPECT_EQ(NnExecutor::Load(model(number, {"x", "k"}, Wire())).status().code(), absl::StatusCode::kInvalidArgument);
  }
  // randomNormalStatic reads no input.
  const Wire normal = Wire().Float(3, 1).Ints(4, {3, 2});
  ex = NnExecutor::Load(model(1175, {}, normal));
  ASSERT_TRUE(ex.ok()) << ex.status();
  y = (*ex)->Run({{"x", x}, {"k", x}, {"u", x}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->at("y").shape(), (Shape{3, 2}));
  EXPECT_EQ(NnExecutor::Load(model(1175, {"x"}, normal)).status().code(), absl::StatusCode::kInvalidArgument);
}

// coremltools' own cropResize test (test_tf_numeric.py): a rank-5-mapped
// image [C, H, W] and box [4, 1, 1] inputs, normalized corners, height
// first, ALIGN_ENDPOINTS_MODE, against TensorFlow's crop_and_resize
// (in_y = y1 (H - 1) + i (y2 - y1) (H - 1) / (crop_h - 1), the box centre
// for crop_h = 1, extrapolation value 0).
TEST(NnExecutorNewLayers, CropResizeAsCoremltoolsTestsItAgainstTensorFlowsFormula) {
  const int64_t c = 2, h = 5, w = 6, crop_h = 3, crop_w = 1;
  Spec::Model m;
  m.set_specificationversion(4);
  for (auto [name, shape] : std::vector<std::pair<std::string, Shape>>{{"data", {c, h, w}}, {"roi", {4, 1, 1}}}) {
    auto* in = m.mutable_description()->add_input();
    in->set_name(name);
    for (int64_t d : shape) in->mutable_type()->mutable_multiarraytype()->add_shape(d);
  }
  auto* out = m.mutable_description()->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_multiarraytype();
  testing::AddLayer(m.mutable_neuralnetwork(), "resize", {"data", "roi"}, "y", 212,
                    Wire().Ints(1, {crop_h, crop_w}).Varint(2, 1).Message(3, Mode(1)).Message(4, Mode(0)).Float(5, 1));
  auto ex = NnExecutor::Load(m);
  ASSERT_TRUE(ex.ok()) << ex.status();
  std::mt19937 rng(23);
  const Tensor data = Random(rng, {c, h, w});
  const double y1 = 0.1, x1 = 0.2, y2 = 1.1, x2 = 0.7;  // past the bottom edge
  auto y = (*ex)->Run({{"data", data}, {"roi", Floats({4, 1, 1}, {float(y1), float(x1), float(y2), float(x2)})}});
  ASSERT_TRUE(y.ok()) << y.status();
  const Tensor& got = y->at("y");
  ASSERT_EQ(got.size(), c * crop_h * crop_w);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < crop_h; ++i)
      for (int64_t j = 0; j < crop_w; ++j) {
        // float boxes, as the kernel reads them
        const double fy1 = float(y1), fy2 = float(y2), fx1 = float(x1), fx2 = float(x2);
        const double in_y =
            crop_h > 1 ? fy1 * (h - 1) + i * (fy2 - fy1) * (h - 1) / (crop_h - 1) : 0.5 * (fy1 + fy2) * (h - 1);
        const double in_x =
            crop_w > 1 ? fx1 * (w - 1) + j * (fx2 - fx1) * (w - 1) / (crop_w - 1) : 0.5 * (fx1 + fx2) * (w - 1);
        double want = 0;
        if (in_y >= 0 && in_y <= h - 1 && in_x >= 0 && in_x <= w - 1) {
          const int64_t top = static_cast<int64_t>(std::floor(in_y)), left = static_cast<int64_t>(std::floor(in_x));
          const int64_t bottom = std::min(top + 1, h - 1), right = std::min(left + 1, w - 1);
          const double dy = in_y - top, dx = in_x - left;
          auto at = [&](int64_t r, int64_t q) { return double(data.floats()[(ch * h + r) * w + q]); };
          const double t = at(top, left) + (at(top, right) - at(top, left)) * dx;
          const double b = at(bottom, left) + (at(bottom, right) - at(bottom, left)) * dx;
          want = t + (b - t) * dy;
        }
        EXPECT_NEAR(got.floats()[(ch * crop_h + i) * crop_w + j], want, 1e-5) << ch << " " << i << " " << j;
      }
}

}  // namespace
}  // namespace coremlz::execute
