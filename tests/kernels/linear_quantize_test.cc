// LinearQuantize against a slow element-by-element reference of Core ML
// tools' quantize_weight_by_dtype (coremltools/optimize/_utils.py), with the
// weight dtype's arithmetic emulated by rounding after every operation.
#include "compress/linear_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "compress/block_grid.h"
#include "format/sub_byte.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace coremlz::compress {
namespace {

using kernel_test::Dist;
using kernel_test::NumElements;
using kernel_test::Prec;
using kernel_test::Rd;
using kernel_test::RoundHalfEvenRef;
using kernel_test::Shape;
using kernel_test::ShapeStr;
using kernel_test::Unravel;

Precision ToPrecision(Prec p) { return p == Prec::k16 ? Precision::kFloat16 : Precision::kFloat32; }

// get_quant_range, written as the table in the notes.
void RefRange(int bits, bool is_signed, bool symmetric, int* qmin, int* qmax) {
  if (bits == 8) {
    if (is_signed) {
      *qmin = symmetric ? -127 : -128;
      *qmax = 127;
    } else {
      *qmin = 0;
      *qmax = symmetric ? 254 : 255;
    }
  } else {
    if (is_signed) {
      *qmin = symmetric ? -7 : -8;
      *qmax = 7;
    } else {
      *qmin = 0;
      *qmax = symmetric ? 14 : 15;
    }
  }
}

struct RefResult {
  std::vector<int32_t> codes;       // integer code values
  std::vector<double> unclipped;    // round(w/s) + zp before the clip (NaN possible)
  std::vector<float> scale;         // per block
  std::vector<int32_t> zero_point;  // per block (empty if none)
  bool nan_zero_point_with_finite_scale = false;
};

std::vector<int64_t> BlockOfElement(const Shape& shape, const Shape& blocks, int64_t* num_blocks) {
  Shape eff(shape.size()), grid(shape.size());
  *num_blocks = 1;
  for (size_t a = 0; a < shape.size(); ++a) {
    eff[a] = blocks[a] == 0 ? shape[a] : blocks[a];
    grid[a] = shape[a] / eff[a];
    *num_blocks *= grid[a];
  }
  std::vector<int64_t> out(NumElements(shape));
  for (int64_t e = 0; e < static_cast<int64_t>(out.size()); ++e) {
    const auto c = Unravel(e, shape);
    int64_t b = 0;
    for (size_t a = 0; a < shape.size(); ++a) b = b * grid[a] + c[a] / eff[a];
    out[e] = b;
  }
  return out;
}

// numpy: NaN survives round / clip and casts to integer 0.
int32_t NumpyCastToInt(double v) { return std::isnan(v) ? 0 : static_cast<int32_t>(v); }
double NumpyClip(double v, double lo, double hi) {
  if (std::isnan(v)) return v;
  return std::min(std::max(v, lo), hi);
}

RefResult Reference(const std::vector<float>& w, const Shape& shape, const Shape& blocks, int bits, bool is_signed,
                    bool symmetric, Prec p) {
  int qmin, qmax;
  RefRange(bits, is_signed, symmetric, &qmin, &qmax);
  int64_t nb;
  const std::vector<int64_t> block_of = BlockOfElement(shape, blocks, &nb);
  RefResult r;
  r.scale.resize(nb);
  std::vector<double> zp_value(nb, 0.0);  // as numpy holds it (float, may be NaN)
  const bool has_zp = !(symmetric && is_signed);
  for (int64_t b = 0; b < nb; ++b) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (size_t e = 0; e < w.size(); ++e) {
      if (block_of[e] != b) continue;
      if (w[e] < lo) lo = w[e];
      if (w[e] > hi) hi = w[e];
    }
    float vmin, vmax;
    if (symmetric) {
      const float m = std::fabs(lo) > std::fabs(hi) ? std::fabs(lo) : std::fabs(hi);
      vmin = -m;
      vmax = m;
    } else {
      vmin = lo < 0.f ? lo : 0.f;
      vmax = hi > 0.f ? hi : 0.f;
    }
    const float width = Rd(p, vmax - vmin);
    r.scale[b] = Rd(p, width / static_cast<float>(qmax - qmin));
    if (!has_zp) continue;
    if (symmetric) {
      zp_value[b] = qmax / 2;  // q_val_max // 2, a float64 array in numpy
    } else {
      const float t1 = Rd(p, static_cast<float>(qmin) * vmax);
      const float t2 = Rd(p, static_cast<float>(qmax) * vmin);
      float num = Rd(p, t1 - t2);
      float z = Rd(p, num / width);
      // Documented difference from Core ML tools: when the fp16 numerator
      // overflows (numpy then quantizes the whole block to garbage), the
      // zero point is computed in fp32.
      if (!std::isfinite(num) && width > 0) {
        num = static_cast<float>(qmin) * vmax - static_cast<float>(qmax) * vmin;
        z = num / width;
      }
      zp_value[b] = NumpyClip(RoundHalfEvenRef(z), qmin, qmax);
      if (std::isnan(zp_value[b]) && std::isfinite(r.scale[b]) && r.scale[b] != 0) {
        r.nan_zero_point_with_finite_scale = true;
      }
    }
  }
  if (has_zp) {
    r.zero_point.resize(nb);
    for (int64_t b = 0; b < nb; ++b) r.zero_point[b] = NumpyCastToInt(zp_value[b]);
  }
  r.codes.resize(w.size());
  r.unclipped.resize(w.size());
  for (size_t e = 0; e < w.size(); ++e) {
    const int64_t b = block_of[e];
    double q = RoundHalfEvenRef(Rd(p, w[e] / r.scale[b]));
    if (has_zp) q = q + zp_value[b];  // integers: exact in either dtype
    r.unclipped[e] = q;
    r.codes[e] = NumpyCastToInt(NumpyClip(q, qmin, qmax));
  }
  return r;
}

