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
// One file of ~950 lines on purpose: the argument above and the code it
// justifies stay side by side, and the parts - the recursion, the block
// pruning, the Lagrangian bounds that skip rows which cannot be on an
// optimal path, the precision fallbacks - all read and write one Solver's
// tables. The double-double arithmetic is in double_double.h; the reference
// implementation the solver is tested against is in the test.
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
#include "common/status_macros.h"
#include "compress/double_double.h"

namespace coremlz::compress {
namespace {

using namespace dd;  // NOLINT: the arithmetic the DP is written in

constexpr double kUnitRoundoff = 0x1p-53;

// DP values are kept to this relative accuracy (see above).
constexpr double kValueTolerance = 0x1p-40;

// Rows with at least kBlockedRow candidates are pruned in blocks of kBlock.
constexpr int kBlock = 16;
constexpr int kBlockedRow = 4 * kBlock;

// Largest DP split table we are willing to allocate (entries). k <= 4096 with
// n <= 65536 fits; palettes never get near it.
constexpr int64_t kMaxSplitEntries = int64_t{1} << 28;

// Penalised passes spent looking for a lambda with exactly k runs (each
// costs about half a full-DP layer; at most k / 4 of them). Without one,
// a solution with fewer runs still gives U; else every row is computed.
constexpr int kLambdaPasses = 8;

// Below this k the penalised passes (a few evaluations per position each,
// two to five of them) cost about what the full DP's k layers do, so every
// row is computed.
constexpr int kBoundedFromK = 8;

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

// One position's prefix sums rounded to double, and the value the
// penalised pass computed there: what that pass reads per candidate, two
// positions per cache line instead of a 64-byte Node and a separate value.
struct Moment {
  double w, s1, s2, value;
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
  // The bounds (BoundedRun): penalised prefix and suffix values with their
  // error bounds, the prefix pass's back pointers and run counts, its
  // candidate queue, each layer's floor and the surviving intervals.
  std::vector<double> prefix_value, prefix_error, suffix_value, suffix_error, floor;
  std::vector<int32_t> arg, runs;
  std::vector<std::pair<int, int>> queue;
  // The penalised passes' view of the prefix sums (see Prefix::Moment).
  std::vector<Moment> moments;
  std::vector<int> starts;
  std::vector<std::pair<double, int>> best_cut;
  struct Interval {
    int first, last;
    double prefix_min, suffix_min;
  };
  std::vector<Interval> intervals;

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

  // A bound on the error of CompactCost for any run, or infinity where a
  // weight is below 2^-31 of the total (then the passes use Fast).
  double CompactError() const { return compact_error_; }

  // cost(s, j) from prefix sums rounded to double: a third of Fast's
  // arithmetic and loads, for the penalised passes, whose bounds already
  // allow an absolute error on the scale of the whole array's S2. With
  // every stored sum within 2u of its magnitude's bound (the rounded
  // double-double and the subtraction), dW, dS1 and dS2 are within
  //   dw_err = 4u W, d1_err = 4u A1, d2_err = 4u S2
  // (W, S2 the totals, A1 = sum |w d|). For the run mean m (|m| <= the
  // largest |d|) the error of dS1^2 / dW is, to first order,
  //   2 |m| d1_err + m^2 dw_err,
  // plus d1_err^2 / dW and a relative (1 + dw_err / dW)^-1 that stay tiny
  // as long as no run's weight is below 2^20 dw_err, which the constructor
  // checks (every run weighs at least the smallest weight). The rounding of
  // the three operations adds at most 4u S2.
  static double CompactCost(const Moment& j, const Moment& s) {
    const double dw = j.w - s.w;
    const double d1 = j.s1 - s.s1;
    const double d2 = j.s2 - s.s2;
    const double c = d2 - d1 * d1 / dw;
    return c > 0 ? c : 0;
  }

  // The moments of positions 0..n, or of the mirrored order (position t
  // standing for index n - t, negated so that later minus earlier is still
  // the run's sums); `value` is left for the pass.
  void Moments(bool mirror, std::vector<Moment>* out) const {
    const int n = static_cast<int>(nodes_.size()) - 1;
    out->resize(n + 1);
    for (int t = 0; t <= n; ++t) {
      const Node& a = nodes_[mirror ? n - t : t];
      const double sign = mirror ? -1.0 : 1.0;
      (*out)[t] = Moment{sign * a.wh, sign * a.s1h, sign * a.s2h, 0};
    }
  }

