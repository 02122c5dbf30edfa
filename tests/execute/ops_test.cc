// Each op against a slow, obvious reference (nested loops over multi-indices,
// in double) on random shapes, with edge cases: padding modes, strides,
// dilation, groups, broadcasting, negative axes, empty dims.
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "op_test_util.h"

namespace coremlz::execute::testing {
namespace {

void ExpectNear(const Tensor& got, const Shape& shape, const std::vector<double>& want, double tol = 1e-4) {
  ASSERT_EQ(got.shape(), shape);
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got.AsDouble(i), want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

// ---- conv -----------------------------------------------------------------

struct ConvCase {
  int64_t n, cin, h, w, cout, kh, kw, sh, sw, dh, dw, groups;
  std::string pad_type;
  std::vector<int64_t> pad;  // custom: top, bottom, left, right
  bool bias;
};

std::vector<double> SlowConv(const ConvCase& c, const Tensor& x, const Tensor& wt, const Tensor* b, int64_t pt,
                             int64_t pl, int64_t oh, int64_t ow) {
  std::vector<double> out(c.n * c.cout * oh * ow);
  const int64_t cin_g = c.cin / c.groups, cout_g = c.cout / c.groups;
  for (int64_t n = 0; n < c.n; ++n)
    for (int64_t co = 0; co < c.cout; ++co)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = b ? b->floats()[co] : 0;
          const int64_t g = co / cout_g;
          for (int64_t ci = 0; ci < cin_g; ++ci)
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                const int64_t iy = oy * c.sh - pt + ky * c.dh, ix = ox * c.sw - pl + kx * c.dw;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                acc += static_cast<double>(x.floats()[Flat(x.shape(), {n, g * cin_g + ci, iy, ix})]) *
                       wt.floats()[Flat(wt.shape(), {co, ci, ky, kx})];
              }
          out[Flat({c.n, c.cout, oh, ow}, {n, co, oy, ox})] = acc;
        }
  return out;
}

TEST(ConvOp, MatchesSlowReference) {
  std::mt19937 rng(1);
  const std::vector<ConvCase> cases = {
      {1, 3, 9, 8, 4, 3, 3, 1, 1, 1, 1, 1, "valid", {}, true},
      {2, 4, 7, 7, 6, 3, 3, 2, 2, 1, 1, 2, "same", {}, true},
      {1, 4, 8, 9, 4, 3, 3, 2, 1, 1, 1, 4, "custom", {1, 1, 1, 1}, false},  // depthwise
      {1, 6, 10, 10, 6, 3, 3, 1, 1, 2, 2, 6, "same", {}, true},             // dilated depthwise
      {1, 5, 6, 6, 7, 1, 1, 1, 1, 1, 1, 1, "valid", {}, true},              // pointwise GEMM
      {1, 4, 6, 5, 2, 2, 2, 1, 1, 1, 1, 1, "same", {}, true},               // even kernel: odd pad at the end
      {1, 4, 6, 5, 2, 2, 2, 1, 1, 1, 1, 1, "same_lower", {}, false},        // ...at the beginning
      {1, 3, 11, 7, 4, 3, 2, 3, 2, 2, 1, 1, "custom", {0, 2, 3, 1}, true},  // asymmetric pad
      {1, 4, 5, 5, 4, 1, 1, 2, 2, 1, 1, 2, "valid", {}, false},             // strided 1x1, groups
      {0, 3, 5, 5, 2, 3, 3, 1, 1, 1, 1, 1, "valid", {}, true},              // empty batch
      // Stride-1 rows copied between zero borders (im2col): dilated and
      // grouped, and padding wider than the input itself.
      {1, 4, 6, 7, 4, 3, 3, 1, 1, 2, 3, 2, "custom", {2, 1, 3, 4}, true},
      {1, 2, 3, 3, 2, 3, 3, 1, 1, 1, 1, 1, "custom", {2, 2, 4, 4}, false},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.pad_type << " k" << c.kh << "x" << c.kw << " s" << c.sh << " d" << c.dh
                                      << " g" << c.groups);
    Tensor x = Random(rng, {c.n, c.cin, c.h, c.w});
    Tensor w = Random(rng, {c.cout, c.cin / c.groups, c.kh, c.kw});
    Tensor b = Random(rng, {c.cout});
    Args args = {{"x", {x}},
                 {"weight", {w}},
                 {"strides", {Ints({int32_t(c.sh), int32_t(c.sw)})}},
                 {"dilations", {Ints({int32_t(c.dh), int32_t(c.dw)})}},
                 {"groups", {Tensor::IntScalar(c.groups)}},
                 {"pad_type", {Str(c.pad_type)}}};
    if (c.bias) args["bias"] = {b};
    if (c.pad_type == "custom") {
      args["pad"] = {Ints({int32_t(c.pad[0]), int32_t(c.pad[1]), int32_t(c.pad[2]), int32_t(c.pad[3])})};
    }
    auto out = RunOp("conv", args);
    ASSERT_TRUE(out.ok()) << out.status();
    // Expected padding, written out independently.
    int64_t pt = 0, pb = 0, pl = 0, pr = 0;
    const int64_t ekh = (c.kh - 1) * c.dh + 1, ekw = (c.kw - 1) * c.dw + 1;
    if (c.pad_type == "custom") pt = c.pad[0], pb = c.pad[1], pl = c.pad[2], pr = c.pad[3];
    if (c.pad_type == "same" || c.pad_type == "same_lower") {
      const int64_t th = std::max<int64_t>(0, ((c.h + c.sh - 1) / c.sh - 1) * c.sh + ekh - c.h);
      const int64_t tw = std::max<int64_t>(0, ((c.w + c.sw - 1) / c.sw - 1) * c.sw + ekw - c.w);
      pt = c.pad_type == "same" ? th / 2 : th - th / 2;
      pb = th - pt;
      pl = c.pad_type == "same" ? tw / 2 : tw - tw / 2;
      pr = tw - pl;
    }
    const int64_t oh = (c.h + pt + pb - ekh) / c.sh + 1, ow = (c.w + pl + pr - ekw) / c.sw + 1;
    if (c.pad_type == "same" || c.pad_type == "same_lower") {
      EXPECT_EQ(oh, (c.h + c.sh - 1) / c.sh);
      EXPECT_EQ(ow, (c.w + c.sw - 1) / c.sw);
    }
    ExpectNear((*out)[0], {c.n, c.cout, oh, ow}, SlowConv(c, x, w, c.bias ? &b : nullptr, pt, pl, oh, ow));
  }
}

TEST(ConvOp, OneDimensional) {
  std::mt19937 rng(2);
  Tensor x = Random(rng, {2, 3, 12});
  Tensor w = Random(rng, {4, 3, 3});
  auto out = RunOp("conv", {{"x", {x}}, {"weight", {w}}, {"strides", {Ints({2})}}, {"dilations", {Ints({1})}},
                            {"pad_type", {Str("custom")}}, {"pad", {Ints({1, 0})}}});
  ASSERT_TRUE(out.ok()) << out.status();
  const int64_t ow = (12 + 1 - 3) / 2 + 1;
  std::vector<double> want(2 * 4 * ow);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t co = 0; co < 4; ++co)
      for (int64_t o = 0; o < ow; ++o) {
        double acc = 0;
        for (int64_t ci = 0; ci < 3; ++ci)
          for (int64_t k = 0; k < 3; ++k) {
            const int64_t i = o * 2 - 1 + k;
            if (i >= 0 && i < 12) acc += double(x.floats()[(n * 3 + ci) * 12 + i]) * w.floats()[(co * 3 + ci) * 3 + k];
          }
        want[(n * 4 + co) * ow + o] = acc;
      }
  ExpectNear((*out)[0], {2, 4, ow}, want);
}

