// Metrics against the formulas written out directly (long double sums).
#include "compress/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "format/fp16.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace coremlz::compress {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct RefMetrics {
  double snr, psnr, max_err, mse;
};

RefMetrics Reference(const std::vector<float>& x, const std::vector<float>& y) {
  long double sx2 = 0, se2 = 0, peak = 0, max_err = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const long double a = x[i], e = static_cast<long double>(x[i]) - y[i];
    sx2 += a * a;
    se2 += e * e;
    peak = std::max(peak, a * a);
    max_err = std::max(max_err, std::fabs(e));
  }
  const long double n = x.size();
  RefMetrics r;
  r.mse = static_cast<double>(se2 / n);
  r.max_err = static_cast<double>(max_err);
  r.snr = static_cast<double>(10 * std::log10((sx2 / n) / (se2 / n)));
  r.psnr = static_cast<double>(10 * std::log10(peak / (se2 / n)));
  return r;
}

void ExpectClose(double got, double want, const char* what) {
  if (std::isinf(want)) {
    EXPECT_EQ(got, want) << what;
    return;
  }
  EXPECT_NEAR(got, want, 1e-9 * std::max(1.0, std::fabs(want))) << what;
}

TEST(MetricsTest, CompareTensorsMatchesFormulas) {
  std::mt19937_64 rng(41);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int iter = 0; iter < 300; ++iter) {
    const size_t n = 1 + rng() % 500;
    const float noise = std::ldexp(1.0f, -static_cast<int>(rng() % 20));
    const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 30) - 15);
    std::vector<float> x(n), y(n);
    for (size_t i = 0; i < n; ++i) {
      x[i] = normal(rng) * scale;
      y[i] = x[i] + normal(rng) * noise * scale;
    }
    y[rng() % n] += scale;  // at least one error, with a known lower bound
    const ErrorMetrics m = CompareTensors(x, y);
    const RefMetrics r = Reference(x, y);
    ExpectClose(m.mse, r.mse, "mse");
    ExpectClose(m.max_abs_error, r.max_err, "max_abs_error");
    ExpectClose(m.snr_db, r.snr, "snr");
    ExpectClose(m.psnr_db, r.psnr, "psnr");
    EXPECT_GE(m.psnr_db, m.snr_db);  // max(x^2) >= mean(x^2)
  }
}

TEST(MetricsTest, HandComputedExample) {
  // x = {3, -4}, y = {3, -2}: mse = 4/2 = 2, mean(x^2) = 12.5, max(x^2) = 16.
  const ErrorMetrics m = CompareTensors(std::vector<float>{3, -4}, std::vector<float>{3, -2});
  EXPECT_DOUBLE_EQ(m.mse, 2.0);
  EXPECT_DOUBLE_EQ(m.max_abs_error, 2.0);
  EXPECT_NEAR(m.snr_db, 10 * std::log10(12.5 / 2), 1e-12);
  EXPECT_NEAR(m.psnr_db, 10 * std::log10(16.0 / 2), 1e-12);
}

TEST(MetricsTest, ExactReconstructionIsInfinite) {
  const std::vector<float> x = {1.5f, -2.0f, 0.0f, 7.25f, -0.0f};
  std::vector<float> y = x;
  y[2] = -0.0f;  // -0.0 == 0.0: still exact
  const ErrorMetrics m = CompareTensors(x, y);
  EXPECT_EQ(m.snr_db, kInf);
  EXPECT_EQ(m.psnr_db, kInf);
  EXPECT_EQ(m.mse, 0.0);
  EXPECT_EQ(m.max_abs_error, 0.0);
  const std::vector<float> zeros(4, 0.0f);
  const ErrorMetrics z = CompareTensors(zeros, zeros);
  EXPECT_EQ(z.snr_db, kInf);
  EXPECT_EQ(z.psnr_db, kInf);
}

TEST(MetricsTest, ZeroOriginalNonZeroReconstruction) {
  const std::vector<float> x(3, 0.0f);
  const std::vector<float> y = {0.0f, 0.5f, -1.0f};
  const ErrorMetrics m = CompareTensors(x, y);
  EXPECT_EQ(m.snr_db, -kInf);
  EXPECT_EQ(m.psnr_db, -kInf);
  EXPECT_DOUBLE_EQ(m.mse, 1.25 / 3);
  EXPECT_DOUBLE_EQ(m.max_abs_error, 1.0);
}

TEST(MetricsTest, SparsityCountsBothZeros) {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 200; ++iter) {
    const size_t n = 1 + rng() % 100;
    std::vector<float> v(n);
    size_t zeros = 0;
    for (auto& x : v) {
      switch (rng() % 5) {
        case 0: x = 0.0f; ++zeros; break;
        case 1: x = -0.0f; ++zeros; break;
        case 2: x = std::numeric_limits<float>::denorm_min(); break;  // tiny but not zero
        case 3: x = std::nanf(""); break;                              // NaN is not zero
        default: x = 1.0f; break;
      }
    }
    EXPECT_DOUBLE_EQ(Sparsity(v), static_cast<double>(zeros) / n);
  }
  EXPECT_DOUBLE_EQ(Sparsity(std::vector<float>{-0.0f, -0.0f, 1.0f, 2.0f}), 0.5);
  EXPECT_DOUBLE_EQ(Sparsity(std::vector<float>{-0.0f}), 1.0);
}