  // An upper bound on Fast's error for any run: dS2 <= the whole array's S2.
  double MaxFastError() const {
    const Node& last = nodes_.back();
    return (16 * kUnitRoundoff) * (std::fabs(last.s2h) + std::fabs(last.s2l)) * (1 + 1e-6) + tiny_error_;
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
  double compact_error_ = std::numeric_limits<double>::infinity();
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
  double abs_1 = 0, max_dev = 0, min_w = std::numeric_limits<double>::infinity();
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
    min_w = std::min(min_w, w);
  }
  // Each stored sum is within ~n u^2 of the sum of its terms' magnitudes;
  // these errors reach the fast cost through dS2, through dS1^2/dW (at most
  // max_dev times the dS1 error) and through dW (max_dev^2 times).
  const double scale = acc_2.hi + max_dev * abs_1 + max_dev * max_dev * acc_w.hi;
  tiny_error_ = 64.0 * (n + 16) * kUnitRoundoff * kUnitRoundoff * scale;

  // CompactCost's bound (see there); 1.001 covers the second-order terms,
  // the sums' own rounding and max_dev, abs_1 being rounded themselves.
  const double dw_err = 4 * kUnitRoundoff * acc_w.hi;
  const double d1_err = 4 * kUnitRoundoff * abs_1;
  const double d2_err = 4 * kUnitRoundoff * acc_2.hi;
  if (n > 0 && min_w >= 0x1p20 * dw_err) {
    compact_error_ = 1.001 * (d2_err + 2 * max_dev * d1_err + max_dev * max_dev * dw_err +
                              d1_err * d1_err / min_w + 4 * kUnitRoundoff * acc_2.hi) +
                     tiny_error_;
  }
}

// ---- DP ----

template <typename SplitT>
class Solver {
 public:
  Solver(Prefix& prefix, int n, int k, CancelCheck* cancel, Workspace& ws, KMeans1DStats& stats)
      : p_(prefix), n_(n), k_(k), width_(n - k + 1), cancel_(cancel), stats_(stats),
        splits_(SplitTable<SplitT>(ws)), block_lower_(ws.block_lower), scanned_(ws.scanned),
        ws_(ws) {
    // Every entry is written before it is read except layer 1's (a single
    // run starting at 0), so the table is not cleared.
    splits_.resize(static_cast<size_t>(k) * width_);
    std::fill(splits_.begin(), splits_.begin() + width_, SplitT{0});
    block_lower_.resize(n / kBlock + 2);
  }

  // Start index of each cluster (size k), ascending, first is 0; empty when
  // cancelled. `bounded`: compute only the rows the bounds leave (falling
  // back to every row when they cannot be set up).
  std::vector<int> Run(bool bounded) {
    if (bounded && k_ >= 3) {
      switch (BoundedRun()) {
        case Outcome::kDone:
          stats_.bounded = true;
          return Backtrack();
        case Outcome::kCancelled: return {};
        case Outcome::kFallBack: break;
      }
    }
    windowed_ = false;
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
    return Backtrack();
  }

 private:
  std::vector<int> Backtrack() {
    std::vector<int> starts(k_);
    int j = n_;
    for (int m = k_; m >= 2; --m) {
      j = Split(m, j);
      starts[m - 1] = j;
    }
    starts[0] = 0;
    return starts;
  }