TEST(ConvOp, RejectsBadGroups) {
  std::mt19937 rng(3);
  auto out = RunOp("conv", {{"x", {Random(rng, {1, 4, 5, 5})}}, {"weight", {Random(rng, {3, 2, 3, 3})}},
                            {"groups", {Tensor::IntScalar(2)}}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
}

// out[oy + crop_top] gathers x[iy] * w[ky] wherever oy = iy * stride + ky * dilation.
TEST(ConvTransposeOp, MatchesSlowReference) {
  std::mt19937 rng(19);
  struct Case {
    int64_t n, cin, h, w, cout, kh, kw, sh, sw, dh, dw, groups;
    std::string pad_type;
    std::vector<int32_t> pad;
  };
  for (const Case& c : std::vector<Case>{{1, 3, 4, 5, 2, 3, 3, 2, 2, 1, 1, 1, "valid", {}},
                                         {2, 4, 3, 3, 6, 3, 2, 2, 1, 1, 2, 2, "custom", {1, 0, 0, 2}},
                                         {1, 2, 3, 4, 2, 4, 4, 2, 2, 1, 1, 1, "same", {}},
                                         {1, 4, 3, 3, 4, 3, 3, 1, 1, 1, 1, 4, "custom", {1, 1, 1, 1}}}) {
    SCOPED_TRACE(c.pad_type);
    Tensor x = Random(rng, {c.n, c.cin, c.h, c.w});
    Tensor w = Random(rng, {c.cin, c.cout / c.groups, c.kh, c.kw});
    Tensor b = Random(rng, {c.cout});
    Args args = {{"x", {x}}, {"weight", {w}}, {"bias", {b}}, {"strides", {Ints({int32_t(c.sh), int32_t(c.sw)})}},
                 {"dilations", {Ints({int32_t(c.dh), int32_t(c.dw)})}}, {"groups", {Tensor::IntScalar(c.groups)}},
                 {"pad_type", {Str(c.pad_type)}}};
    if (!c.pad.empty()) args["pad"] = {Ints(c.pad)};
    auto r = RunOp("conv_transpose", args);
    ASSERT_TRUE(r.ok()) << r.status();
    const int64_t fh = (c.h - 1) * c.sh + (c.kh - 1) * c.dh + 1, fw = (c.w - 1) * c.sw + (c.kw - 1) * c.dw + 1;
    int64_t top = 0, left = 0, oh = fh, ow = fw;
    if (c.pad_type == "custom") top = c.pad[0], left = c.pad[2], oh = fh - c.pad[0] - c.pad[1], ow = fw - c.pad[2] - c.pad[3];
    if (c.pad_type == "same") oh = c.h * c.sh, ow = c.w * c.sw, top = (fh - oh) / 2, left = (fw - ow) / 2;
    const int64_t cin_g = c.cin / c.groups, cout_g = c.cout / c.groups;
    std::vector<double> want;
    for (int64_t n = 0; n < c.n; ++n)
      for (int64_t co = 0; co < c.cout; ++co)
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) {
            double acc = b.floats()[co];
            const int64_t g = co / cout_g;
            for (int64_t ci = g * cin_g; ci < (g + 1) * cin_g; ++ci)
              for (int64_t iy = 0; iy < c.h; ++iy)
                for (int64_t ix = 0; ix < c.w; ++ix)
                  for (int64_t ky = 0; ky < c.kh; ++ky)
                    for (int64_t kx = 0; kx < c.kw; ++kx) {
                      if (iy * c.sh + ky * c.dh != oy + top || ix * c.sw + kx * c.dw != ox + left) continue;
                      acc += double(x.floats()[Flat(x.shape(), {n, ci, iy, ix})]) *
                             w.floats()[Flat(w.shape(), {ci, co % cout_g, ky, kx})];
                    }
            want.push_back(acc);
          }
    ExpectNear((*r)[0], {c.n, c.cout, oh, ow}, want);
  }
}

// ---- pooling --------------------------------------------------------------

TEST(PoolOp, MatchesSlowReference) {
  std::mt19937 rng(4);
  struct Case {
    int64_t h, w, kh, kw, sh, sw;
    std::string pad_type;
    std::vector<int32_t> pad;
    bool exclude;
  };
  for (const Case& c : std::vector<Case>{{7, 6, 3, 3, 2, 2, "valid", {}, false},
                                         {7, 6, 3, 2, 2, 1, "same", {}, true},
                                         {7, 6, 3, 2, 2, 1, "same", {}, false},
                                         {5, 5, 2, 2, 1, 1, "custom", {1, 0, 0, 1}, false},
                                         {4, 4, 4, 4, 1, 1, "valid", {}, false}}) {
    Tensor x = Random(rng, {2, 3, c.h, c.w});
    for (const std::string type : {"avg_pool", "max_pool"}) {
      SCOPED_TRACE(type + " " + c.pad_type);
      Args args = {{"x", {x}},
                   {"kernel_sizes", {Ints({int32_t(c.kh), int32_t(c.kw)})}},
                   {"strides", {Ints({int32_t(c.sh), int32_t(c.sw)})}},
                   {"pad_type", {Str(c.pad_type)}},
                   {"exclude_padding_from_average", {BoolScalar(c.exclude)}}};
      if (!c.pad.empty()) args["pad"] = {Ints(c.pad)};
      auto out = RunOp(type, args);
      ASSERT_TRUE(out.ok()) << out.status();
      int64_t pt = 0, pb = 0, pl = 0, pr = 0;
      if (c.pad_type == "custom") pt = c.pad[0], pb = c.pad[1], pl = c.pad[2], pr = c.pad[3];
      if (c.pad_type == "same") {
        const int64_t th = std::max<int64_t>(0, ((c.h + c.sh - 1) / c.sh - 1) * c.sh + c.kh - c.h);
        const int64_t tw = std::max<int64_t>(0, ((c.w + c.sw - 1) / c.sw - 1) * c.sw + c.kw - c.w);
        pt = th / 2, pb = th - pt, pl = tw / 2, pr = tw - pl;
      }
      const int64_t oh = (c.h + pt + pb - c.kh) / c.sh + 1, ow = (c.w + pl + pr - c.kw) / c.sw + 1;
      std::vector<double> want;
      for (int64_t p = 0; p < 6; ++p)
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) {
            double best = -1e30, sum = 0;
            int inside = 0;
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                const int64_t iy = oy * c.sh - pt + ky, ix = ox * c.sw - pl + kx;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                const double v = x.floats()[(p * c.h + iy) * c.w + ix];
                best = std::max(best, v), sum += v, ++inside;
              }
            want.push_back(type == "max_pool" ? best : sum / (c.exclude ? inside : c.kh * c.kw));
          }
      ExpectNear((*out)[0], {2, 3, oh, ow}, want);
    }
  }
}