TEST(MetricsTest, DistinctCountFoldsNegativeZero) {
  std::mt19937_64 rng(43);
  for (int iter = 0; iter < 200; ++iter) {
    const size_t n = 1 + rng() % 300;
    const int pool = 1 + static_cast<int>(rng() % 40);
    std::vector<float> v(n);
    std::set<uint32_t> bits;
    for (auto& x : v) {
      const int k = static_cast<int>(rng() % pool);
      x = k == 0 ? (rng() % 2 ? 0.0f : -0.0f) : static_cast<float>(k) * 0.37f * (k % 3 ? 1 : -1);
      bits.insert(kernel_test::FloatBits(x == 0 ? 0.0f : x));
    }
    EXPECT_EQ(DistinctCount(v), bits.size());
  }
  EXPECT_EQ(DistinctCount(std::vector<float>{0.0f, -0.0f}), 1u);
  EXPECT_EQ(DistinctCount(std::vector<float>{-0.0f, 1.0f, -0.0f, -1.0f, 1.0f}), 3u);
  EXPECT_EQ(DistinctCount(std::vector<float>{}), 0u);
  EXPECT_EQ(DistinctCount(std::vector<float>{std::numeric_limits<float>::denorm_min(), 0.0f}), 2u);
}

// Values that are all halves take the bitmap path; one value that is not
// (anywhere, even in the last chunk) must give the same count as the sort.
TEST(MetricsTest, DistinctCountOfHalvesEqualsReference) {
  std::mt19937_64 rng(44);
  for (int iter = 0; iter < 50; ++iter) {
    const size_t n = 1 + rng() % 5000;
    std::vector<float> v(n);
    for (auto& x : v) {
      const uint16_t h = static_cast<uint16_t>(rng() % (iter % 2 ? 64 : 0x7c00)) | (rng() % 2 ? 0x8000 : 0);
      x = format::HalfToFloat(h);
    }
    if (iter % 5 == 0) v[rng() % n] = 0.1f;  // not a half
    std::set<uint32_t> bits;
    for (float x : v) bits.insert(kernel_test::FloatBits(x == 0 ? 0.0f : x));
    EXPECT_EQ(DistinctCount(v), bits.size()) << iter;
  }
}

// fp32 values (not halves) take the bucketed bit-pattern count: large
// inputs with many duplicates, both zeros, denormals, values sharing their
// upper 16 bits and infinities agree with a set of bit patterns.
TEST(MetricsTest, DistinctCountOfFloatsEqualsReference) {
  std::mt19937_64 rng(45);
  std::normal_distribution<float> normal(0, 0.02f);
  for (int iter = 0; iter < 12; ++iter) {
    const size_t n = iter == 0 ? 1 : 1 + rng() % 300000;
    const size_t pool = 1 + rng() % (iter % 3 == 0 ? 50 : 1000000);
    std::vector<float> base(pool);
    for (float& x : base) {
      switch (rng() % 6) {
        case 0: x = rng() % 2 ? 0.0f : -0.0f; break;
        case 1: x = std::numeric_limits<float>::denorm_min() * static_cast<float>(rng() % 1000); break;
        case 2: {  // same upper half as 1.5f, any lower half
          const uint32_t u = 0x3fc00000u | static_cast<uint32_t>(rng() & 0xffff);
          std::memcpy(&x, &u, 4);
          break;
        }
        case 3: x = rng() % 7 == 0 ? std::numeric_limits<float>::infinity() : 1e30f; break;
        default: x = normal(rng);
      }
    }
    std::vector<float> v(n);
    for (float& x : v) x = base[rng() % pool];
    v[0] = 0.1f;  // not a half: never the fp16 path
    std::set<uint32_t> bits;
    for (float x : v) bits.insert(kernel_test::FloatBits(x == 0 ? 0.0f : x));
    EXPECT_EQ(DistinctCount(v), bits.size()) << iter;
    EXPECT_EQ(DistinctBitPatterns(v), bits.size()) << iter;
  }
  EXPECT_EQ(DistinctBitPatterns(std::vector<float>{}), 0u);
  EXPECT_EQ(DistinctBitPatterns(std::vector<float>{-0.0f, 0.0f, -0.0f}), 1u);
}

// Pieces of any sizes, added in order, give exactly the whole-tensor metrics,
// which match the long-double reference.
TEST(MetricsTest, AccumulatorOverPiecesEqualsWholeTensor) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> x(100003), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = dist(rng);
    y[i] = x[i] + dist(rng) * 0.01f;
  }
  const ErrorMetrics whole = CompareTensors(x, y);
  const RefMetrics ref = Reference(x, y);
  EXPECT_NEAR(whole.snr_db, ref.snr, 1e-9);
  EXPECT_NEAR(whole.psnr_db, ref.psnr, 1e-9);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, size_t{65536}, x.size()}) {
    ErrorAccumulator acc;
    for (size_t i = 0; i < x.size(); i += piece) {
      const size_t n = std::min(piece, x.size() - i);
      acc.Add(absl::MakeConstSpan(x).subspan(i, n), absl::MakeConstSpan(y).subspan(i, n));
    }
    const ErrorMetrics m = acc.Result();
    EXPECT_EQ(m.snr_db, whole.snr_db) << piece;
    EXPECT_EQ(m.psnr_db, whole.psnr_db) << piece;
    EXPECT_EQ(m.max_abs_error, whole.max_abs_error) << piece;
    EXPECT_EQ(m.mse, whole.mse) << piece;
  }
  EXPECT_EQ(ErrorAccumulator().Result().mse, 0.0);
}

}  // namespace
}  // namespace coremlz::compress