  // ---- The bounded DP ----
  //
  // A row (m, j) matters only if it lies on an optimal path: D[m][j] +
  // R[k-m][j] = OPT, where R[r][j] is the best cost of values[j..n) in r
  // runs. With a lower bound on R, an upper bound U >= OPT and the exact
  // D[m][j], rows with D + lower(R) > U are dropped. The lower bounds come
  // from the Lagrangian relaxation of the run count: for any lambda,
  //   R[r][j] >= Suf(j) - lambda r,   D[m][j] >= Pre(j) - lambda m,
  // where Pre(j) (Suf(j)) is the minimum over partitions of the first j
  // (values from j on) into any number of runs of cost + lambda per run, a
  // 1-D DP without layers (below, O(n log n)). With lambda chosen so that
  // the penalised optimum has exactly k runs, that partition is a k-run
  // solution, its cost is U, and Pre + Suf - lambda k equals OPT at the
  // optimal boundaries and grows quickly away from them: only narrow
  // windows of rows survive (1-5 % on fp16 weight histograms).
  //
  // The exact DP then runs layer by layer over a window of rows [r0, r1]
  // with splits restricted to the previous layer's surviving window [L, H].
  // Off-path rows may come out above their true D (their best split was
  // dropped), never below; rows on an optimal path keep exact values and
  // all their optimal splits (each is itself on an optimal path), so the
  // leftmost-optimal choices, and hence the result, are those of the full
  // DP. The within-layer divide and conquer stays valid (prev[s] + cost(s,
  // j) is Monge for any prev); the cross-layer bound opt[m-1][j] <=
  // opt[m][j] and monotonicity of prev in s need exact values off the path,
  // so the windowed layers do without the first and prune blocks with a
  // floor (suffix minimum of prev over the window) instead of prev itself.
  // All bounds carry error terms and U a relative slack of 1e-9, so
  // rounding can only keep rows, never drop an optimal one.
  enum class Outcome { kDone, kCancelled, kFallBack };

  // Penalised 1-D DP over positions 0..n of either direction: value[j] =
  // min over s < j of value[s] + cost(s, j) + lambda, value[0] = 0. In the
  // mirrored direction position t stands for index n - t (the suffix).
  // cost is Monge, so a later candidate that beats an earlier one at some
  // position beats it at every later position: a queue of candidates, each
  // owning an interval of positions, found by binary search (the
  // "1D/1D" method; take-over points found by galloping from the previous
  // one). Costs are CompactCost's where the weights allow, else Fast's.
  // error[j] bounds value[j] - (true minimum): each decision errs by at
  // most two cost errors when the comparison is wrong, plus the cost's own
  // error and the sum's rounding. Returns the runs of the solution at n;
  // -1 when cancelled.
  int Penalised(bool mirror, double lambda, std::vector<double>& value, std::vector<double>& error) {
    value.resize(n_ + 1);
    error.resize(n_ + 1);
    const int n = n_;
    const double compact_error = p_.CompactError();
    ++stats_.penalised_passes;
    stats_.compact_moments = std::isfinite(compact_error);
    if (std::isfinite(compact_error)) {
      std::vector<Moment>& m = ws_.moments;
      p_.Moments(mirror, &m);
      auto candidate = [&m](int s, int j) { return m[s].value + Prefix::CompactCost(m[j], m[s]); };
      auto store = [&](int j, double v) {
        value[j] = v;
        m[j].value = v;
      };
      return PenalisedPass(lambda, compact_error, candidate, store, error);
    }
    auto cost = [&](int s, int j) {
      return mirror ? p_.Fast(p_[n - s], p_[n - j]).cost : p_.Fast(p_[j], p_[s]).cost;
    };
    auto candidate = [&](int s, int j) { return value[s] + cost(s, j); };
    auto store = [&](int j, double v) { value[j] = v; };
    return PenalisedPass(lambda, p_.MaxFastError(), candidate, store, error);
  }

  // The pass itself over candidate(s, j) = value[s] + cost(s, j), each
  // within cost_error of its exact value; store(j, v) records value[j].
  template <typename CandidateFn, typename StoreFn>
  int PenalisedPass(double lambda, double cost_error, const CandidateFn& candidate,
                    const StoreFn& store, std::vector<double>& error) {
    std::vector<int32_t>& arg = ws_.arg;
    std::vector<int32_t>& runs = ws_.runs;
    std::vector<std::pair<int, int>>& queue = ws_.queue;
    arg.resize(n_ + 1);
    runs.resize(n_ + 1);
    const int n = n_;
    store(0, 0.0);
    error[0] = 0;
    runs[0] = 0;
    queue.clear();
    queue.push_back({0, 1});
    size_t head = 0;
    int hint = 1;  // where the last candidate took over: the next one usually does nearby
    for (int j = 1; j <= n; ++j) {
      while (head + 1 < queue.size() && queue[head + 1].second <= j) ++head;
      const int s = queue[head].first;
      const double v = candidate(s, j) + lambda;
      store(j, v);
      error[j] = error[s] + 4 * cost_error + (4 * kUnitRoundoff) * v;
      arg[j] = s;
      runs[j] = runs[s] + 1;
      if (j == n) break;
      // Candidate j, for positions after j.
      int start = -1;
      while (queue.size() > head) {
        const auto [b, from] = queue.back();
        const int pos = std::max(from, j + 1);
        if (candidate(j, pos) <= candidate(b, pos)) {
          queue.pop_back();
          continue;
        }
        start = FirstWin(j, b, pos, hint, candidate);
        break;
      }
      if (queue.size() == head) {
        queue.push_back({j, j + 1});
      } else if (start > 0) {
        queue.push_back({j, start});
        hint = start;
      }
      if ((j & 1023) == 0 && Stopped(cancel_, 1024 * 32)) return -1;
    }
    return runs[n];
  }