struct Config {
  int bits;
  bool is_signed, symmetric;
};

std::string Describe(const Config& c, Prec p, const Shape& shape, const Shape& blocks) {
  return std::string(c.is_signed ? "int" : "uint") + std::to_string(c.bits) + (c.symmetric ? " symmetric" : " asymmetric") +
         (p == Prec::k16 ? " fp16" : " fp32") + " shape " + ShapeStr(shape) + " blocks " + ShapeStr(blocks);
}

// Compares the kernel with the reference; also checks the code range, the
// raw code bits, the dequantization error bound and LinearDequantize.
// Returns false (after reporting) when the reference says the case has a
// NaN zero point with a usable scale (see NanZeroPointPropagates).
bool CheckCase(const std::vector<float>& w, const Shape& shape, const Shape& blocks, const Config& c, Prec p,
               bool skip_nan_zero_point = true) {
  SCOPED_TRACE(Describe(c, p, shape, blocks));
  const RefResult ref = Reference(w, shape, blocks, c.bits, c.is_signed, c.symmetric, p);
  if (skip_nan_zero_point && ref.nan_zero_point_with_finite_scale) return false;
  auto grid = BlockGrid::Make(shape, blocks);
  EXPECT_TRUE(grid.ok()) << grid.status();
  if (!grid.ok()) return true;
  LinearQuantizeOptions o;
  o.bits = c.bits;
  o.is_signed = c.is_signed;
  o.symmetric = c.symmetric;
  o.precision = ToPrecision(p);
  auto q = LinearQuantize(w, *grid, o);
  EXPECT_TRUE(q.ok()) << q.status();
  if (!q.ok()) return true;
  EXPECT_EQ(q->bits, c.bits);
  EXPECT_EQ(q->is_signed, c.is_signed);
  EXPECT_EQ(q->codes.size(), w.size());
  EXPECT_EQ(q->scale.size(), ref.scale.size());
  if (q->codes.size() != w.size() || q->scale.size() != ref.scale.size()) return true;
  int failures = 0;
  for (size_t b = 0; b < ref.scale.size(); ++b) {
    // Bit-exact (inf and 0 included).
    if (kernel_test::FloatBits(q->scale[b]) != kernel_test::FloatBits(ref.scale[b])) {
      ADD_FAILURE() << "scale of block " << b << ": kernel " << q->scale[b] << " reference " << ref.scale[b];
      if (++failures > 5) return true;
    }
  }
  EXPECT_EQ(q->zero_point.empty(), ref.zero_point.empty());
  if (!ref.zero_point.empty() && q->zero_point.size() == ref.zero_point.size()) {
    for (size_t b = 0; b < ref.zero_point.size(); ++b) {
      EXPECT_EQ(q->zero_point[b], ref.zero_point[b]) << "zero point of block " << b;
    }
  }
  int qmin, qmax;
  RefRange(c.bits, c.is_signed, c.symmetric, &qmin, &qmax);
  const uint32_t mask = (1u << c.bits) - 1;
  for (size_t e = 0; e < w.size(); ++e) {
    const int32_t code = q->CodeValue(e);
    if (code != ref.codes[e] || code < qmin || code > qmax || (q->codes[e] & ~mask) != 0 ||
        (q->codes[e] & mask) != (static_cast<uint32_t>(ref.codes[e]) & mask)) {
      ADD_FAILURE() << "element " << e << " w=" << w[e] << ": kernel code " << code << " (raw "
                    << int(q->codes[e]) << "), reference " << ref.codes[e] << ", range [" << qmin << "," << qmax
                    << "]";
      if (++failures > 5) return true;
    }
  }
  // Dequantization: bit-exact vs scale * (q - zp) in fp32 rounded once, and
  // within half a step of the original wherever the code was not clipped.
  int64_t nb;
  const auto block_of = BlockOfElement(shape, blocks, &nb);
  std::vector<float> deq(w.size());
  LinearDequantize(*q, *grid, ToPrecision(p), absl::MakeSpan(deq));
  for (size_t e = 0; e < w.size(); ++e) {
    const int64_t b = block_of[e];
    const float s = q->scale[b];
    const int32_t zp = q->zero_point.empty() ? 0 : q->zero_point[b];
    const float expect = Rd(p, s * static_cast<float>(q->CodeValue(e) - zp));
    if (!(deq[e] == expect || (std::isnan(deq[e]) && std::isnan(expect)))) {
      ADD_FAILURE() << "dequantized element " << e << ": " << deq[e] << " expected " << expect;
      if (++failures > 5) return true;
    }
    const double u = ref.unclipped[e];
    if (!(s > 0) || !std::isfinite(s) || std::isnan(u) || u < qmin || u > qmax) continue;
    const double ratio = static_cast<double>(w[e]) / s;
    const double bound = s * (0.5 + kernel_test::Ulp(p, ratio) / 2 + 1e-6) + kernel_test::Ulp(p, deq[e]) / 2 +
                         kernel_test::Ulp(Prec::k32, deq[e]);
    if (std::fabs(static_cast<double>(deq[e]) - w[e]) > bound) {
      ADD_FAILURE() << "element " << e << " w=" << w[e] << " dequantizes to " << deq[e] << ", error above "
                    << bound << " (scale " << s << ")";
      if (++failures > 5) return true;
    }
  }
  return true;
}

