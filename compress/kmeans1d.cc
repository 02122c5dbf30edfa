// Exact weighted 1-D k-means by dynamic programming.
//
// D[m][j] = min over s of D[m-1][s] + cost(s, j), where cost(s, j) is the
// weighted SSE of the run values[s..j) about its mean. The cost satisfies the
// quadrangle inequality, so the leftmost optimal split opt[m][j] is
// non-decreasing in j (divide and conquer over the rows of a layer,
// O(n log n) per layer) and opt[m-1][j] <= opt[m][j] (a cross-layer lower
// bound that narrows the wide searches near the top of the recursion).
// Long rows are further pruned in blocks: D[m-1] is non-decreasing and
// cost(., j) non-increasing in s, so over a block [a, b] the row is at least
// D[m-1][a] + cost(b, j); blocks whose bound exceeds the best value found
// are skipped. Together these make a layer cost a few n evaluations.
//
// One file of ~570 lines on purpose: the argument above and the code it
// justifies (the recursion, the bounds, the pruning) stay side by side; the
// reference implementation it is tested against is in the test.
//
// Precision. cost = dS2 - dS1^2 / dW from prefix sums cancels badly for tight
// runs far from the centre of the data (e.g. values spanning 1e-6..1e4). So:
//  * values and weights are scaled by powers of two (exact) and centred on
//    the weighted mean; the prefix sums of w, w*d, w*d^2 are accumulated and
//    stored in double-double, so a difference of two prefix sums is accurate
//    relative to the run itself rather than to the whole array;
//  * each row is scanned in plain double with a rigorous error bound per
//    candidate; only when a second candidate lies within the error bounds of
//    the best are the plausible candidates re-evaluated in double-double,
//    which is exact for all practical purposes. A DP value whose fast error
//    bound exceeds 2^-40 of it is recomputed with a cancellation-free
//    formula (a few ulps).
// So the partition is optimal to about k * 1e-12 relative even on
// adversarial data, while typical data (fp16 weights) rarely leaves the fast
// path.
//
// Ties: among splits whose (double-double) values are equal the smallest
// start index of the last run wins, at every layer: for equally good
// partitions the last cluster extends as far left as possible, then the one
// before it, and so on (e.g. {0,1,2}, k=2 gives {0},{1,2}).
#include "compress/kmeans1d.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace coremlz::compress {
namespace {

constexpr double kUnitRoundoff = 0x1p-53;

// DP values are kept to this relative accuracy (see above).
constexpr double kValueTolerance = 0x1p-40;

// Rows with at least kBlockedRow candidates are pruned in blocks of kBlock.
constexpr int kBlock = 16;
constexpr int kBlockedRow = 4 * kBlock;

// Largest DP split table we are willing to allocate (entries). k <= 4096 with
// n <= 65536 fits; palettes never get near it.
constexpr int64_t kMaxSplitEntries = int64_t{1} << 28;

// ---- double-double arithmetic (error-free transformations) ----

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

// ---- validation ----

absl::Status Validate(absl::Span<const double> values, absl::Span<const double> weights, int k) {
  if (values.size() != weights.size()) {
    return absl::InvalidArgumentError(absl::StrCat("OptimalKMeans1D: values has ", values.size(),
                                                   " elements but weights has ", weights.size()));
  }
  if (k < 1) {
    return absl::InvalidArgumentError(absl::StrCat("OptimalKMeans1D: k must be >= 1, got ", k));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("OptimalKMeans1D: values[", i, "] = ", values[i], " is not finite"));
    }
    if (!(weights[i] > 0) || !std::isfinite(weights[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "OptimalKMeans1D: weights[", i, "] = ", weights[i], " is not positive and finite"));
    }
    if (i > 0 && !(values[i - 1] < values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("OptimalKMeans1D: values must be strictly increasing, but values[", i - 1,
                       "] = ", values[i - 1], " >= values[", i, "] = ", values[i]));
    }
  }
  return absl::OkStatus();
}