  // The first position in (lo, n] at which candidate j beats candidate b,
  // given that it does not at lo; -1 if none. The answer is monotone
  // (Monge), so a galloping search from `hint`, then bisection: a few
  // evaluations, as successive candidates take over near each other.
  template <typename CandidateFn>
  int FirstWin(int j, int b, int lo, int hint, const CandidateFn& candidate) const {
    const int n = n_;
    if (lo >= n) return -1;
    auto wins = [&](int t) { return candidate(j, t) < candidate(b, t); };
    int hi;
    const int h = std::clamp(hint, lo + 1, n);
    if (wins(h)) {
      hi = h;
      for (int step = 1; hi - step > lo; step *= 2) {
        if (!wins(hi - step)) {
          lo = hi - step;
          break;
        }
        hi -= step;
      }
    } else {
      lo = h;
      for (int step = 1;; step *= 2) {
        if (lo + step >= n) {
          if (lo == n || !wins(n)) return -1;
          hi = n;
          break;
        }
        if (wins(lo + step)) {
          hi = lo + step;
          break;
        }
        lo += step;
      }
    }
    while (hi - lo > 1) {  // wins(lo) false, wins(hi) true
      const int mid = lo + (hi - lo) / 2;
      if (wins(mid)) {
        hi = mid;
      } else {
        lo = mid;
      }
    }
    return hi;
  }