const Config kConfigs[] = {{8, true, true},  {8, true, false},  {8, false, true}, {8, false, false},
                           {4, true, true},  {4, true, false},  {4, false, true}, {4, false, false}};

TEST(LinearQuantizeTest, QuantizedRangeTable) {
  for (const Config& c : kConfigs) {
    int qmin, qmax;
    RefRange(c.bits, c.is_signed, c.symmetric, &qmin, &qmax);
    const CodeRange r = QuantizedRange(c.bits, c.is_signed, c.symmetric);
    EXPECT_EQ(r.min, qmin) << c.bits << c.is_signed << c.symmetric;
    EXPECT_EQ(r.max, qmax) << c.bits << c.is_signed << c.symmetric;
  }
}

TEST(LinearQuantizeTest, CodeValueSignExtension) {
  LinearQuantized q;
  q.codes.resize(256);
  for (int i = 0; i < 256; ++i) q.codes[i] = static_cast<uint8_t>(i);
  q.bits = 8;
  q.is_signed = true;
  for (int i = 0; i < 256; ++i) EXPECT_EQ(q.CodeValue(i), i < 128 ? i : i - 256) << i;
  q.is_signed = false;
  for (int i = 0; i < 256; ++i) EXPECT_EQ(q.CodeValue(i), i) << i;
  q.bits = 4;
  q.is_signed = true;
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(q.CodeValue(i), i < 8 ? i : i - 16) << i;
    EXPECT_EQ(q.CodeValue(i), format::SignExtend4(static_cast<uint8_t>(i))) << i;
  }
  q.is_signed = false;
  for (int i = 0; i < 16; ++i) EXPECT_EQ(q.CodeValue(i), i) << i;
}

// tp:147-164: round(w/s) + round(zp), not round(w/s + zp).
TEST(LinearQuantizeTest, CoreMLToolsCornerCaseSeparateZeroPointRounding) {
  const std::vector<float> w = {-2, -10, 6, -3};
  auto grid = BlockGrid::Make({4}, {4});
  ASSERT_TRUE(grid.ok());
  LinearQuantizeOptions o;
  o.bits = 4;
  o.is_signed = true;
  o.symmetric = false;
  o.precision = Precision::kFloat32;
  auto q = LinearQuantize(w, *grid, o);
  ASSERT_TRUE(q.ok()) << q.status();
  const int expected[] = {-1, -8, 7, -2};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q->CodeValue(i), expected[i]) << i;
  ASSERT_EQ(q->zero_point.size(), 1u);
  EXPECT_EQ(q->zero_point[0], 1);  // round(22/16 = 1.375)
  EXPECT_FLOAT_EQ(q->scale[0], 16.0f / 15.0f);
}