// Powers of two that bring the largest |value| and weight into [0.5, 1):
// scaling by them is exact (short of underflow at absurd ranges) and keeps
// squares and sums far from overflow.
struct Scales {
  double value = 1;
  double weight = 1;
};

double NormalisingScale(double max_abs) {
  if (max_abs == 0) return 1;
  int exponent = 0;
  std::frexp(max_abs, &exponent);
  // Subnormal data stays small rather than the scale overflowing.
  return std::ldexp(1.0, -std::max(exponent, -1000));
}

Scales ScalesFor(absl::Span<const double> values, absl::Span<const double> weights) {
  double max_x = 0, max_w = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    max_x = std::max(max_x, std::fabs(values[i]));
    max_w = std::max(max_w, weights[i]);
  }
  return {NormalisingScale(max_x), NormalisingScale(max_w)};
}

// ---- prefix moments ----

// Prefix sums (double-double, hi and lo) of w, w*d and w*d^2 over the scaled
// weights w and scaled, centred values d, plus the DP values of two layers:
// everything a scan reads for one split point, in one cache line.
struct alignas(64) Node {
  double wh, wl, s1h, s1l, s2h, s2l;
  double dp[2];  // previous / current layer, alternating
};

struct FastCost {
  double cost;
  double error;  // |cost - exact cost| <= error
};

// (a_hi + a_lo) - (b_hi + b_lo) as an unnormalised pair, with the hi parts
// subtracted exactly.
inline DD Difference(double a_hi, double a_lo, double b_hi, double b_lo) {
  DD d = TwoSum(a_hi, -b_hi);
  d.lo += a_lo - b_lo;
  return d;
}

// Scratch reused across the many palettes a thread solves (grouped-channel
// and per-block palettization solve thousands of small ones): no
// allocation per palette once the buffers have grown.
struct Workspace {
  std::vector<Node> nodes;
  std::vector<uint16_t> splits16;
  std::vector<int32_t> splits32;
  std::vector<double> block_lower;
  std::vector<std::pair<int, int>> scanned;

  // A 65536-value, k = 256 solve holds 32 MB of split table: not kept;
  // that of a typical fp16 tensor's ~20k distinct values (10 MB) is, or
  // every 8-bit palette pays the page faults of a fresh table.
  void Trim() {
    constexpr size_t kKeepBytes = size_t{16} << 20;
    if (splits16.capacity() * sizeof(uint16_t) > kKeepBytes) std::vector<uint16_t>().swap(splits16);
    if (splits32.capacity() * sizeof(int32_t) > kKeepBytes) std::vector<int32_t>().swap(splits32);
    if (nodes.capacity() * sizeof(Node) > kKeepBytes) std::vector<Node>().swap(nodes);
  }
};

Workspace& ThreadWorkspace() {
  thread_local Workspace workspace;
  return workspace;
}

template <typename SplitT>
std::vector<SplitT>& SplitTable(Workspace& w);
template <>
std::vector<uint16_t>& SplitTable<uint16_t>(Workspace& w) { return w.splits16; }
template <>
std::vector<int32_t>& SplitTable<int32_t>(Workspace& w) { return w.splits32; }

class Prefix {
 public:
  Prefix(absl::Span<const double> values, absl::Span<const double> weights, Scales scales,
         std::vector<Node>* nodes);

  Node& operator[](int i) { return nodes_[i]; }
  const Node& operator[](int i) const { return nodes_[i]; }

  // cost(s, j) for row node `nj` = (*this)[j] and split node `ns`. With dW,
  // dS1, dS2 each within 2u relative (hi parts differ exactly or round once;
  // lo parts are tiny), dS2 - dS1^2/dW is within ~11u * dS2 because
  // dS1^2/dW <= dS2; 16u leaves room.
  FastCost Fast(const Node& nj, const Node& ns) const {
    const double dw = (nj.wh - ns.wh) + (nj.wl - ns.wl);
    const double d1 = (nj.s1h - ns.s1h) + (nj.s1l - ns.s1l);
    const double d2 = (nj.s2h - ns.s2h) + (nj.s2l - ns.s2l);
    const double c = d2 - d1 * d1 / dw;
    return {c > 0 ? c : 0, (16 * kUnitRoundoff) * std::fabs(d2) + tiny_error_};
  }

