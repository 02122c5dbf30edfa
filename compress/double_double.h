// Double-double arithmetic: a value as the unevaluated sum hi + lo of two
// doubles (about 106 bits of significand), built from error-free
// transformations (Knuth's TwoSum, Dekker's FastTwoSum and product). The
// exact 1-D k-means (kmeans1d.cc) keeps its prefix sums in it so that the
// difference of two sums stays accurate relative to the run it describes.
// Assumes round-to-nearest and no overflow; operands there are scaled to
// modest magnitudes first.
#ifndef COREMLZ_COMPRESS_DOUBLE_DOUBLE_H_
#define COREMLZ_COMPRESS_DOUBLE_DOUBLE_H_

#include <cmath>

namespace coremlz::compress::dd {

struct DD {
  double hi = 0;
  double lo = 0;
};

inline DD TwoSum(double a, double b) {
  const double s = a + b;
  const double bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}

inline DD FastTwoSum(double a, double b) {  // requires |a| >= |b| or a == 0
  const double s = a + b;
  return {s, b - (s - a)};
}

inline DD TwoProd(double a, double b) {
  const double p = a * b;
#if defined(__FMA__) || defined(__aarch64__)
  return {p, std::fma(a, b, -p)};
#else
  // Dekker's split: without hardware FMA std::fma is a slow library call.
  // Operands here are scaled to modest magnitudes, far below the 2^996 at
  // which the split overflows. Both paths give the same, exact result.
  constexpr double kSplitter = 134217729.0;  // 2^27 + 1
  const double ta = kSplitter * a, tb = kSplitter * b;
  const double ah = ta - (ta - a), al = a - ah;
  const double bh = tb - (tb - b), bl = b - bh;
  return {p, ((ah * bh - p) + ah * bl + al * bh) + al * bl};
#endif
}

inline DD Add(DD a, DD b) {
  DD s = TwoSum(a.hi, b.hi);
  const DD t = TwoSum(a.lo, b.lo);
  s.lo += t.hi;
  s = FastTwoSum(s.hi, s.lo);
  s.lo += t.lo;
  return FastTwoSum(s.hi, s.lo);
}

inline DD Sub(DD a, DD b) { return Add(a, DD{-b.hi, -b.lo}); }

inline DD Mul(DD a, double b) {
  DD p = TwoProd(a.hi, b);
  p.lo += a.lo * b;
  return FastTwoSum(p.hi, p.lo);
}

inline DD Mul(DD a, DD b) {
  DD p = TwoProd(a.hi, b.hi);
  p.lo += a.hi * b.lo + a.lo * b.hi;
  return FastTwoSum(p.hi, p.lo);
}

inline DD Div(DD a, DD b) {
  const double q1 = a.hi / b.hi;
  DD r = Sub(a, Mul(b, q1));
  const double q2 = r.hi / b.hi;
  r = Sub(r, Mul(b, q2));
  const double q3 = r.hi / b.hi;
  return Add(FastTwoSum(q1, q2), DD{q3, 0});
}

}  // namespace coremlz::compress::dd

#endif  // COREMLZ_COMPRESS_DOUBLE_DOUBLE_H_