  Outcome BoundedRun() {
    const int n = n_, k = k_;
    const double fast_error = p_.MaxFastError();
    const double whole = p_.Accurate(p_[n], p_[0]);
    if (!(whole > 0) || !std::isfinite(whole)) return Outcome::kFallBack;
    std::vector<double>& pre = ws_.prefix_value;
    std::vector<double>& pre_err = ws_.prefix_error;
    // lambda: the marginal gain of the k-th run, -dOPT/dk = 2 OPT / k with
    // OPT = (sqrt(3) pi / 2) whole / k^2 for normal data (Panter and Dite's
    // high-resolution formula; fp16 weight histograms fit 5.4 (1 - 2/k)),
    // then Newton-like steps on the run count (runs ~ lambda^(-1/3)) inside
    // a bracket.
    double lambda = 5.4 * (1 - 2.0 / k) * whole / (static_cast<double>(k) * k * k);
    double below = 0, above = std::numeric_limits<double>::infinity();
    double upper = std::numeric_limits<double>::infinity();  // U
    const int passes = std::clamp(k / 4, 2, kLambdaPasses);
    for (int pass = 0; pass < passes; ++pass) {
      const int runs = Penalised(false, lambda, pre, pre_err);
      if (runs < 0) return Outcome::kCancelled;
      if (runs <= k) upper = std::min(upper, FeasibleCost());
      if (runs == k) break;
      if (pass + 1 == passes) break;  // keep this pass's bounds
      if (runs > k) {
        below = std::max(below, lambda);
      } else {
        above = std::min(above, lambda);
      }
      const double ratio = static_cast<double>(runs) / k;
      double next = lambda * std::clamp(ratio * ratio * ratio, 1.0 / 64, 64.0);
      if (!(next > below && next < above)) {
        next = std::isfinite(above) ? (below > 0 ? std::sqrt(below * above) : above / 8) : below * 8;
      }
      lambda = next;
    }
    // With ties the run count can jump over k at one lambda; the bounds hold
    // for any lambda, and U from a solution with fewer runs split up is
    // merely less tight. The slack also keeps every row whose value is
    // within the fast costs' error bounds of optimal along the whole path,
    // so near-ties are decided among the same candidates as in the full DP.
    const double slack = upper + 1e-9 * (upper + lambda * k) + 8.0 * (k + 2) * fast_error + 1e-300;
    if (!std::isfinite(slack)) return Outcome::kFallBack;

    std::vector<double>& suf = ws_.suffix_value;
    std::vector<double>& suf_err = ws_.suffix_error;
    if (Penalised(true, lambda, suf, suf_err) < 0) return Outcome::kCancelled;
    auto pre_low = [&](int j) { return pre[j] - pre_err[j]; };
    auto suf_low = [&](int j) { return suf[n - j] - suf_err[n - j]; };

    // Positions that can hold a boundary of some optimal solution, whatever
    // the layer: maximal intervals, with the bounds' minima over each.
    auto& intervals = ws_.intervals;
    intervals.clear();
    const double lk = lambda * k;
    for (int j = 1; j < n; ++j) {
      const double a = pre_low(j), b = suf_low(j);
      if (a + b - lk > slack) continue;
      if (!intervals.empty() && intervals.back().last == j - 1) {
        auto& iv = intervals.back();
        iv.last = j;
        iv.prefix_min = std::min(iv.prefix_min, a);
        iv.suffix_min = std::min(iv.suffix_min, b);
      } else {
        intervals.push_back({j, j, a, b});
      }
    }

    windowed_ = true;
    std::vector<double>& floor = ws_.floor;
    floor.resize(n + 1);
    // The previous layer's survivors; layer 0 is the empty prefix.
    int window_lo = 0, window_hi = 0;
    floor[0] = 0;
    size_t first_interval = 0;
    prev_ = 1;
    for (int m = 1; m < k; ++m) {
      const int lowest = window_lo + 1;
      const int highest = n - k + m;
      while (first_interval < intervals.size() && intervals[first_interval].last < lowest) ++first_interval;
      int r0 = n + 1, r1 = -1;
      for (size_t i = first_interval; i < intervals.size(); ++i) {
        const auto& iv = intervals[i];
        const int a = std::max(iv.first, lowest), b = std::min(iv.last, highest);
        if (a > b) {
          if (iv.first > highest) break;
          continue;
        }
        // D[m][j] >= Pre(j) - lambda m, and >= the previous layer's least
        // value plus the cost of reaching j from its window.
        double reach = floor[window_lo];
        if (a > window_hi) {
          const FastCost f = p_.Fast(p_[a], p_[window_hi]);
          reach += std::max(0.0, f.cost - f.error);
        }
        const double d_low = std::max(iv.prefix_min - lambda * m, reach);
        if (d_low + (iv.suffix_min - lambda * (k - m)) > slack) continue;
        r0 = std::min(r0, a);
        r1 = std::max(r1, b);
      }
      if (r1 < r0) return Outcome::kFallBack;
      // Weak bounds (no lambda with k runs, U from fewer runs split up, on
      // heavy-tailed data): windowed layers without the cross-layer bound
      // would cost more than the full DP.
      if (r1 - r0 + 1 > width_ / 2) return Outcome::kFallBack;
      const int slot = prev_ ^ 1;
      if (m == 1) {
        for (int j = r0; j <= r1; ++j) p_[j].dp[slot] = p_.Accurate(p_[j], p_[0]);
      } else if (!LayerWindow(m, r0, r1, window_lo, window_hi)) {
        return Outcome::kCancelled;
      }
      int lo = -1, hi = -1;
      const double rest = lambda * (k - m);
      for (int j = r0; j <= r1; ++j) {
        const double b = suf_low(j);
        if (p_[j].dp[slot] + b - rest > slack || pre_low(j) + b - lk > slack) continue;
        if (lo < 0) lo = j;
        hi = j;
      }
      if (lo < 0) return Outcome::kFallBack;
      double f = std::numeric_limits<double>::infinity();
      for (int j = hi; j >= lo; --j) {
        f = std::min(f, p_[j].dp[slot]);
        floor[j] = f;
      }
      window_lo = lo;
      window_hi = hi;
      prev_ = slot;
    }
    const int lo = std::max(window_lo, k - 1), hi = std::min(window_hi, n - 1);
    if (lo > hi) return Outcome::kFallBack;
    Split(k, n) = static_cast<SplitT>(BestSplit(n, lo, hi).first);
    return Outcome::kDone;
  }