  // cost(s, j) to a few ulps, for the DP values: ~4x the work of Fast but
  // free of its cancellation. The differences of prefix sums are kept as
  // unnormalised pairs and the cancelling product mu * dS1 is formed
  // exactly; with r = dS1 - mu * dW the identity
  //   cost = dS2 - mu * dS1 - mu * r - r^2 / dW
  // holds for any mu, so mu need only be close to the mean.
  double Accurate(const Node& nj, const Node& ns) const {
    const DD dw = Difference(nj.wh, nj.wl, ns.wh, ns.wl);
    const DD d1 = Difference(nj.s1h, nj.s1l, ns.s1h, ns.s1l);
    const DD d2 = Difference(nj.s2h, nj.s2l, ns.s2h, ns.s2l);
    const double w = dw.hi + dw.lo;
    const double mu = (d1.hi + d1.lo) / w;
    const DD q = TwoProd(mu, dw.hi);
    const double r = ((d1.hi - q.hi) - q.lo) + (d1.lo - mu * dw.lo);
    const DD p = TwoProd(mu, d1.hi);
    const DD t = TwoSum(d2.hi, -p.hi);
    const double c = t.hi + (t.lo + (((d2.lo - p.lo) - mu * d1.lo) - mu * r - r * r / w));
    return c > 0 ? c : 0;
  }

  // cost(s, j) in double-double; effectively exact.
  DD Exact(int s, int j) const {
    const Node& a = nodes_[s];
    const Node& b = nodes_[j];
    const DD dw = Sub(DD{b.wh, b.wl}, DD{a.wh, a.wl});
    const DD d1 = Sub(DD{b.s1h, b.s1l}, DD{a.s1h, a.s1l});
    const DD d2 = Sub(DD{b.s2h, b.s2l}, DD{a.s2h, a.s2l});
    const DD c = Sub(d2, Div(Mul(d1, d1), dw));
    return c.hi > 0 ? c : DD{};
  }

 private:
  std::vector<Node>& nodes_;
  // Allowance for errors of second order in u: the prefix sums' own
  // accumulated error and the lo parts.
  double tiny_error_ = 0;
};

Prefix::Prefix(absl::Span<const double> values, absl::Span<const double> weights,
               Scales scales, std::vector<Node>* nodes)
    : nodes_(*nodes) {
  const int n = static_cast<int>(values.size());
  const double xs = scales.value;
  const double ws = scales.weight;

  // Centre on the weighted mean: it minimises the second-moment sums, whose
  // magnitude sets the rounding error of every cost.
  DD sw, swx;
  for (int i = 0; i < n; ++i) {
    const double w = weights[i] * ws;
    sw = Add(sw, DD{w, 0});
    swx = Add(swx, TwoProd(w, values[i] * xs));
  }
  const DD centre = Div(swx, sw);

  nodes_.assign(n + 1, Node{0, 0, 0, 0, 0, 0, {0, 0}});
  DD acc_w, acc_1, acc_2;
  double abs_1 = 0, max_dev = 0;
  for (int i = 0; i < n; ++i) {
    const double w = weights[i] * ws;
    // d = x - centre kept exactly (double-double): rounding it would move
    // tight clusters far from the centre by more than their width.
    const DD d = Sub(DD{values[i] * xs, 0}, centre);
    const DD wd = Mul(d, w);
    acc_w = Add(acc_w, DD{w, 0});
    acc_1 = Add(acc_1, wd);
    acc_2 = Add(acc_2, Mul(Mul(d, d), w));
    nodes_[i + 1] = Node{acc_w.hi, acc_w.lo, acc_1.hi, acc_1.lo, acc_2.hi, acc_2.lo, {0, 0}};
    abs_1 += std::fabs(wd.hi);
    max_dev = std::max(max_dev, std::fabs(d.hi));
  }
  // Each stored sum is within ~n u^2 of the sum of its terms' magnitudes;
  // these errors reach the fast cost through dS2, through dS1^2/dW (at most
  // max_dev times the dS1 error) and through dW (max_dev^2 times).
  const double scale = acc_2.hi + max_dev * abs_1 + max_dev * max_dev * acc_w.hi;
  tiny_error_ = 64.0 * (n + 16) * kUnitRoundoff * kUnitRoundoff * scale;
}