TEST(LinearQuantizeTest, RoundsHalfToEven) {
  // Symmetric int8 with max 127: scale is exactly 1, so w/s is w.
  const std::vector<float> w = {127, 0.5f, 1.5f, 2.5f, -2.5f, -0.5f, 3.5f, -126.5f};
  auto grid = BlockGrid::Make({8}, {0});
  ASSERT_TRUE(grid.ok());
  for (Precision p : {Precision::kFloat32, Precision::kFloat16}) {
    LinearQuantizeOptions o;
    o.precision = p;
    auto q = LinearQuantize(w, *grid, o);
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->scale[0], 1.0f);
    const int expected[] = {127, 0, 2, 2, -2, 0, 4, -126};
    for (int i = 0; i < 8; ++i) EXPECT_EQ(q->CodeValue(i), expected[i]) << i;
    EXPECT_TRUE(q->zero_point.empty());
  }
}

TEST(LinearQuantizeTest, AllZeroBlocksGiveScaleZeroAndCodeZero) {
  const Shape shape = {3, 4};
  std::vector<float> w(12, 0.0f);
  for (int i = 4; i < 8; ++i) w[i] = (i % 2) ? -0.0f : 0.0f;
  w[8] = 1.0f;  // row 2 is not zero
  w[9] = -2.0f;
  auto grid = BlockGrid::Make(shape, {1, 0});
  ASSERT_TRUE(grid.ok());
  for (const Config& c : kConfigs) {
    for (Prec p : {Prec::k16, Prec::k32}) {
      CheckCase(w, shape, {1, 0}, c, p);
      LinearQuantizeOptions o;
      o.bits = c.bits;
      o.is_signed = c.is_signed;
      o.symmetric = c.symmetric;
      o.precision = ToPrecision(p);
      auto q = LinearQuantize(w, *grid, o);
      ASSERT_TRUE(q.ok());
      for (int row = 0; row < 2; ++row) {
        EXPECT_EQ(q->scale[row], 0.0f);
        for (int i = 0; i < 4; ++i) EXPECT_EQ(q->CodeValue(row * 4 + i), 0) << "row " << row;
        if (!c.symmetric) {
          EXPECT_EQ(q->zero_point[row], 0);  // NaN zero point casts to 0
        } else if (!c.is_signed) {
          EXPECT_EQ(q->zero_point[row], c.bits == 8 ? 127 : 7);
        }
      }
      std::vector<float> deq(12);
      LinearDequantize(*q, *grid, ToPrecision(p), absl::MakeSpan(deq));
      for (int i = 0; i < 8; ++i) EXPECT_EQ(deq[i], 0.0f) << i;
    }
  }
}

TEST(LinearQuantizeTest, ConstantAndTinyTensors) {
  std::mt19937_64 rng(7);
  for (const Config& c : kConfigs) {
    for (Prec p : {Prec::k16, Prec::k32}) {
      for (int64_t n = 1; n <= 3; ++n) {
        for (Dist d : {Dist::kNormal, Dist::kConstant, Dist::kZeros, Dist::kHugePos}) {
          const auto w = kernel_test::RandomTensor(rng, n, d, p);
          CheckCase(w, {n}, {0}, c, p);
          CheckCase(w, {n}, {1}, c, p);
          CheckCase(w, {1, n}, {1, 0}, c, p);
        }
      }
      // A rank-0 tensor (scalar).
      CheckCase({Rd(p, -2.75f)}, {}, {}, c, p);
      // Constant non-zero tensors: symmetric range [-|c|, |c|]; asymmetric
      // range includes 0.
      for (float v : {1.0f, -1.0f, 0.3f, -1000.0f, 6e-5f}) {
        std::vector<float> w(10, Rd(p, v));
        CheckCase(w, {2, 5}, {0, 0}, c, p);
        CheckCase(w, {2, 5}, {1, 0}, c, p);
      }
    }
  }
}