  // Cost of the prefix pass's partition (at most k runs), its runs split
  // greedily (the best cut of the run that gains most) until there are k: a
  // feasible k-run solution, so an upper bound on OPT.
  double FeasibleCost() {
    std::vector<int>& starts = ws_.starts;
    std::vector<std::pair<double, int>>& cut = ws_.best_cut;  // per run: gain, where
    starts.clear();
    for (int j = n_; j > 0; j = ws_.arg[j]) starts.push_back(ws_.arg[j]);
    std::reverse(starts.begin(), starts.end());
    auto end_of = [&](size_t i) { return i + 1 < starts.size() ? starts[i + 1] : n_; };
    auto best_cut = [&](size_t i) {
      const int a = starts[i], b = end_of(i);
      std::pair<double, int> best{-1, -1};
      const double whole = p_.Fast(p_[b], p_[a]).cost;
      for (int t = a + 1; t < b; ++t) {
        const double gain = whole - p_.Fast(p_[t], p_[a]).cost - p_.Fast(p_[b], p_[t]).cost;
        if (gain > best.first) best = {gain, t};
      }
      return best;
    };
    cut.clear();
    for (size_t i = 0; i < starts.size(); ++i) cut.push_back(best_cut(i));
    while (static_cast<int>(starts.size()) < k_) {
      size_t pick = 0;
      for (size_t i = 1; i < cut.size(); ++i) {
        if (cut[i].first > cut[pick].first) pick = i;
      }
      if (cut[pick].second < 0) break;  // every run a single value: n < k
      starts.insert(starts.begin() + pick + 1, cut[pick].second);
      cut.insert(cut.begin() + pick + 1, {-1, -1});
      cut[pick] = best_cut(pick);
      cut[pick + 1] = best_cut(pick + 1);
    }
    double cost = 0;
    for (size_t i = 0; i < starts.size(); ++i) cost += p_.Accurate(p_[end_of(i)], p_[starts[i]]);
    return cost;
  }

  // Rows j in [r0, r1] of layer m with splits in [c0, c1] (the previous
  // layer's window), by the same breadth-first divide and conquer as Layer.
  bool LayerWindow(int m, int r0, int r1, int c0, int c1) {
    const int rows = r1 - r0 + 1;
    int top = 1;
    while (top <= rows / 2) top *= 2;
    const int next = prev_ ^ 1;
    for (int h = top; h >= 1; h /= 2) {
      for (int r = h - 1; r < rows; r += 2 * h) {
        const int j = r0 + r;
        int lo = r >= h ? std::max(static_cast<int>(Split(m, j - h)), c0) : c0;
        int hi = r + h < rows ? std::min(static_cast<int>(Split(m, j + h)), j - 1) : j - 1;
        hi = std::min(hi, c1);
        lo = std::min(lo, hi);
        const auto [s, v] = BestSplit(j, lo, hi);
        p_[j].dp[next] = v;
        Split(m, j) = static_cast<SplitT>(s);
        if (Stopped(cancel_, hi - lo + 1)) return false;
      }
    }
    return true;
  }

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
    ++stats_.rows;
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
        const double pa = windowed_ ? ws_.floor[a] : p_[a].dp[prev_];
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
  KMeans1DStats& stats_;
  int prev_ = 0;  // which Node::dp slot holds the previous layer
  std::vector<SplitT>& splits_;
  // Scratch for BestSplit.
  std::vector<double>& block_lower_;
  std::vector<std::pair<int, int>>& scanned_;
  Workspace& ws_;
  bool windowed_ = false;  // block pruning reads ws_.floor, not prev
};

// cluster[i] for the runs starting at `starts`.
std::vector<int32_t> ClustersOf(int n, const std::vector<int>& starts) {
  std::vector<int32_t> cluster(n);
  const int k = static_cast<int>(starts.size());
  for (int c = 0; c < k; ++c) {
    const int b = c + 1 < k ? starts[c + 1] : n;
    std::fill(cluster.begin() + starts[c], cluster.begin() + b, c);
  }
  return cluster;
}

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
  result.cluster = ClustersOf(n, starts);
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
      const DD d = TwoSum(values[i] * xs, -centroid * xs);
      sse = Add(sse, Mul(Mul(d, d), weights[i] * ws));
    }
  }
  result.sse = sse.hi / xs / xs / ws;
  return result;
}

}  // namespace