// ---- DP ----

template <typename SplitT>
class Solver {
 public:
  Solver(Prefix& prefix, int n, int k, CancelCheck* cancel, Workspace& ws)
      : p_(prefix), n_(n), k_(k), width_(n - k + 1), cancel_(cancel),
        splits_(SplitTable<SplitT>(ws)), block_lower_(ws.block_lower), scanned_(ws.scanned) {
    // Every entry is written before it is read except layer 1's (a single
    // run starting at 0), so the table is not cleared.
    splits_.resize(static_cast<size_t>(k) * width_);
    std::fill(splits_.begin(), splits_.begin() + width_, SplitT{0});
    block_lower_.resize(n / kBlock + 2);
  }

  // Start index of each cluster (size k), ascending, first is 0; empty when
  // cancelled.
  std::vector<int> Run() {
    // Layer 1: a single run [0, j).
    for (int j = 1; j <= width_; ++j) {
      p_[j].dp[0] = p_.Accurate(p_[j], p_[0]);
    }
    prev_ = 0;
    for (int m = 2; m < k_; ++m) {
      if (!Layer(m)) return {};
      prev_ ^= 1;
    }
    // Last layer: only j = n matters.
    Split(k_, n_) = static_cast<SplitT>(BestSplit(n_, k_ - 1, n_ - 1).first);

    std::vector<int> starts(k_);
    int j = n_;
    for (int m = k_; m >= 2; --m) {
      j = Split(m, j);
      starts[m - 1] = j;
    }
    starts[0] = 0;
    return starts;
  }

 private:
  SplitT& Split(int m, int j) { return splits_[static_cast<size_t>(m - 1) * width_ + (j - m)]; }

  // Rows j of layer m, m <= j < m + width_. The divide and conquer runs
  // breadth first over power-of-two strides: a row at stride h is bounded by
  // the rows h before and after it, done at coarser strides. Rows within a
  // stride are independent and visited in increasing order, so the CPU
  // overlaps their (long, division-bound) dependency chains and memory is
  // read in streams; the depth-first recursion serialises on both.
  // False when cancelled. A row costs at most hi - lo + 1 candidate
  // evaluations; that is what it is charged.
  bool Layer(int m) {
    const int rows = width_;
    int top = 1;
    while (top <= rows / 2) top *= 2;
    const int next = prev_ ^ 1;
    for (int h = top; h >= 1; h /= 2) {
      for (int r = h - 1; r < rows; r += 2 * h) {
        const int j = m + r;
        int lo = r >= h ? static_cast<int>(Split(m, j - h)) : m - 1;
        int hi = r + h < rows ? std::min(static_cast<int>(Split(m, j + h)), j - 1) : j - 1;
        // Cross-layer bound; the previous layer has rows up to n-k+m-1.
        if (r + 1 < rows) lo = std::max(lo, static_cast<int>(Split(m - 1, j)));
        lo = std::min(lo, hi);  // defensive: rounding could cross the bounds
        const auto [s, v] = BestSplit(j, lo, hi);
        p_[j].dp[next] = v;
        Split(m, j) = static_cast<SplitT>(s);
        if (Stopped(cancel_, hi - lo + 1)) return false;
      }
    }
    return true;
  }

  // A candidate's fast value v has |v - exact| <= e.
  struct Candidate {
    double value;
    double error;
  };
  Candidate Evaluate(const Node& nj, int s) const {
    const Node& ns = p_[s];
    const FastCost f = p_.Fast(nj, ns);
    const double v = ns.dp[prev_] + f.cost;
    return {v, f.error + (2 * kUnitRoundoff) * v};
  }