TEST(LinearQuantizeTest, RandomTensorsAllGranularities) {
  std::mt19937_64 rng(2024);
  int checked = 0, skipped = 0;
  for (int iter = 0; iter < 60; ++iter) {
    const int rank = 1 + iter % 5;
    const Shape shape = kernel_test::RandomShape(rng, rank, rank >= 4 ? 6 : (rank == 1 ? 40 : 12));
    // Per tensor, per channel on a random axis, per block, and a random grid.
    std::vector<Shape> grids;
    grids.push_back(Shape(rank, 0));
    const int axis = static_cast<int>(rng() % rank);
    Shape per_channel(rank, 0);
    per_channel[axis] = 1;
    grids.push_back(per_channel);
    Shape per_block(rank, 0);
    per_block[0] = 1;
    if (rank > 1) {
      const auto divs = kernel_test::Divisors(shape[1]);
      per_block[1] = divs[rng() % divs.size()];
    }
    grids.push_back(per_block);
    Shape general(rank);
    for (int a = 0; a < rank; ++a) {
      const auto divs = kernel_test::Divisors(shape[a]);
      general[a] = (rng() % 4 == 0) ? 0 : divs[rng() % divs.size()];
    }
    grids.push_back(general);
    for (Dist d : {Dist::kNormal, Dist::kUniformPos, Dist::kHugeRange, Dist::kHugePos, Dist::kSmallInts,
                   Dist::kFewValues}) {
      for (Prec p : {Prec::k16, Prec::k32}) {
        auto w = kernel_test::RandomTensor(rng, NumElements(shape), d, p);
        // Sprinkle exact zeros into some tensors.
        if (rng() % 3 == 0)
          for (auto& v : w)
            if (rng() % 5 == 0) v = 0.0f;
        for (const Shape& g : grids) {
          for (const Config& c : kConfigs) {
            if (CheckCase(w, shape, g, c, p)) {
              ++checked;
            } else {
              ++skipped;
            }
            if (HasFailure()) return;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 10000);
  RecordProperty("skipped_nan_zero_point", skipped);
}

// fp16 values near 6e4 with per-element blocks: scale and quotient overflow
// / underflow paths (w / scale = inf, 2m = inf).
TEST(LinearQuantizeTest, Fp16OverflowingRangesSymmetric) {
  const std::vector<float> w = {60000.f, -60000.f, 40000.f, 1e-6f, 32768.f, -65504.f, 0.f, 6e-8f};
  std::vector<float> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) w16[i] = kernel_test::H(w[i]);
  for (const Config& c : kConfigs) {
    if (!c.symmetric) continue;
    CheckCase(w16, {8}, {0}, c, Prec::k16);
    CheckCase(w16, {8}, {1}, c, Prec::k16);
    CheckCase(w16, {4, 2}, {1, 0}, c, Prec::k16);
    CheckCase(w16, {2, 4}, {0, 2}, c, Prec::k16);
  }
}

// Asymmetric fp16 blocks whose zero-point numerator overflows in fp16
// (|w| beyond ~257 for 8 bits). numpy gets zp = NaN (both products
// overflow) or inf (one does) and Core ML tools then store all-zero or
// saturated codes: the weights are lost. coremlz deliberately computes that
// zero point in fp32 (linear_quantize.cc); the codes then reconstruct the
// weights within half a step, which CheckCase verifies.
TEST(LinearQuantizeTest, OverflowingZeroPointIsComputedInFp32) {
  const std::vector<float> w = {-600.f, 600.f, 12.f, -300.f};
  CheckCase(w, {4}, {0}, {8, true, false}, Prec::k16, /*skip_nan_zero_point=*/false);
  const std::vector<float> w4 = {-10000.f, 9000.f};
  CheckCase(w4, {2}, {0}, {4, true, false}, Prec::k16, /*skip_nan_zero_point=*/false);
  // The -600..600 int8 case: scale 4.707, zero point 0 in fp32.
  auto grid = BlockGrid::Make({4}, {0});
  LinearQuantizeOptions o;
  o.symmetric = false;
  auto q = LinearQuantize(w, *grid, o);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->CodeValue(0), -128);
  EXPECT_EQ(q->CodeValue(1), 127);
}

TEST(LinearQuantizeTest, RejectsBadOptions) {
  auto grid = BlockGrid::Make({4}, {0});
  ASSERT_TRUE(grid.ok());
  const std::vector<float> w = {1, 2, 3, 4};
  for (int bits : {0, 1, 2, 3, 5, 6, 7, 16}) {
    LinearQuantizeOptions o;
    o.bits = bits;
    auto q = LinearQuantize(w, *grid, o);
    ASSERT_FALSE(q.ok()) << bits;
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument) << bits;
  }
  LinearQuantizeOptions o;
  const std::vector<float> w5 = {1, 2, 3, 4, 5};
  auto q = LinearQuantize(w5, *grid, o);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::compress