namespace {

// The optimal runs of valid input: their starts (every value its own run
// when n <= k) and the scales their costs were computed in.
struct Runs {
  std::vector<int> starts;
  Scales scales;
};

absl::StatusOr<Runs> Solve(absl::Span<const double> values, absl::Span<const double> weights, int k,
                           CancelCheck* cancel, bool bounded, KMeans1DStats* stats = nullptr) {
  KMeans1DStats unused;
  if (stats == nullptr) stats = &unused;
  *stats = {};
  if (absl::Status status = Validate(values, weights, k); !status.ok()) return status;
  if (values.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("OptimalKMeans1D: too many values (", values.size(), ")"));
  }
  const int n = static_cast<int>(values.size());
  Runs runs;
  if (n <= k) {
    runs.starts.resize(n);
    for (int i = 0; i < n; ++i) runs.starts[i] = i;
    return runs;
  }
  runs.scales = ScalesFor(values, weights);
  if (k == 1) {
    runs.starts = {0};
    return runs;
  }
  const int64_t entries = static_cast<int64_t>(k) * (n - k + 1);
  if (entries > kMaxSplitEntries) {
    return absl::ResourceExhaustedError(
        absl::StrCat("OptimalKMeans1D: k = ", k, " with n = ", n, " needs ", entries,
                     " DP split entries; the limit is ", kMaxSplitEntries));
  }
  Workspace& ws = ThreadWorkspace();
  Prefix prefix(values, weights, runs.scales, &ws.nodes);
  if (n <= 65536) {  // splits are < n, so 16 bits suffice: halves the table
    runs.starts = Solver<uint16_t>(prefix, n, k, cancel, ws, *stats).Run(bounded);
  } else {
    runs.starts = Solver<int32_t>(prefix, n, k, cancel, ws, *stats).Run(bounded);
  }
  ws.Trim();
  if (runs.starts.empty()) return CancelledStatus();
  return runs;
}

bool BoundedRows(KMeans1DRows rows, int k) {
  return rows == KMeans1DRows::kBounded || (rows == KMeans1DRows::kAuto && k >= kBoundedFromK);
}

}  // namespace

absl::StatusOr<KMeans1DResult> OptimalKMeans1D(absl::Span<const double> values,
                                               absl::Span<const double> weights, int k,
                                               CancelCheck* cancel) {
  return OptimalKMeans1DWithRows(values, weights, k, KMeans1DRows::kAuto, cancel);
}

absl::StatusOr<std::vector<int32_t>> OptimalKMeans1DClusters(absl::Span<const double> values,
                                                             absl::Span<const double> weights, int k,
                                                             CancelCheck* cancel) {
  ASSIGN_OR_RETURN(Runs runs, Solve(values, weights, k, cancel, BoundedRows(KMeans1DRows::kAuto, k)));
  return ClustersOf(static_cast<int>(values.size()), runs.starts);
}

absl::StatusOr<KMeans1DResult> OptimalKMeans1DWithRows(absl::Span<const double> values,
                                                       absl::Span<const double> weights, int k,
                                                       KMeans1DRows rows, CancelCheck* cancel,
                                                       KMeans1DStats* stats) {
  ASSIGN_OR_RETURN(Runs runs, Solve(values, weights, k, cancel, BoundedRows(rows, k), stats));
  const int n = static_cast<int>(values.size());
  if (n <= k) {  // every value its own centroid, exactly
    KMeans1DResult result;
    result.centroids.assign(values.begin(), values.end());
    result.cluster = ClustersOf(n, runs.starts);
    return result;
  }
  return Finish(values, weights, runs.scales, runs.starts);
}

}  // namespace coremlz::compress