TEST(PoolOp, CeilMode) {
  // 5 wide, kernel 2, stride 2: floor gives 2 windows, ceil 3 (the last one
  // holds one element).
  Tensor x = Tensor::Float({1, 1, 1, 5}, {1, 5, 2, 4, 3});
  auto out = RunOp("max_pool", {{"x", {x}}, {"kernel_sizes", {Ints({1, 2})}}, {"strides", {Ints({1, 2})}},
                                {"pad_type", {Str("valid")}}, {"ceil_mode", {BoolScalar(true)}}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectNear((*out)[0], {1, 1, 1, 3}, {5, 4, 3});
}

// ---- linear algebra --------------------------------------------------------

TEST(LinearOp, MatchesSlowReference) {
  std::mt19937 rng(5);
  for (const Shape& xs : std::vector<Shape>{{7}, {3, 7}, {2, 4, 7}, {0, 7}}) {
    Tensor x = Random(rng, xs), w = Random(rng, {5, 7}), b = Random(rng, {5});
    auto out = RunOp("linear", {{"x", {x}}, {"weight", {w}}, {"bias", {b}}});
    ASSERT_TRUE(out.ok()) << out.status();
    Shape os = xs;
    os.back() = 5;
    std::vector<double> want;
    for (int64_t r = 0; r < x.size() / 7; ++r)
      for (int64_t o = 0; o < 5; ++o) {
        double acc = b.floats()[o];
        for (int64_t i = 0; i < 7; ++i) acc += double(x.floats()[r * 7 + i]) * w.floats()[o * 7 + i];
        want.push_back(acc);
      }
    ExpectNear((*out)[0], os, want);
  }
}

TEST(MatmulOp, BroadcastingTransposesAndVectors) {
  std::mt19937 rng(6);
  struct Case {
    Shape x, y;
    bool tx, ty;
    Shape out;
  };
  for (const Case& c : std::vector<Case>{{{3, 4}, {4, 5}, false, false, {3, 5}},
                                         {{2, 1, 4, 3}, {5, 4, 6}, true, false, {2, 5, 3, 6}},
                                         {{2, 3, 4}, {2, 6, 4}, false, true, {2, 3, 6}},
                                         {{4, 3}, {6, 4}, true, true, {3, 6}},
                                         {{4}, {2, 4, 5}, false, false, {2, 5}},
                                         {{2, 3, 4}, {4}, false, false, {2, 3}},
                                         {{0, 3, 4}, {4, 2}, false, false, {0, 3, 2}}}) {
    Tensor x = Random(rng, c.x), y = Random(rng, c.y);
    auto out = RunOp("matmul", {{"x", {x}}, {"y", {y}}, {"transpose_x", {BoolScalar(c.tx)}},
                                {"transpose_y", {BoolScalar(c.ty)}}});
    ASSERT_TRUE(out.ok()) << out.status();
    // Reference: numpy semantics spelled out per output element.
    Shape xs = c.x, ys = c.y;
    const bool xv = xs.size() == 1, yv = ys.size() == 1;
    if (xv) xs.insert(xs.begin(), 1);
    if (yv) ys.push_back(1);
    const bool tx = c.tx && !xv, ty = c.ty && !yv;
    const int64_t m = tx ? xs.back() : xs[xs.size() - 2], k = tx ? xs[xs.size() - 2] : xs.back();
    const int64_t n = ty ? ys[ys.size() - 2] : ys.back();
    const size_t rank = std::max(xs.size(), ys.size());
    Shape full = c.out;
    if (xv) full.insert(full.end() - (yv ? 0 : 1), 1);
    if (yv) full.push_back(1);
    std::vector<double> want(NumElements(full));
    for (int64_t i = 0; i < NumElements(full); ++i) {
      std::vector<int64_t> idx = Unflat(full, i);
      auto element = [&](const Tensor& t, const Shape& s, int64_t r, int64_t col, bool trans) {
        std::vector<int64_t> ti(s.size());
        for (size_t d = 0; d + 2 < s.size(); ++d) {
          const int64_t od = idx[rank - s.size() + d];
          ti[d] = s[d] == 1 ? 0 : od;
        }
        ti[s.size() - 2] = trans ? col : r;
        ti[s.size() - 1] = trans ? r : col;
        return double(t.floats()[Flat(s, ti)]);
      };
      double acc = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        acc += element(x, xs, idx[rank - 2], kk, tx) * element(y, ys, kk, idx[rank - 1], ty);
      }
      want[i] = acc;
      (void)m;
      (void)n;
    }
    ExpectNear((*out)[0], c.out, want);
  }
}

TEST(MatmulOp, RejectsMismatchedInnerDims) {
  std::mt19937 rng(7);
  auto out = RunOp("matmul", {{"x", {Random(rng, {2, 3})}}, {"y", {Random(rng, {4, 2})}}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- elementwise -----------------------------------------------------------

TEST(ElementwiseOp, BroadcastingArithmetic) {
  std::mt19937 rng(8);
  Tensor a = Random(rng, {2, 1, 3}), b = Random(rng, {4, 1}, 0.5, 2);
  const Shape out = {2, 4, 3};
  for (const std::string op : {"add", "sub", "mul", "real_div", "maximum", "minimum", "pow"}) {
    Tensor base = op == "pow" ? Random(rng, {2, 1, 3}, 0.1, 2) : a;
    auto r = RunOp(op, {{"x", {base}}, {"y", {b}}});
    ASSERT_TRUE(r.ok()) << op << r.status();
    std::vector<double> want;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 3; ++k) {
          const double x = base.floats()[i * 3 + k], y = b.floats()[j];
          want.push_back(op == "add" ? x + y : op == "sub" ? x - y : op == "mul" ? x * y
                         : op == "real_div" ? x / y : op == "maximum" ? std::max(x, y)
                         : op == "minimum" ? std::min(x, y) : std::pow(x, y));
        }
    ExpectNear((*r)[0], out, want);
  }
}

TEST(ElementwiseOp, ScalarsIntsComparisonsSelectAndEmpty) {
  auto r = RunOp("add", {{"x", {Tensor::Int({3}, {1, -2, 3})}}, {"y", {Tensor::IntScalar(10)}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].dtype(), DType::kInt32);
  ExpectNear((*r)[0], {3}, {11, 8, 13});
  r = RunOp("floor_div", {{"x", {Tensor::Int({2}, {-7, 7})}}, {"y", {Tensor::IntScalar(2)}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {2}, {-4, 3});
  r = RunOp("less", {{"x", {Tensor::Float({3}, {1, 2, 3})}}, {"y", {Tensor::Float({1}, {2})}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].dtype(), DType::kBool);
  ExpectNear((*r)[0], {3}, {1, 0, 0});
  Tensor cond = Tensor::Bool({2, 1}, {1, 0});
  r = RunOp("select", {{"cond", {cond}}, {"a", {Tensor::Float({3}, {1, 2, 3})}}, {"b", {Tensor::FloatScalar(-1)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {2, 3}, {1, 2, 3, -1, -1, -1});
  r = RunOp("mul", {{"x", {Tensor::Float({0, 3}, {})}}, {"y", {Tensor::Float({1, 3}, {1, 2, 3})}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{0, 3}));
  r = RunOp("add", {{"x", {Tensor::Float({2, 3}, std::vector<float>(6))}}, {"y", {Tensor::Float({4}, std::vector<float>(4))}}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- activations -----------------------------------------------------------

TEST(ActivationOp, MatchFormulas) {
  std::mt19937 rng(9);
  Tensor x = Random(rng, {3, 5}, -4, 4);
  struct Case {
    std::string op;
    Args extra;
    std::function<double(double)> f;
  };
  const double pi = std::acos(-1.0);
  const std::vector<Case> cases = {
      {"relu", {}, [](double v) { return std::max(v, 0.0); }},
      {"sigmoid", {}, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {"tanh", {}, [](double v) { return std::tanh(v); }},
      {"silu", {}, [](double v) { return v / (1 + std::exp(-v)); }},
      {"erf", {}, [](double v) { return std::erf(v); }},
      {"exp", {}, [](double v) { return std::exp(v); }},
      {"clip", {{"alpha", {Tensor::FloatScalar(-1)}}, {"beta", {Tensor::FloatScalar(2)}}},
       [](double v) { return std::min(std::max(v, -1.0), 2.0); }},
      {"leaky_relu", {{"alpha", {Tensor::FloatScalar(0.1f)}}}, [](double v) { return v > 0 ? v : 0.1 * v; }},
      {"gelu", {}, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {"gelu", {{"mode", {Str("TANH_APPROXIMATION")}}},
       [pi](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / pi) * (v + 0.044715 * v * v * v))); }},
      {"gelu", {{"mode", {Str("SIGMOID_APPROXIMATION")}}}, [](double v) { return v / (1 + std::exp(-1.702 * v)); }},
  };
  for (const Case& c : cases) {
    Args args = c.extra;
    args["x"] = {x};
    auto r = RunOp(c.op, args);
    ASSERT_TRUE(r.ok()) << c.op << r.status();
    std::vector<double> want;
    for (float v : x.floats()) want.push_back(c.f(v));
    ExpectNear((*r)[0], x.shape(), want, 1e-5);
  }
  Tensor pos = Random(rng, {4}, 0.1, 3);
  for (const std::string op : {"sqrt", "rsqrt", "log"}) {
    auto r = RunOp(op, {{"x", {pos}}});
    ASSERT_TRUE(r.ok());
    std::vector<double> want;
    for (float v : pos.floats()) want.push_back(op == "sqrt" ? std::sqrt(v) : op == "log" ? std::log(v) : 1 / std::sqrt(v));
    ExpectNear((*r)[0], {4}, want, 1e-5);
  }
  auto bad = RunOp("gelu", {{"x", {x}}, {"mode", {Str("FAST")}}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SoftmaxOp, AnyAxis) {
  std::mt19937 rng(10);
  Tensor x = Random(rng, {2, 3, 4}, -5, 5);
  for (int axis : {-1, 0, 1, -2}) {
    auto r = RunOp("softmax", {{"x", {x}}, {"axis", {Tensor::IntScalar(axis)}}});
    ASSERT_TRUE(r.ok());
    const int a = axis < 0 ? axis + 3 : axis;
    std::vector<double> want(24);
    for (int64_t i = 0; i < 24; ++i) {
      std::vector<int64_t> idx = Unflat(x.shape(), i);
      double sum = 0;
      for (int64_t k = 0; k < x.dim(a); ++k) {
        std::vector<int64_t> j = idx;
        j[a] = k;
        sum += std::exp(double(x.floats()[Flat(x.shape(), j)]));
      }
      want[i] = std::exp(double(x.floats()[i])) / sum;
    }
    ExpectNear((*r)[0], x.shape(), want, 1e-5);
  }
}

TEST(CastOp, TruncatesAndKeepsFloat32) {
  Tensor x = Tensor::Float({4}, {1.7f, -1.7f, 0.1f, 1e-9f});
  auto r = RunOp("cast", {{"x", {x}}, {"dtype", {Str("int32")}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {4}, {1, -1, 0, 0});
  r = RunOp("cast", {{"x", {x}}, {"dtype", {Str("fp16")}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].floats()[3], 1e-9f);  // not flushed through fp16
  r = RunOp("cast", {{"x", {x}}, {"dtype", {Str("bool")}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {4}, {1, 1, 1, 1});
}

// ---- normalisation ---------------------------------------------------------

std::vector<double> SlowNorm(const Tensor& x, const std::vector<int>& axes, const Tensor* gamma, const Tensor* beta,
                             double eps, bool per_channel_affine) {
  std::vector<double> out(x.size());
  for (int64_t i = 0; i < x.size(); ++i) {
    const std::vector<int64_t> idx = Unflat(x.shape(), i);
    double sum = 0, sq = 0;
    int64_t n = 0;
    for (int64_t j = 0; j < x.size(); ++j) {
      const std::vector<int64_t> jdx = Unflat(x.shape(), j);
      bool same_group = true;
      for (int64_t d = 0; d < x.rank(); ++d) {
        if (std::find(axes.begin(), axes.end(), d) == axes.end() && jdx[d] != idx[d]) same_group = false;
      }
      if (same_group) sum += x.floats()[j], sq += double(x.floats()[j]) * x.floats()[j], ++n;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    double v = (x.floats()[i] - mean) / std::sqrt(var + eps);
    int64_t gi = 0;
    if (per_channel_affine) {
      gi = idx[1];
    } else {
      for (int a : axes) gi = gi * x.dim(a) + idx[a];
    }
    if (gamma) v *= gamma->floats()[gi];
    if (beta) v += beta->floats()[gi];
    out[i] = v;
  }
  return out;
}

TEST(NormOp, LayerNormAxes) {
  std::mt19937 rng(11);
  Tensor x = Random(rng, {2, 3, 4}, -2, 3);
  for (const std::vector<int>& axes : std::vector<std::vector<int>>{{2}, {1, 2}, {0, 2}}) {
    Shape gs;
    for (int a : axes) gs.push_back(x.dim(a));
    Tensor g = Random(rng, gs), b = Random(rng, gs);
    std::vector<int32_t> ax(axes.begin(), axes.end());
    if (ax.size() == 1) ax[0] = -1;  // negative axis
    auto r = RunOp("layer_norm", {{"x", {x}}, {"axes", {Ints(ax)}}, {"gamma", {g}}, {"beta", {b}},
                                  {"epsilon", {Tensor::FloatScalar(1e-3f)}}});
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectNear((*r)[0], x.shape(), SlowNorm(x, axes, &g, &b, 1e-3, false), 1e-4);
  }
}

TEST(NormOp, InstanceAndBatchNorm) {
  std::mt19937 rng(12);
  Tensor x = Random(rng, {2, 3, 4, 5});
  Tensor g = Random(rng, {3}), b = Random(rng, {3});
  auto r = RunOp("instance_norm", {{"x", {x}}, {"gamma", {g}}, {"beta", {b}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], x.shape(), SlowNorm(x, {2, 3}, &g, &b, 1e-5, true), 1e-4);
  Tensor mean = Random(rng, {3}), var = Random(rng, {3}, 0.5, 2);
  r = RunOp("batch_norm", {{"x", {x}}, {"mean", {mean}}, {"variance", {var}}, {"gamma", {g}}, {"beta", {b}}});
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<double> want;
  for (int64_t i = 0; i < x.size(); ++i) {
    const int64_t c = Unflat(x.shape(), i)[1];
    want.push_back((x.floats()[i] - mean.floats()[c]) / std::sqrt(var.floats()[c] + 1e-5) * g.floats()[c] + b.floats()[c]);
  }
  ExpectNear((*r)[0], x.shape(), want);
}

// ---- reductions ------------------------------------------------------------

TEST(ReduceOp, AxesKeepDimsAndArgmax) {
  std::mt19937 rng(13);
  Tensor x = Random(rng, {2, 3, 4});
  for (const std::string op : {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min"}) {
    for (bool keep : {false, true}) {
      auto r = RunOp(op, {{"x", {x}}, {"axes", {Ints({-1, 0})}}, {"keep_dims", {BoolScalar(keep)}}});
      ASSERT_TRUE(r.ok()) << r.status();
      std::vector<double> want;
      for (int64_t j = 0; j < 3; ++j) {
        double s = 0, mx = -1e9, mn = 1e9;
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t k = 0; k < 4; ++k) {
            const double v = x.floats()[(i * 3 + j) * 4 + k];
            s += v, mx = std::max(mx, v), mn = std::min(mn, v);
          }
        want.push_back(op == "reduce_sum" ? s : op == "reduce_mean" ? s / 8 : op == "reduce_max" ? mx : mn);
      }
      ExpectNear((*r)[0], keep ? Shape{1, 3, 1} : Shape{3}, want);
    }
  }
  auto all = RunOp("reduce_sum", {{"x", {x}}});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0].shape(), Shape{});
  Tensor ties = Tensor::Float({2, 3}, {1, 3, 3, 5, 0, 5});
  auto am = RunOp("reduce_argmax", {{"x", {ties}}, {"axis", {Tensor::IntScalar(-1)}}});
  ASSERT_TRUE(am.ok());
  EXPECT_EQ((*am)[0].dtype(), DType::kInt32);
  ExpectNear((*am)[0], {2}, {1, 0});  // first of the ties
  auto empty = RunOp("reduce_sum", {{"x", {Tensor::Float({2, 0}, {})}}, {"axes", {Ints({1})}}});
  ASSERT_TRUE(empty.ok());
  ExpectNear((*empty)[0], {2}, {0, 0});
}

// ---- shape ops -------------------------------------------------------------

TEST(ShapeOp, ReshapeTransposeSqueezeExpand) {
  std::mt19937 rng(14);
  Tensor x = Random(rng, {2, 3, 4});
  auto r = RunOp("reshape", {{"x", {x}}, {"shape", {Ints({0, -1, 2})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 6, 2}));
  r = RunOp("transpose", {{"x", {x}}, {"perm", {Ints({2, 0, -2})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<double> want;
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) want.push_back(x.floats()[(i * 3 + j) * 4 + k]);
  ExpectNear((*r)[0], {4, 2, 3}, want);
  Tensor y = Random(rng, {1, 3, 1});
  r = RunOp("squeeze", {{"x", {y}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), Shape{3});
  r = RunOp("squeeze", {{"x", {y}}, {"axes", {Ints({-1})}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 3}));
  r = RunOp("expand_dims", {{"x", {x}}, {"axes", {Ints({0, -1})}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 2, 3, 4, 1}));
  r = RunOp("reshape", {{"x", {x}}, {"shape", {Ints({5, -1})}}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShapeOp, ConcatSplitStack) {
  std::mt19937 rng(15);
  Tensor a = Random(rng, {2, 3, 2}), b = Random(rng, {2, 1, 2}), e = Tensor::Float({2, 0, 2}, {});
  auto r = RunOp("concat", {{"values", {a, b, e}}, {"axis", {Tensor::IntScalar(-2)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<double> want;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 2; ++k) want.push_back(a.floats()[(i * 3 + j) * 2 + k]);
    for (int64_t k = 0; k < 2; ++k) want.push_back(b.floats()[i * 2 + k]);
  }
  ExpectNear((*r)[0], {2, 4, 2}, want);
  const Tensor joined = (*r)[0];
  auto parts = RunOp("split", {{"x", {joined}}, {"axis", {Tensor::IntScalar(1)}}, {"split_sizes", {Ints({3, 0, 1})}}}, 18, 3);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ExpectNear((*parts)[0], a.shape(), std::vector<double>(a.floats().begin(), a.floats().end()));
  EXPECT_EQ((*parts)[1].shape(), (Shape{2, 0, 2}));
  ExpectNear((*parts)[2], b.shape(), std::vector<double>(b.floats().begin(), b.floats().end()));
  parts = RunOp("split", {{"x", {joined}}, {"axis", {Tensor::IntScalar(-1)}}, {"num_splits", {Tensor::IntScalar(2)}}}, 18, 2);
  ASSERT_TRUE(parts.ok());
  for (int p = 0; p < 2; ++p) {
    std::vector<double> half;
    for (int64_t i = 0; i < 8; ++i) half.push_back(joined.floats()[i * 2 + p]);
    ExpectNear((*parts)[p], {2, 4, 1}, half);
  }
  auto st = RunOp("stack", {{"values", {b, b}}, {"axis", {Tensor::IntScalar(-1)}}});
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)[0].shape(), (Shape{2, 1, 2, 2}));
  EXPECT_EQ((*st)[0].floats()[1], b.floats()[0]);
}

TEST(ShapeOp, SliceByIndexPythonSemantics) {
  Tensor x = Tensor::Float({2, 6}, {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15});
  // x[1:, -1:0:-2]  -> [[15, 13, 11]]
  auto r = RunOp("slice_by_index", {{"x", {x}}, {"begin", {Ints({1, -1})}}, {"end", {Ints({0, 0})}},
                                    {"stride", {Ints({1, -2})}}, {"end_mask", {Tensor::Bool({2}, {1, 0})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {1, 3}, {15, 13, 11});
  // x[0, ::-1] with squeeze_mask -> [5, 4, 3, 2, 1, 0]
  r = RunOp("slice_by_index", {{"x", {x}}, {"begin", {Ints({0, 0})}}, {"end", {Ints({0, 0})}},
                               {"stride", {Ints({1, -1})}}, {"begin_mask", {Tensor::Bool({2}, {0, 1})}},
                               {"end_mask", {Tensor::Bool({2}, {0, 1})}}, {"squeeze_mask", {Tensor::Bool({2}, {1, 0})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {6}, {5, 4, 3, 2, 1, 0});
  // x[:, 2:100:3] clamps -> [[2, 5], [12, 15]]; x[:, 4:2] is empty
  r = RunOp("slice_by_index", {{"x", {x}}, {"begin", {Ints({0, 2})}}, {"end", {Ints({2, 100})}}, {"stride", {Ints({1, 3})}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {2, 2}, {2, 5, 12, 15});
  r = RunOp("slice_by_index", {{"x", {x}}, {"begin", {Ints({0, 4})}}, {"end", {Ints({2, 2})}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 0}));
  r = RunOp("slice_by_size", {{"x", {x}}, {"begin", {Ints({1, 2})}}, {"size", {Ints({-1, 3})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {1, 3}, {12, 13, 14});
}

TEST(ShapeOp, SliceUpdateWritesTheSliceByIndexSelection) {
  Tensor x = Tensor::Float({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  // x[1, ::-2] = [10, 20]  ->  row 1 becomes [4, 20, 6, 10]
  auto r = RunOp("slice_update", {{"x", {x}}, {"update", {Tensor::Float({2}, {10, 20})}}, {"begin", {Ints({1, 0})}},
                                  {"end", {Ints({2, 0})}}, {"stride", {Ints({1, -2})}},
                                  {"begin_mask", {Tensor::Bool({2}, {0, 1})}}, {"end_mask", {Tensor::Bool({2}, {0, 1})}},
                                  {"squeeze_mask", {Tensor::Bool({2}, {1, 0})}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {2, 4}, {0, 1, 2, 3, 4, 20, 6, 10});
  r = RunOp("slice_update", {{"x", {x}}, {"update", {Tensor::Float({1, 3}, {9, 9, 9})}}, {"begin", {Ints({0, 0})}},
                             {"end", {Ints({1, 2})}}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShapeOp, GatherTilePad) {
  Tensor x = Tensor::Float({3, 2}, {0, 1, 10, 11, 20, 21});
  auto r = RunOp("gather", {{"x", {x}}, {"indices", {Tensor::Int({2, 2}, {2, 0, -1, 1})}}, {"axis", {Tensor::IntScalar(0)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {2, 2, 2}, {20, 21, 0, 1, 20, 21, 10, 11});
  r = RunOp("gather", {{"x", {x}}, {"indices", {Tensor::Int({1}, {1})}}, {"axis", {Tensor::IntScalar(-1)}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {3, 1}, {1, 11, 21});
  r = RunOp("gather", {{"x", {x}}, {"indices", {Tensor::Int({1}, {3})}}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = RunOp("tile", {{"x", {Tensor::Float({1, 2}, {1, 2})}}, {"reps", {Ints({2, 2})}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {2, 4}, {1, 2, 1, 2, 1, 2, 1, 2});
  Tensor row = Tensor::Float({1, 3}, {1, 2, 3});
  r = RunOp("pad", {{"x", {row}}, {"pad", {Ints({2, 1})}}, {"mode", {Str("constant")}}, {"constant_val", {Tensor::FloatScalar(9)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {1, 6}, {9, 9, 1, 2, 3, 9});
  r = RunOp("pad", {{"x", {row}}, {"pad", {Ints({2, 2})}}, {"mode", {Str("reflect")}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {1, 7}, {3, 2, 1, 2, 3, 2, 1});
  r = RunOp("pad", {{"x", {row}}, {"pad", {Ints({1, 0, 0, 2})}}, {"mode", {Str("replicate")}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {2, 5}, {1, 2, 3, 3, 3, 1, 2, 3, 3, 3});
  r = RunOp("pad", {{"x", {row}}, {"pad", {Ints({3, 0})}}, {"mode", {Str("reflect")}}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// The grid points listed in the op definition's notes: resizing the ramp
// [0, 1] (Xin = 2) reproduces them exactly.
TEST(ResizeOp, SamplingModesPlaceTheDocumentedGridPoints) {
  Tensor ramp = Tensor::Float({1, 1, 2}, {0, 1});
  struct Case {
    std::string mode;
    int out;
    std::vector<double> grid;
  };
  for (const Case& c : std::vector<Case>{{"UNALIGN_CORNERS", 5, {0, 0.1, 0.5, 0.9, 1}},
                                         {"STRICT_ALIGN_CORNERS", 5, {0, 0.25, 0.5, 0.75, 1}},
                                         {"ALIGN_CORNERS", 5, {0, 0.25, 0.5, 0.75, 1}},
                                         {"DEFAULT", 5, {0, 0.4, 0.8, 1, 1}},
                                         {"OFFSET_CORNERS", 5, {0.1, 0.3, 0.5, 0.7, 0.9}},
                                         {"UNALIGN_CORNERS", 6, {0, 0, 1 / 3., 2 / 3., 1, 1}},
                                         {"DEFAULT", 6, {0, 1 / 3., 2 / 3., 1, 1, 1}},
                                         {"OFFSET_CORNERS", 6, {1 / 12., 3 / 12., 5 / 12., 7 / 12., 9 / 12., 11 / 12.}},
                                         {"ALIGN_CORNERS", 1, {0.5}}}) {
    SCOPED_TRACE(c.mode + " " + std::to_string(c.out));
    auto r = RunOp("resize_bilinear", {{"x", {ramp}}, {"target_size_height", {Tensor::IntScalar(1)}},
                                       {"target_size_width", {Tensor::IntScalar(c.out)}}, {"sampling_mode", {Str(c.mode)}}});
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectNear((*r)[0], {1, 1, c.out}, c.grid, 1e-6);
  }
}

TEST(ResizeOp, BilinearIn2dMatchesSlowReference) {
  std::mt19937 rng(16);
  Tensor x = Random(rng, {2, 3, 4, 5});
  auto r = RunOp("resize_bilinear", {{"x", {x}}, {"target_size_height", {Tensor::IntScalar(7)}},
                                     {"target_size_width", {Tensor::IntScalar(3)}}, {"sampling_mode", {Str("STRICT_ALIGN_CORNERS")}}});
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<double> want;
  for (int64_t p = 0; p < 6; ++p)
    for (int64_t i = 0; i < 7; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        const double gy = i * 3.0 / 6, gx = j * 4.0 / 2;
        double acc = 0;
        // Sum of the four neighbours weighted by the triangle kernel.
        for (int64_t y = 0; y < 4; ++y)
          for (int64_t xx = 0; xx < 5; ++xx) {
            const double wy = std::max(0.0, 1 - std::fabs(gy - y)), wx = std::max(0.0, 1 - std::fabs(gx - xx));
            acc += wy * wx * x.floats()[(p * 4 + y) * 5 + xx];
          }
        want.push_back(acc);
      }
  ExpectNear((*r)[0], {2, 3, 7, 3}, want, 1e-5);
}

TEST(SpaceBatchOp, MatchesTensorFlowLayoutAndRoundTrips) {
  std::mt19937 rng(17);
  Tensor x = Random(rng, {2, 3, 5, 4});
  // Block 2x2, padding 1 top / 0 bottom / 1 left / 1 right: 6x6 padded.
  auto s2b = RunOp("space_to_batch", {{"x", {x}}, {"block_shape", {Ints({2, 2})}}, {"paddings", {Tensor::Int({2, 2}, {1, 0, 1, 1})}}});
  ASSERT_TRUE(s2b.ok()) << s2b.status();
  const Tensor& b = (*s2b)[0];
  ASSERT_EQ(b.shape(), (Shape{8, 3, 3, 3}));
  for (int64_t i = 0; i < b.size(); ++i) {
    const std::vector<int64_t> idx = Unflat(b.shape(), i);
    const int64_t n = idx[0] % 2, by = (idx[0] / 2) / 2, bx = (idx[0] / 2) % 2;
    const int64_t y = idx[2] * 2 + by - 1, xx = idx[3] * 2 + bx - 1;
    const double want = (y < 0 || y >= 5 || xx < 0 || xx >= 4) ? 0 : x.floats()[Flat(x.shape(), {n, idx[1], y, xx})];
    ASSERT_EQ(b.floats()[i], want) << i;
  }
  auto back = RunOp("batch_to_space", {{"x", {b}}, {"block_shape", {Ints({2, 2})}}, {"crops", {Tensor::Int({2, 2}, {1, 0, 1, 1})}}});
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectNear((*back)[0], x.shape(), std::vector<double>(x.floats().begin(), x.floats().end()), 0);
}

// LSTM step by step, gate by gate, in double.
TEST(LstmOp, MatchesSlowReference) {
  std::mt19937 rng(18);
  const int64_t seq = 4, batch = 2, in = 3, hid = 5;
  for (const std::string direction : {"forward", "reverse", "bidirectional"}) {
    for (bool sequence : {false, true}) {
      SCOPED_TRACE(direction + (sequence ? " sequence" : " last"));
      const int64_t nd = direction == "bidirectional" ? 2 : 1;
      Tensor x = Random(rng, {seq, batch, in}), h0 = Random(rng, {batch, nd * hid}), c0 = Random(rng, {batch, nd * hid});
      std::vector<Tensor> w_ih, w_hh, bias;
      for (int64_t d = 0; d < nd; ++d) {
        w_ih.push_back(Random(rng, {4 * hid, in}));
        w_hh.push_back(Random(rng, {4 * hid, hid}));
        bias.push_back(Random(rng, {4 * hid}));
      }
      Args args = {{"x", {x}}, {"initial_h", {h0}}, {"initial_c", {c0}}, {"weight_ih", {w_ih[0]}}, {"weight_hh", {w_hh[0]}},
                   {"bias", {bias[0]}}, {"direction", {Str(direction)}}, {"output_sequence", {BoolScalar(sequence)}},
                   {"recurrent_activation", {Str("sigmoid")}}, {"cell_activation", {Str("tanh")}}, {"activation", {Str("tanh")}}};
      if (nd == 2) {
        args["weight_ih_back"] = {w_ih[1]};
        args["weight_hh_back"] = {w_hh[1]};
        args["bias_back"] = {bias[1]};
      }
      auto r = RunOp("lstm", args, 16, 3);
      ASSERT_TRUE(r.ok()) << r.status();
      std::vector<double> seq_out((sequence ? seq : 1) * batch * nd * hid), h_last(batch * nd * hid), c_last(batch * nd * hid);
      auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
      for (int64_t d = 0; d < nd; ++d) {
        const bool reverse = direction == "reverse" || d == 1;
        for (int64_t b = 0; b < batch; ++b) {
          std::vector<double> h(hid), c(hid);
          for (int64_t k = 0; k < hid; ++k) h[k] = h0.floats()[b * nd * hid + d * hid + k], c[k] = c0.floats()[b * nd * hid + d * hid + k];
          for (int64_t step = 0; step < seq; ++step) {
            const int64_t t = reverse ? seq - 1 - step : step;
            std::vector<double> pre(4 * hid);
            for (int64_t g = 0; g < 4 * hid; ++g) {
              double acc = bias[d].floats()[g];
              for (int64_t i = 0; i < in; ++i) acc += double(w_ih[d].floats()[g * in + i]) * x.floats()[(t * batch + b) * in + i];
              for (int64_t j = 0; j < hid; ++j) acc += double(w_hh[d].floats()[g * hid + j]) * h[j];
              pre[g] = acc;
            }
            for (int64_t k = 0; k < hid; ++k) {
              const double ig = sig(pre[k]), fg = sig(pre[hid + k]), og = sig(pre[2 * hid + k]), zg = std::tanh(pre[3 * hid + k]);
              c[k] = fg * c[k] + ig * zg;
              h[k] = og * std::tanh(c[k]);
              if (sequence) seq_out[(t * batch + b) * nd * hid + d * hid + k] = h[k];
            }
          }
          for (int64_t k = 0; k < hid; ++k) {
            h_last[b * nd * hid + d * hid + k] = h[k];
            c_last[b * nd * hid + d * hid + k] = c[k];
            if (!sequence) seq_out[b * nd * hid + d * hid + k] = h[k];
          }
        }
      }
      ExpectNear((*r)[0], {sequence ? seq : 1, batch, nd * hid}, seq_out, 1e-5);
      ExpectNear((*r)[1], {batch, nd * hid}, h_last, 1e-5);
      ExpectNear((*r)[2], {batch, nd * hid}, c_last, 1e-5);
    }
  }
  // Peepholes are refused, not guessed.
  Tensor x = Random(rng, {1, 1, 2});
  auto r = RunOp("lstm", {{"x", {x}}, {"initial_h", {Random(rng, {1, 1})}}, {"initial_c", {Random(rng, {1, 1})}},
                          {"weight_ih", {Random(rng, {4, 2})}}, {"weight_hh", {Random(rng, {4, 1})}},
                          {"peephole", {Random(rng, {3})}}}, 16, 3);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(AttentionOp, MatchesSlowReferenceWithMasks) {
  std::mt19937 rng(20);
  const int64_t l = 3, sl = 4, e = 5, ev = 2;
  Tensor q = Random(rng, {2, l, e}), k = Random(rng, {2, sl, e}), v = Random(rng, {2, sl, ev});
  Tensor bool_mask = Tensor::Bool({l, sl}, {1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1});
  Tensor float_mask = Random(rng, {2, 1, sl}, -2, 2);
  for (const Tensor* mask : std::vector<const Tensor*>{nullptr, &bool_mask, &float_mask}) {
    Args args = {{"query", {q}}, {"key", {k}}, {"value", {v}}};
    if (mask) args["attn_mask"] = {*mask};
    auto r = RunOp("scaled_dot_product_attention", args);
    ASSERT_TRUE(r.ok()) << r.status();
    std::vector<double> want;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < l; ++i) {
        std::vector<double> score(sl);
        double mx = -1e300;
        for (int64_t j = 0; j < sl; ++j) {
          double d = 0;
          for (int64_t t = 0; t < e; ++t) d += double(q.floats()[(b * l + i) * e + t]) * k.floats()[(b * sl + j) * e + t];
          d /= std::sqrt(double(e));
          if (mask == &bool_mask && !bool_mask.ints()[i * sl + j]) d = -1e300;
          if (mask == &float_mask) d += float_mask.floats()[b * sl + j];
          score[j] = d;
          mx = std::max(mx, d);
        }
        double sum = 0;
        for (double& sc : score) sum += sc = std::exp(sc - mx);
        for (int64_t t = 0; t < ev; ++t) {
          double acc = 0;
          for (int64_t j = 0; j < sl; ++j) acc += score[j] / sum * v.floats()[(b * sl + j) * ev + t];
          want.push_back(acc);
        }
      }
    ExpectNear((*r)[0], {2, l, ev}, want, 1e-5);
  }
}

TEST(MoreOps, PreluL2NormUpsampleCumsumRange) {
  std::mt19937 rng(21);
  Tensor x = Random(rng, {2, 3, 2, 2});
  Tensor alpha = Tensor::Float({3}, {0.1f, 0.2f, 0.3f});
  auto r = RunOp("prelu", {{"x", {x}}, {"alpha", {alpha}}});
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<double> want;
  for (int64_t i = 0; i < x.size(); ++i) {
    const double v = x.floats()[i];
    want.push_back(v >= 0 ? v : alpha.floats()[Unflat(x.shape(), i)[1]] * v);
  }
  ExpectNear((*r)[0], x.shape(), want);

  r = RunOp("l2_norm", {{"x", {x}}});
  ASSERT_TRUE(r.ok()) << r.status();
  want.clear();
  for (int64_t b = 0; b < 2; ++b) {
    double sq = 0;
    for (int64_t i = 0; i < 12; ++i) sq += double(x.floats()[b * 12 + i]) * x.floats()[b * 12 + i];
    for (int64_t i = 0; i < 12; ++i) want.push_back(x.floats()[b * 12 + i] / std::sqrt(sq + 1e-6));
  }
  ExpectNear((*r)[0], x.shape(), want);

  Tensor img = Tensor::Float({1, 2, 2}, {1, 2, 3, 4});
  r = RunOp("upsample_nearest_neighbor", {{"x", {img}}, {"scale_factor_height", {Tensor::IntScalar(2)}},
                                          {"scale_factor_width", {Tensor::IntScalar(3)}}});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectNear((*r)[0], {1, 4, 6}, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4});
  r = RunOp("upsample_nearest_neighbor", {{"x", {img}}, {"scale_factor_height", {Tensor::FloatScalar(1.5f)}}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);

  Tensor m = Tensor::Float({2, 3}, {1, 2, 3, 4, 5, 6});
  r = RunOp("cumsum", {{"x", {m}}, {"axis", {Tensor::IntScalar(-1)}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {2, 3}, {1, 3, 6, 4, 9, 15});
  r = RunOp("cumsum", {{"x", {m}}, {"axis", {Tensor::IntScalar(1)}}, {"exclusive", {BoolScalar(true)}}, {"reverse", {BoolScalar(true)}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {2, 3}, {5, 3, 0, 11, 6, 0});
  r = RunOp("cumsum", {{"x", {m}}, {"axis", {Tensor::IntScalar(0)}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {2, 3}, {1, 2, 3, 5, 7, 9});

  r = RunOp("range_1d", {{"end", {Tensor::IntScalar(10)}}, {"start", {Tensor::IntScalar(1)}}, {"step", {Tensor::IntScalar(3)}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].dtype(), DType::kInt32);
  ExpectNear((*r)[0], {3}, {1, 4, 7});
  r = RunOp("range_1d", {{"end", {Tensor::FloatScalar(-1)}}, {"start", {Tensor::FloatScalar(1)}}, {"step", {Tensor::FloatScalar(-0.5f)}}});
  ASSERT_TRUE(r.ok());
  ExpectNear((*r)[0], {4}, {1, 0.5, 0, -0.5});
  r = RunOp("range_1d", {{"end", {Tensor::IntScalar(0)}}, {"start", {Tensor::IntScalar(5)}}, {"step", {Tensor::IntScalar(1)}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), Shape{0});
}

TEST(OpRegistry, CoversTheRequiredOps) {
  for (const char* op : {"add", "sub", "mul", "real_div", "pow", "maximum", "minimum", "relu", "clip", "sigmoid",
                         "tanh", "silu", "gelu", "softmax", "exp", "log", "sqrt", "rsqrt", "erf", "conv", "avg_pool",
                         "max_pool", "batch_norm", "layer_norm", "instance_norm", "linear", "matmul", "reshape",
                         "transpose", "concat", "split", "squeeze", "expand_dims", "slice_by_index", "slice_by_size",
                         "reduce_mean", "reduce_sum", "reduce_max", "reduce_argmax", "cast", "identity", "pad",
                         "gather", "stack", "tile", "select", "less", "greater", "equal", "gather_nd",
                         "gather_along_axis", "scatter", "scatter_nd", "scatter_along_axis", "topk", "argsort",
                         "one_hot", "einsum", "gru", "rnn", "quantize", "dequantize", "band_part", "fill_like",
                         "reshape_like", "reverse", "reverse_sequence"}) {
    EXPECT_NE(OpRegistry::Default().Find(op), nullptr) << op;
  }
}

// A program is untrusted: shapes computed from a few bytes of parameters
// (fill, tile, pad, range, broadcasting) are checked before allocation.
TEST(TensorLimits, ShapesFromParametersAreCheckedBeforeAllocating) {
  EXPECT_TRUE(CheckShape({1 << 10, 1 << 10}).ok());
  EXPECT_EQ(CheckShape({-1, 4}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckShape({int64_t{1} << 40, int64_t{1} << 40, 0}).code(), absl::StatusCode::kOk);  // empty
  EXPECT_EQ(CheckShape({int64_t{1} << 62, int64_t{1} << 62}).code(), absl::StatusCode::kResourceExhausted);  // overflow
  EXPECT_EQ(CheckShape({int64_t{1} << 16, int64_t{1} << 15}).code(), absl::StatusCode::kResourceExhausted);

  auto fill = RunOp("fill", {{"shape", {Ints({1 << 16, 1 << 16})}}, {"value", {Tensor::FloatScalar(1)}}});
  EXPECT_EQ(fill.status().code(), absl::StatusCode::kResourceExhausted) << fill.status();
  auto tile = RunOp("tile", {{"x", {Tensor::Float({1, 2}, {1, 2})}}, {"reps", {Ints({1 << 20, 1 << 20})}}});
  EXPECT_EQ(tile.status().code(), absl::StatusCode::kResourceExhausted) << tile.status();
  auto range = RunOp("range_1d", {{"end", {Tensor::FloatScalar(3e38f)}}, {"start", {Tensor::FloatScalar(0)}},
                                  {"step", {Tensor::FloatScalar(1e-30f)}}});
  EXPECT_EQ(range.status().code(), absl::StatusCode::kResourceExhausted) << range.status();
  auto pad = RunOp("pad", {{"x", {Tensor::Float({2}, {1, 2})}}, {"pad", {Ints({1 << 30, 1 << 30})}}});
  EXPECT_EQ(pad.status().code(), absl::StatusCode::kResourceExhausted) << pad.status();
  // [n, 1] x [1, m] broadcasts to n * m elements.
  const int32_t n = 1 << 16;
  auto add = RunOp("add", {{"x", {Tensor::Zeros(DType::kFloat32, {n, 1})}}, {"y", {Tensor::Zeros(DType::kFloat32, {1, n})}}});
  EXPECT_FALSE(add.ok());
  EXPECT_NE(add.status().message().find("limit"), std::string::npos) << add.status();

  // The limit is the process's; lowering it refuses what was fine before.
  const int64_t saved = MaxTensorElements();
  SetMaxTensorElements(16);
  auto small = RunOp("fill", {{"shape", {Ints({4, 5})}}, {"value", {Tensor::FloatScalar(1)}}});
  EXPECT_EQ(small.status().code(), absl::StatusCode::kResourceExhausted);
  SetMaxTensorElements(saved);
  EXPECT_TRUE(RunOp("fill", {{"shape", {Ints({4, 5})}}, {"value", {Tensor::FloatScalar(1)}}}).ok());
}

// Kernels hand their outputs over without a copy: each output's storage is
// the buffer the kernel filled (a copy doubled every op's output for an
// instant, a third of Mosaic's peak memory).
TEST(TensorMemory, OutputsMovesEachTensorsStorage) {
  Tensor a = Tensor::Float({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::Int({2}, {7, 8});
  const float* fa = a.floats().data();
  const int32_t* ib = b.ints().data();
  std::vector<Tensor> out = Outputs(std::move(a), std::move(b));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].floats().data(), fa);
  EXPECT_EQ(out[1].ints().data(), ib);
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  // A const tensor (a constant layer's value) is copied, not moved from.
  const Tensor c = Tensor::FloatScalar(5);
  std::vector<Tensor> copied = Outputs(c);
  EXPECT_NE(copied[0].floats().data(), c.floats().data());
  EXPECT_EQ(c.size(), 1);
}

}  // namespace
}  // namespace coremlz::execute::testing