  // Best candidate so far (smallest upper bound v + e) and the smallest
  // lower bound v - e among all the others: if that stays above the best's
  // upper bound, the best is certainly the minimum.
  struct Best {
    double upper = std::numeric_limits<double>::infinity();
    double lower = std::numeric_limits<double>::infinity();
    double value = 0;
    double error = 0;
    int index = -1;
    double rival = std::numeric_limits<double>::infinity();
  };

  void Scan(const Node& nj, int a, int b, Best* best) const {
    Best t = *best;  // a local copy stays in registers
    for (int s = a; s <= b; ++s) {
      const Candidate c = Evaluate(nj, s);
      const double upper = c.value + c.error;
      const double lower = c.value - c.error;
      if (upper < t.upper) {
        t.rival = std::min(t.rival, t.lower);
        t.upper = upper;
        t.lower = lower;
        t.value = c.value;
        t.error = c.error;
        t.index = s;
      } else {
        t.rival = std::min(t.rival, lower);
      }
    }
    *best = t;
  }

  // argmin over s in [lo, hi] of prev[s] + cost(s, j) and its value;
  // leftmost on ties.
  std::pair<int, double> BestSplit(int j, int lo, int hi) {
    const Node nj = p_[j];
    Best best;
    scanned_.clear();
    if (hi - lo + 1 < kBlockedRow) {
      Scan(nj, lo, hi, &best);
      scanned_.push_back({lo, hi});
    } else {
      // Pass 1: the cost at each block's last point gives a candidate (an
      // upper bound for pruning) and a lower bound for the whole block.
      double bound = std::numeric_limits<double>::infinity();
      int blocks = 0;
      for (int a = lo; a <= hi; a += kBlock, ++blocks) {
        const int b = std::min(a + kBlock - 1, hi);
        const FastCost f = p_.Fast(nj, p_[b]);
        const double v = p_[b].dp[prev_] + f.cost;
        bound = std::min(bound, v + f.error + (2 * kUnitRoundoff) * v);
        // The margin covers rounding here and DP values being only
        // monotone to within kValueTolerance.
        const double pa = p_[a].dp[prev_];
        block_lower_[blocks] =
            (pa + (f.cost - f.error)) - 4 * kValueTolerance * (std::fabs(pa) + f.cost);
      }
      // Pass 2: scan only blocks that could hold the minimum. The block of
      // pass 1's best always qualifies, so best.upper <= bound at the end.
      for (int i = 0; i < blocks; ++i) {
        if (block_lower_[i] > std::min(bound, best.upper)) continue;
        const int a = lo + i * kBlock;
        const int b = std::min(a + kBlock - 1, hi);
        Scan(nj, a, b, &best);
        if (!scanned_.empty() && scanned_.back().second + 1 == a) {
          scanned_.back().second = b;
        } else {
          scanned_.push_back({a, b});
        }
      }
    }

    if (best.index < 0) return {lo, best.value};  // only NaNs: cannot happen
    if (best.rival > best.upper) {
      double value = best.value;
      if (best.error > kValueTolerance * value) {
        value = p_[best.index].dp[prev_] + p_.Accurate(nj, p_[best.index]);
      }
      return {best.index, value};
    }
    // Near-tie: decide between the plausible candidates in double-double.
    int exact_best = -1;
    double exact_value = std::numeric_limits<double>::infinity();
    for (const auto& [a, b] : scanned_) {
      for (int s = a; s <= b; ++s) {
        const Candidate c = Evaluate(nj, s);
        if (!(c.value - c.error <= best.upper)) continue;
        const double v = ExactValue(s, j);
        if (v < exact_value) {
          exact_value = v;
          exact_best = s;
        }
      }
    }
    if (exact_best < 0) return {best.index, best.value};  // likewise
    return {exact_best, exact_value};
  }

  double ExactValue(int s, int j) const { return Add(DD{p_[s].dp[prev_], 0}, p_.Exact(s, j)).hi; }

  Prefix& p_;
  const int n_;
  const int k_;
  const int width_;  // rows per layer: j in [m, m + width_ - 1]
  CancelCheck* const cancel_;
  int prev_ = 0;  // which Node::dp slot holds the previous layer
  std::vector<SplitT>& splits_;
  // Scratch for BestSplit.
  std::vector<double>& block_lower_;
  std::vector<std::pair<int, int>>& scanned_;
};

// Centroids, assignment and SSE for the runs starting at `starts`, computed
// on scaled values and weights so nothing overflows on the way; only an SSE
// that is itself beyond the double range comes out as infinity.
KMeans1DResult Finish(absl::Span<const double> values, absl::Span<const double> weights,
                      Scales scales, const std::vector<int>& starts) {
  const int n = static_cast<int>(values.size());
  const int k = static_cast<int>(starts.size());
  const double xs = scales.value, ws = scales.weight;
  KMeans1DResult result;
  result.centroids.resize(k);
  result.cluster.resize(n);
  DD sse;
  for (int c = 0; c < k; ++c) {
    const int a = starts[c];
    const int b = c + 1 < k ? starts[c + 1] : n;
    // Mean about the run's first value (double-double), so a singleton's
    // centroid is exactly its value and tight runs keep full precision.
    const double anchor = values[a] * xs;
    DD sw, swd;
    for (int i = a; i < b; ++i) {
      const double w = weights[i] * ws;
      sw = Add(sw, DD{w, 0});
      swd = Add(swd, Mul(TwoSum(values[i] * xs, -anchor), w));
    }
    // Clamping keeps centroids strictly ascending whatever the rounding.
    const double centroid =
        std::clamp(Add(DD{anchor, 0}, Div(swd, sw)).hi / xs, values[a], values[b - 1]);
    result.centroids[c] = centroid;
    for (int i = a; i < b; ++i) {
      result.cluster[i] = c;
      const DD d = TwoSum(values[i] * xs, -centroid * xs);
      sse = Add(sse, Mul(Mul(d, d), weights[i] * ws));
    }
  }
  result.sse = sse.hi / xs / xs / ws;
  return result;
}

}  // namespace

absl::StatusOr<KMeans1DResult> OptimalKMeans1D(absl::Span<const double> values,
                                               absl::Span<const double> weights, int k,
                                               CancelCheck* cancel) {
  if (absl::Status status = Validate(values, weights, k); !status.ok()) return status;
  if (values.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("OptimalKMeans1D: too many values (", values.size(), ")"));
  }
  const int n = static_cast<int>(values.size());
  if (n <= k) {
    KMeans1DResult result;
    result.centroids.assign(values.begin(), values.end());
    result.cluster.resize(n);
    for (int i = 0; i < n; ++i) result.cluster[i] = i;
    return result;
  }
  const Scales scales = ScalesFor(values, weights);
  if (k == 1) return Finish(values, weights, scales, {0});
  const int64_t entries = static_cast<int64_t>(k) * (n - k + 1);
  if (entries > kMaxSplitEntries) {
    return absl::ResourceExhaustedError(
        absl::StrCat("OptimalKMeans1D: k = ", k, " with n = ", n, " needs ", entries,
                     " DP split entries; the limit is ", kMaxSplitEntries));
  }
  Workspace& ws = ThreadWorkspace();
  Prefix prefix(values, weights, scales, &ws.nodes);
  std::vector<int> starts;
  if (n <= 65536) {  // splits are < n, so 16 bits suffice: halves the table
    starts = Solver<uint16_t>(prefix, n, k, cancel, ws).Run();
  } else {
    starts = Solver<int32_t>(prefix, n, k, cancel, ws).Run();
  }
  ws.Trim();
  if (starts.empty()) return CancelledStatus();
  return Finish(values, weights, scales, starts);
}

}  // namespace coremlz::compress
