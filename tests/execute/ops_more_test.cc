// The gather/scatter, sort, einsum, gru/rnn, quantize, band_part, *_like and
// reverse kernels, each against a slow, obvious reference (loops over
// multi-indices) on random shapes, with edge cases: negative axes and indices
// per opset, batch dims, empty dims, repeated indices, ties, unsupported forms.
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "op_test_util.h"

namespace coremlz::execute::testing {
namespace {

void ExpectEqualValues(const Tensor& got, const Shape& shape, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_EQ(got.shape(), shape);
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got.AsDouble(i), want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

std::vector<double> Values(const Tensor& t) {
  std::vector<double> v(t.size());
  for (int64_t i = 0; i < t.size(); ++i) v[i] = t.AsDouble(i);
  return v;
}

Tensor RandomInts(std::mt19937& rng, Shape shape, int32_t lo, int32_t hi) {
  std::uniform_int_distribution<int32_t> u(lo, hi);
  std::vector<int32_t> v(NumElements(shape));
  for (int32_t& x : v) x = u(rng);
  return Tensor::Int(std::move(shape), std::move(v));
}

absl::StatusCode Code(const absl::StatusOr<std::vector<Tensor>>& r) { return r.status().code(); }

// ---- gather_nd / gather_along_axis ------------------------------------------

TEST(GatherNdOp, MatchesSlowReference) {
  std::mt19937 rng(1);
  struct Case {
    Shape x;
    Shape lookups;  // indices shape without the last dim
    int64_t depth, batch_dims;
  };
  for (const Case& c : std::vector<Case>{{{4, 5, 3}, {2}, 1, 0},
                                         {{4, 5, 3}, {2, 3}, 2, 0},
                                         {{4, 5, 3}, {6}, 3, 0},
                                         {{3, 5, 2}, {3, 4}, 1, 1},  // batch_dims: lookups per batch element
                                         {{2, 3, 4, 2}, {2, 3, 2}, 1, 2},
                                         {{4, 0, 3}, {2}, 1, 0},     // empty slices
                                         {{4, 5}, {0}, 2, 0}}) {     // no lookups
    SCOPED_TRACE(::testing::Message() << format::ShapeString(c.x) << " depth " << c.depth << " b" << c.batch_dims);
    Tensor x = Random(rng, c.x);
    Shape ishape = c.lookups;
    ishape.push_back(c.depth);
    std::vector<int32_t> iv(NumElements(ishape));
    for (size_t i = 0; i < iv.size(); ++i) {
      const int64_t dim = c.x[c.batch_dims + i % c.depth];
      iv[i] = dim == 0 ? 0 : std::uniform_int_distribution<int32_t>(0, dim - 1)(rng);
    }
    Tensor indices = Tensor::Int(ishape, iv);
    Shape out_shape = c.lookups;
    out_shape.insert(out_shape.end(), c.x.begin() + c.batch_dims + c.depth, c.x.end());
    std::vector<double> want(NumElements(out_shape));
    for (size_t o = 0; o < want.size(); ++o) {
      std::vector<int64_t> oi = Unflat(out_shape, o);
      std::vector<int64_t> lookup(oi.begin(), oi.begin() + c.lookups.size());
      std::vector<int64_t> xi(oi.begin(), oi.begin() + c.batch_dims);
      for (int64_t j = 0; j < c.depth; ++j) {
        std::vector<int64_t> ii = lookup;
        ii.push_back(j);
        xi.push_back(iv[Flat(ishape, ii)]);
      }
      xi.insert(xi.end(), oi.begin() + c.lookups.size(), oi.end());
      want[o] = x.floats()[Flat(c.x, xi)];
    }
    auto got = RunOp("gather_nd", {{"x", {x}}, {"indices", {indices}}, {"batch_dims", {Tensor::IntScalar(c.batch_dims)}}});
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectEqualValues((*got)[0], out_shape, want);
  }
}

TEST(GatherNdOp, NegativeIndicesFollowTheOpsetAndOutOfRangeIsRefused) {
  Tensor x = Tensor::Float({3, 2}, {0, 1, 2, 3, 4, 5});
  Tensor neg = Tensor::Int({1, 2}, {-1, 0});
  auto ios16 = RunOp("gather_nd", {{"x", {x}}, {"indices", {neg}}}, 16);
  ASSERT_TRUE(ios16.ok()) << ios16.status();
  ExpectEqualValues((*ios16)[0], {1}, {4});
  EXPECT_EQ(Code(RunOp("gather_nd", {{"x", {x}}, {"indices", {neg}}}, 17)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("gather_nd", {{"x", {x}}, {"indices", {Tensor::Int({1, 2}, {3, 0})}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("gather_nd", {{"x", {x}}, {"indices", {Tensor::Int({1, 3}, {0, 0, 0})}}})),
            absl::StatusCode::kInvalidArgument);  // deeper than x
}

TEST(GatherAlongAxisOp, MatchesSlowReference) {
  std::mt19937 rng(2);
  for (int64_t axis : {0, 1, -1, -3}) {
    SCOPED_TRACE(axis);
    const Shape xs = {3, 4, 5};
    const int64_t a = axis < 0 ? axis + 3 : axis;
    Shape is = xs;
    is[a] = 6;  // more lookups than the dim: repeats
    Tensor x = Random(rng, xs), indices = RandomInts(rng, is, 0, xs[a] - 1);
    std::vector<double> want(NumElements(is));
    for (size_t i = 0; i < want.size(); ++i) {
      std::vector<int64_t> xi = Unflat(is, i);
      xi[a] = indices.ints()[i];
      want[i] = x.floats()[Flat(xs, xi)];
    }
    auto got = RunOp("gather_along_axis", {{"x", {x}}, {"indices", {indices}}, {"axis", {Tensor::IntScalar(axis)}}});
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectEqualValues((*got)[0], is, want);
  }
  Tensor x = Tensor::Float({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(Code(RunOp("gather_along_axis", {{"x", {x}}, {"indices", {Tensor::Int({1, 2}, {0, 2})}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("gather_along_axis", {{"x", {x}}, {"indices", {Tensor::Int({1, 3}, {0, 0, 0})}}})),
            absl::StatusCode::kInvalidArgument);  // a non-axis dim differs
}

// ---- scatter family ---------------------------------------------------------

double Combine(const std::string& mode, double cur, double upd) {
  if (mode == "update") return upd;
  if (mode == "add") return cur + upd;
  if (mode == "sub") return cur - upd;
  if (mode == "mul") return cur * upd;
  if (mode == "div") return cur / upd;
  if (mode == "max") return std::max(cur, upd);
  return std::min(cur, upd);
}

const std::vector<std::string> kModes = {"update", "add", "sub", "mul", "div", "max", "min"};

TEST(ScatterOp, MatchesSlowReferenceInEveryMode) {
  std::mt19937 rng(3);
  for (const std::string& mode : kModes) {
    for (int64_t axis : {0, 1, -1}) {
      SCOPED_TRACE(::testing::Message() << mode << " axis " << axis);
      const Shape ds = {3, 4, 2};
      const int64_t a = axis < 0 ? axis + 3 : axis;
      Tensor data = Random(rng, ds, 1, 2);
      Tensor indices = RandomInts(rng, {5}, 0, ds[a] - 1);  // 5 > dim: repeated indices
      Shape us = ds;
      us[a] = 5;
      Tensor updates = Random(rng, us, 1, 2);
      std::vector<double> want = Values(data);
      for (int64_t u = 0; u < updates.size(); ++u) {
        std::vector<int64_t> di = Unflat(us, u);
        di[a] = indices.ints()[di[a]];
        double& w = want[Flat(ds, di)];
        w = Combine(mode, w, updates.floats()[u]);
      }
      auto got = RunOp("scatter", {{"data", {data}}, {"indices", {indices}}, {"updates", {updates}},
                                   {"axis", {Tensor::IntScalar(axis)}}, {"mode", {Str(mode)}}});
      ASSERT_TRUE(got.ok()) << got.status();
      ExpectEqualValues((*got)[0], ds, want, 1e-4);
    }
  }
}

TEST(ScatterOp, DefaultsToAddAndChecksIndicesAndShapes) {
  Tensor data = Tensor::Int({3}, {1, 2, 3});
  auto add = RunOp("scatter", {{"data", {data}}, {"indices", {Ints({2, 2})}}, {"updates", {Ints({10, 20})}}});
  ASSERT_TRUE(add.ok()) << add.status();
  ExpectEqualValues((*add)[0], {3}, {1, 2, 33});
  // Negative indices count from the end before iOS17 and are out of range from iOS17.
  Args neg = {{"data", {data}}, {"indices", {Ints({-1})}}, {"updates", {Ints({5})}}, {"mode", {Str("update")}}};
  auto ios16 = RunOp("scatter", neg, 16);
  ASSERT_TRUE(ios16.ok()) << ios16.status();
  ExpectEqualValues((*ios16)[0], {3}, {1, 2, 5});
  EXPECT_EQ(Code(RunOp("scatter", neg, 17)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("scatter", {{"data", {data}}, {"indices", {Ints({3})}}, {"updates", {Ints({5})}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("scatter", {{"data", {data}}, {"indices", {Ints({0})}}, {"updates", {Ints({5, 6})}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("scatter", {{"data", {data}}, {"indices", {Ints({0})}}, {"updates", {Ints({0})}},
                                   {"mode", {Str("div")}}})),
            absl::StatusCode::kInvalidArgument);  // integer division by zero
  EXPECT_EQ(Code(RunOp("scatter", {{"data", {data}}, {"indices", {Ints({0})}}, {"updates", {Ints({1})}},
                                   {"mode", {Str("xor")}}})),
            absl::StatusCode::kInvalidArgument);
}

TEST(ScatterNdOp, MatchesSlowReference) {
  std::mt19937 rng(4);
  for (const std::string& mode : {std::string("update"), std::string("add"), std::string("max")}) {
    for (int64_t depth : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << mode << " depth " << depth);
      const Shape ds = {3, 4, 2};
      Tensor data = Random(rng, ds);
      const Shape lookups = {2, 3};
      Shape is = lookups;
      is.push_back(depth);
      std::vector<int32_t> iv(NumElements(is));
      for (size_t i = 0; i < iv.size(); ++i) iv[i] = std::uniform_int_distribution<int32_t>(0, ds[i % depth] - 1)(rng);
      Shape us = lookups;
      us.insert(us.end(), ds.begin() + depth, ds.end());
      Tensor updates = Random(rng, us);
      std::vector<double> want = Values(data);
      for (int64_t u = 0; u < updates.size(); ++u) {
        std::vector<int64_t> ui = Unflat(us, u), di;
        for (int64_t j = 0; j < depth; ++j) di.push_back(iv[(ui[0] * lookups[1] + ui[1]) * depth + j]);
        di.insert(di.end(), ui.begin() + lookups.size(), ui.end());
        double& w = want[Flat(ds, di)];
        w = Combine(mode, w, updates.floats()[u]);
      }
      auto got = RunOp("scatter_nd", {{"data", {data}}, {"indices", {Tensor::Int(is, iv)}}, {"updates", {updates}},
                                      {"mode", {Str(mode)}}});
      ASSERT_TRUE(got.ok()) << got.status();
      ExpectEqualValues((*got)[0], ds, want);
    }
  }
  Tensor data = Tensor::Float({2, 2}, {0, 0, 0, 0});
  EXPECT_EQ(Code(RunOp("scatter_nd", {{"data", {data}}, {"indices", {Tensor::Int({1, 2}, {0, 2})}},
                                      {"updates", {Tensor::Float({1}, {1})}}})),
            absl::StatusCode::kInvalidArgument);
}

TEST(ScatterAlongAxisOp, MatchesSlowReference) {
  std::mt19937 rng(5);
  for (const std::string& mode : kModes) {
    for (int64_t axis : {0, -1}) {
      SCOPED_TRACE(::testing::Message() << mode << " axis " << axis);
      const Shape ds = {3, 4};
      const int64_t a = axis < 0 ? axis + 2 : axis;
      Shape is = ds;
      is[a] = 5;
      Tensor data = Random(rng, ds, 1, 2), indices = RandomInts(rng, is, 0, ds[a] - 1), updates = Random(rng, is, 1, 2);
      std::vector<double> want = Values(data);
      for (int64_t u = 0; u < updates.size(); ++u) {
        std::vector<int64_t> di = Unflat(is, u);
        di[a] = indices.ints()[u];
        double& w = want[Flat(ds, di)];
        w = Combine(mode, w, updates.floats()[u]);
      }
      auto got = RunOp("scatter_along_axis", {{"data", {data}}, {"indices", {indices}}, {"updates", {updates}},
                                              {"axis", {Tensor::IntScalar(axis)}}, {"mode", {Str(mode)}}});
      ASSERT_TRUE(got.ok()) << got.status();
      ExpectEqualValues((*got)[0], ds, want, 1e-4);
    }
  }
}

// ---- one_hot ----------------------------------------------------------------

TEST(OneHotOp, MatchesSlowReference) {
  std::mt19937 rng(6);
  for (int64_t axis : {-1, 0, 1, 2, -3}) {
    SCOPED_TRACE(axis);
    Tensor indices = RandomInts(rng, {2, 3}, 0, 3);
    const int64_t a = axis < 0 ? axis + 3 : axis;
    Shape out = {2, 3};
    out.insert(out.begin() + a, 4);
    std::vector<double> want(NumElements(out));
    for (size_t i = 0; i < want.size(); ++i) {
      std::vector<int64_t> oi = Unflat(out, i);
      const int64_t k = oi[a];
      oi.erase(oi.begin() + a);
      want[i] = indices.ints()[Flat({2, 3}, oi)] == k ? 2.5 : -1;
    }
    auto got = RunOp("one_hot", {{"indices", {indices}}, {"one_hot_vector_size", {Tensor::IntScalar(4)}},
                                 {"axis", {Tensor::IntScalar(axis)}}, {"on_value", {Tensor::FloatScalar(2.5)}},
                                 {"off_value", {Tensor::FloatScalar(-1)}}});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ((*got)[0].dtype(), DType::kFloat32);
    ExpectEqualValues((*got)[0], out, want);
  }
  auto ints = RunOp("one_hot", {{"indices", {Ints({1, 0})}}, {"one_hot_vector_size", {Tensor::IntScalar(3)}}});
  ASSERT_TRUE(ints.ok()) << ints.status();
  EXPECT_EQ((*ints)[0].dtype(), DType::kInt32);
  ExpectEqualValues((*ints)[0], {2, 3}, {0, 1, 0, 1, 0, 0});
  EXPECT_EQ(Code(RunOp("one_hot", {{"indices", {Ints({3})}}, {"one_hot_vector_size", {Tensor::IntScalar(3)}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("one_hot", {{"indices", {Ints({-1})}}, {"one_hot_vector_size", {Tensor::IntScalar(3)}}})),
            absl::StatusCode::kInvalidArgument);
}

// ---- topk / argsort ---------------------------------------------------------

// The reference order: by value (descending unless ascending), ties by
// position, as a stable sort of numpy's argsort(x) / argsort(-x) gives.
std::vector<int64_t> SlowOrder(const std::vector<double>& line, bool ascending) {
  std::vector<int64_t> order;
  std::vector<bool> used(line.size(), false);
  for (size_t r = 0; r < line.size(); ++r) {
    int64_t best = -1;
    for (size_t i = 0; i < line.size(); ++i) {
      if (used[i]) continue;
      if (best < 0 || (ascending ? line[i] < line[best] : line[i] > line[best])) best = i;
    }
    used[best] = true;
    order.push_back(best);
  }
  return order;
}

TEST(SortOps, TopKAndArgsortMatchSlowReferenceWithTies) {
  std::mt19937 rng(7);
  for (bool ascending : {false, true}) {
    for (int64_t axis : {0, 1, -1}) {
      SCOPED_TRACE(::testing::Message() << "ascending " << ascending << " axis " << axis);
      const Shape xs = {4, 6, 3};
      const int64_t a = axis < 0 ? axis + 3 : axis;
      // Few distinct values: many ties.
      Tensor xi = RandomInts(rng, xs, 0, 2);
      std::vector<float> fv(xi.ints().begin(), xi.ints().end());
      for (const Tensor& x : {xi, Tensor::Float(xs, fv)}) {
        const int64_t n = xs[a], k = n - 1;
        Shape ks = xs;
        ks[a] = k;
        std::vector<double> want_values(NumElements(ks)), want_indices(NumElements(ks)), want_sort(x.size());
        for (int64_t i = 0; i < x.size(); ++i) {
          std::vector<int64_t> idx = Unflat(xs, i);
          if (idx[a] != 0) continue;
          std::vector<double> line;
          for (int64_t j = 0; j < n; ++j) {
            idx[a] = j;
            line.push_back(x.AsDouble(Flat(xs, idx)));
          }
          const std::vector<int64_t> order = SlowOrder(line, ascending);
          for (int64_t j = 0; j < n; ++j) {
            idx[a] = j;
            want_sort[Flat(xs, idx)] = order[j];
            if (j < k) {
              want_values[Flat(ks, idx)] = line[order[j]];
              want_indices[Flat(ks, idx)] = order[j];
            }
          }
        }
        auto top = RunOp("topk", {{"x", {x}}, {"k", {Tensor::IntScalar(k)}}, {"axis", {Tensor::IntScalar(axis)}},
                                  {"ascending", {BoolScalar(ascending)}}});
        ASSERT_TRUE(top.ok()) << top.status();
        ASSERT_EQ(top->size(), 2u);
        EXPECT_EQ((*top)[0].dtype(), x.dtype());
        EXPECT_EQ((*top)[1].dtype(), DType::kInt32);
        ExpectEqualValues((*top)[0], ks, want_values);
        ExpectEqualValues((*top)[1], ks, want_indices);
        auto sorted = RunOp("argsort", {{"x", {x}}, {"axis", {Tensor::IntScalar(axis)}}, {"ascending", {BoolScalar(ascending)}}});
        ASSERT_TRUE(sorted.ok()) << sorted.status();
        ExpectEqualValues((*sorted)[0], xs, want_sort);
      }
    }
  }
}

TEST(SortOps, DefaultsAndEdgeCases) {
  Tensor x = Tensor::Float({5}, {3, 1, 3, 2, 1});
  // Defaults: k = 1, last axis, descending; the first of tied maxima.
  auto top = RunOp("topk", {{"x", {x}}});
  ASSERT_TRUE(top.ok()) << top.status();
  ExpectEqualValues((*top)[0], {1}, {3});
  ExpectEqualValues((*top)[1], {1}, {0});
  auto sorted = RunOp("argsort", {{"x", {x}}});
  ASSERT_TRUE(sorted.ok()) << sorted.status();
  ExpectEqualValues((*sorted)[0], {5}, {0, 2, 3, 1, 4});
  auto ascending = RunOp("argsort", {{"x", {x}}, {"ascending", {BoolScalar(true)}}});
  ASSERT_TRUE(ascending.ok()) << ascending.status();
  ExpectEqualValues((*ascending)[0], {5}, {1, 4, 3, 0, 2});
  // iOS16 return_indices = false: values only.
  auto values_only = RunOp("topk", {{"x", {x}}, {"k", {Tensor::IntScalar(2)}}, {"return_indices", {BoolScalar(false)}}});
  ASSERT_TRUE(values_only.ok()) << values_only.status();
  ASSERT_EQ(values_only->size(), 1u);
  ExpectEqualValues((*values_only)[0], {2}, {3, 3});
  // k = 0 and empty dims give empty outputs; k beyond the dim is refused.
  auto none = RunOp("topk", {{"x", {x}}, {"k", {Tensor::IntScalar(0)}}});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ((*none)[0].shape(), Shape({0}));
  auto empty = RunOp("argsort", {{"x", {Tensor::Zeros(DType::kFloat32, {0, 3})}}});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ((*empty)[0].shape(), Shape({0, 3}));
  EXPECT_EQ(Code(RunOp("topk", {{"x", {x}}, {"k", {Tensor::IntScalar(6)}}})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("topk", {{"x", {x}}, {"axis", {Tensor::IntScalar(1)}}})), absl::StatusCode::kInvalidArgument);
  // NaN sorts last in either direction.
  Tensor nan = Tensor::Float({3}, {std::nanf(""), 1, 2});
  for (bool asc : {false, true}) {
    auto order = RunOp("argsort", {{"x", {nan}}, {"ascending", {BoolScalar(asc)}}});
    ASSERT_TRUE(order.ok()) << order.status();
    EXPECT_EQ((*order)[0].ints()[2], 0);
  }
}

// ---- einsum -----------------------------------------------------------------

// Sum over every assignment of the letters of a*b, for the output letters.
std::vector<double> SlowEinsum(const std::string& ea, const std::string& eb, const std::string& eo, const Tensor& a,
                               const Tensor& b, std::map<char, int64_t> sizes, Shape* out_shape) {
  std::string letters;
  for (const auto& [c, n] : sizes) letters += c;
  Shape all;
  for (char c : letters) all.push_back(sizes[c]);
  out_shape->clear();
  for (char c : eo) out_shape->push_back(sizes[c]);
  std::vector<double> out(NumElements(*out_shape), 0.0);
  for (int64_t i = 0; i < NumElements(all); ++i) {
    std::vector<int64_t> idx = Unflat(all, i);
    auto at = [&](const std::string& e, const Tensor& t) {
      std::vector<int64_t> ti;
      for (size_t d = 0; d < e.size(); ++d) ti.push_back(t.dim(d) == 1 ? 0 : idx[letters.find(e[d])]);
      return Flat(t.shape(), ti);
    };
    std::vector<int64_t> oi;
    for (char c : eo) oi.push_back(idx[letters.find(c)]);
    out[Flat(*out_shape, oi)] += static_cast<double>(a.floats()[at(ea, a)]) * b.floats()[at(eb, b)];
  }
  return out;
}

TEST(EinsumOp, MatchesSlowReferenceForSupportedForms) {
  std::mt19937 rng(8);
  struct Case {
    std::string a, b, out;
    Shape as, bs;
  };
  for (const Case& c : std::vector<Case>{
           {"nchw", "nwhu", "nchu", {2, 3, 4, 5}, {2, 5, 4, 6}},  // coremltools' own form
           {"nchw", "nwhu", "nchu", {1, 3, 4, 5}, {2, 5, 1, 6}},  // broadcast batch dims
           {"chw", "whr", "chr", {3, 4, 5}, {5, 4, 2}},
           {"ij", "jk", "ik", {3, 4}, {4, 5}},
           {"bij", "bjk", "bik", {2, 3, 4}, {2, 4, 5}},
           {"bhid", "bhjd", "bhij", {2, 3, 4, 5}, {2, 3, 6, 5}},  // attention scores
           {"bhij", "bhjd", "bhid", {2, 3, 4, 6}, {2, 3, 6, 5}},  // attention output
           {"ij", "kj", "ki", {3, 4}, {5, 4}},                    // permuted output
           {"i", "j", "ij", {3}, {4}},                            // outer product
           {"ij", "ij", "", {3, 4}, {3, 4}},                      // full contraction
           {"ij", "jk", "ik", {3, 0}, {0, 5}},                    // empty contraction: zeros
       }) {
    const std::string eq = c.a + "," + c.b + "->" + c.out;
    SCOPED_TRACE(eq);
    Tensor a = Random(rng, c.as), b = Random(rng, c.bs);
    std::map<char, int64_t> sizes;
    for (size_t d = 0; d < c.a.size(); ++d) sizes[c.a[d]] = c.as[d];
    for (size_t d = 0; d < c.b.size(); ++d) sizes[c.b[d]] = std::max(sizes[c.b[d]], c.bs[d]);
    Shape out_shape;
    const std::vector<double> want = SlowEinsum(c.a, c.b, c.out, a, b, sizes, &out_shape);
    auto got = RunOp("einsum", {{"values", {a, b}}, {"equation", {Str(eq)}}});
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectEqualValues((*got)[0], out_shape, want, 1e-4);
  }
  // Implicit output (letters that occur once, alphabetically): a matmul.
  Tensor a = Random(rng, {2, 3}), b = Random(rng, {3, 4});
  Shape shape;
  const std::vector<double> want = SlowEinsum("ij", "jk", "ik", a, b, {{'i', 2}, {'j', 3}, {'k', 4}}, &shape);
  auto implicit = RunOp("einsum", {{"values", {a, b}}, {"equation", {Str("ij,jk")}}});
  ASSERT_TRUE(implicit.ok()) << implicit.status();
  ExpectEqualValues((*implicit)[0], shape, want, 1e-4);
}

TEST(EinsumOp, UnsupportedAndInvalidEquationsAreRefused) {
  Tensor a = Tensor::Zeros(DType::kFloat32, {3, 3}), b = Tensor::Zeros(DType::kFloat32, {3, 3});
  for (const std::string eq : {"ii,ij->j", "...ij,jk->...ik", "ij,jk->k"}) {
    auto r = RunOp("einsum", {{"values", {a, b}}, {"equation", {Str(eq)}}});
    EXPECT_EQ(Code(r), absl::StatusCode::kUnimplemented) << eq;
    EXPECT_NE(r.status().message().find(eq), std::string::npos) << r.status();
  }
  auto three = RunOp("einsum", {{"values", {a, b, a}}, {"equation", {Str("ij,jk,kl->il")}}});
  EXPECT_EQ(Code(three), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Code(RunOp("einsum", {{"values", {a, b}}, {"equation", {Str("ij,jk->iz")}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("einsum", {{"values", {a, b}}, {"equation", {Str("ijk,jk->i")}}})),
            absl::StatusCode::kInvalidArgument);  // rank mismatch
  EXPECT_EQ(Code(RunOp("einsum", {{"values", {a, Tensor::Zeros(DType::kFloat32, {4, 3})}},
                                  {"equation", {Str("ij,jk->ik")}}})),
            absl::StatusCode::kInvalidArgument);  // contracted sizes differ
}

// ---- gru / rnn --------------------------------------------------------------

double Sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

// One step of W x + U h (+ bias) for gate g of H rows.
double Affine(const Tensor& w, const Tensor& u, const Tensor* bias, int64_t row, const Tensor& x, int64_t t,
              int64_t b, const std::vector<double>& h, bool scale_u, double u_scale) {
  const int64_t in = w.dim(1), hidden = u.dim(1);
  double wx = 0, uh = 0;
  for (int64_t i = 0; i < in; ++i) wx += w.floats()[row * in + i] * x.floats()[(t * x.dim(1) + b) * in + i];
  for (int64_t j = 0; j < hidden; ++j) uh += u.floats()[row * hidden + j] * h[b * hidden + j];
  return wx + (bias ? bias->floats()[row] : 0) + (scale_u ? u_scale * uh : uh);
}

TEST(GruOp, MatchesHandWrittenLoop) {
  std::mt19937 rng(9);
  for (bool reverse : {false, true}) {
    for (bool output_sequence : {false, true}) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << reverse << output_sequence << with_bias);
        const int64_t seq = 4, batch = 2, in = 3, hidden = 5;
        Tensor x = Random(rng, {seq, batch, in}), h0 = Random(rng, {batch, hidden});
        Tensor wih = Random(rng, {3 * hidden, in}), whh = Random(rng, {3 * hidden, hidden}), bias = Random(rng, {3 * hidden});
        std::vector<double> h(h0.floats().begin(), h0.floats().end());
        std::vector<double> seq_out(seq * batch * hidden);
        for (int64_t s = 0; s < seq; ++s) {
          const int64_t t = reverse ? seq - 1 - s : s;
          std::vector<double> next(h.size());
          for (int64_t b = 0; b < batch; ++b)
            for (int64_t k = 0; k < hidden; ++k) {
              const Tensor* bp = with_bias ? &bias : nullptr;
              const double r = Sigmoid(Affine(wih, whh, bp, k, x, t, b, h, false, 1));
              const double z = Sigmoid(Affine(wih, whh, bp, 2 * hidden + k, x, t, b, h, false, 1));
              const double o = std::tanh(Affine(wih, whh, bp, hidden + k, x, t, b, h, true, r));
              next[b * hidden + k] = (1 - z) * o + z * h[b * hidden + k];
            }
          h = next;
          std::copy(h.begin(), h.end(), seq_out.begin() + t * batch * hidden);
        }
        Args args = {{"x", {x}}, {"initial_h", {h0}}, {"weight_ih", {wih}}, {"weight_hh", {whh}},
                     {"direction", {Str(reverse ? "reverse" : "forward")}}, {"output_sequence", {BoolScalar(output_sequence)}}};
        if (with_bias) args["bias"] = {bias};
        auto got = RunOp("gru", args, 17, 2);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_EQ(got->size(), 2u);
        if (output_sequence) {
          ExpectEqualValues((*got)[0], {seq, batch, hidden}, seq_out, 1e-4);
        } else {
          ExpectEqualValues((*got)[0], {1, batch, hidden}, h, 1e-4);
        }
        ExpectEqualValues((*got)[1], {batch, hidden}, h, 1e-4);
      }
    }
  }
}

TEST(RnnOp, MatchesHandWrittenLoop) {
  std::mt19937 rng(10);
  for (const std::string act : {"tanh", "relu", "sigmoid"}) {
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(act + (reverse ? " reverse" : " forward"));
      const int64_t seq = 3, batch = 2, in = 4, hidden = 3;
      Tensor x = Random(rng, {seq, batch, in}), h0 = Random(rng, {batch, hidden});
      Tensor wih = Random(rng, {hidden, in}), whh = Random(rng, {hidden, hidden}), bias = Random(rng, {hidden});
      std::vector<double> h(h0.floats().begin(), h0.floats().end()), seq_out(seq * batch * hidden);
      for (int64_t s = 0; s < seq; ++s) {
        const int64_t t = reverse ? seq - 1 - s : s;
        std::vector<double> next(h.size());
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t k = 0; k < hidden; ++k) {
            const double v = Affine(wih, whh, &bias, k, x, t, b, h, false, 1);
            next[b * hidden + k] = act == "tanh" ? std::tanh(v) : act == "relu" ? std::max(v, 0.0) : Sigmoid(v);
          }
        h = next;
        std::copy(h.begin(), h.end(), seq_out.begin() + t * batch * hidden);
      }
      auto got = RunOp("rnn", {{"x", {x}}, {"initial_h", {h0}}, {"weight_ih", {wih}}, {"weight_hh", {whh}},
                               {"bias", {bias}}, {"activation", {Str(act)}}, {"output_sequence", {BoolScalar(true)}},
                               {"direction", {Str(reverse ? "reverse" : "forward")}}},
                       17, 2);
      ASSERT_TRUE(got.ok()) << got.status();
      ExpectEqualValues((*got)[0], {seq, batch, hidden}, seq_out, 1e-4);
      ExpectEqualValues((*got)[1], {batch, hidden}, h, 1e-4);
    }
  }
}

TEST(RecurrentOps, RefuseWhatTheyDoNotImplementOrMalformedWeights) {
  Tensor x = Tensor::Zeros(DType::kFloat32, {2, 1, 3}), h0 = Tensor::Zeros(DType::kFloat32, {1, 2});
  Args gru = {{"x", {x}}, {"initial_h", {h0}}, {"weight_ih", {Tensor::Zeros(DType::kFloat32, {6, 3})}},
              {"weight_hh", {Tensor::Zeros(DType::kFloat32, {6, 2})}}};
  EXPECT_TRUE(RunOp("gru", gru, 18, 2).ok());
  Args reset_after = gru;
  reset_after["reset_after"] = {BoolScalar(true)};
  EXPECT_TRUE(RunOp("gru", reset_after, 18, 2).ok());
  reset_after["input_bias"] = {Tensor::Zeros(DType::kFloat32, {5})};
  EXPECT_EQ(Code(RunOp("gru", reset_after, 18, 2)), absl::StatusCode::kInvalidArgument);
  Args bidirectional = gru;
  bidirectional["direction"] = {Str("bidirectional")};
  EXPECT_EQ(Code(RunOp("gru", bidirectional, 18, 2)), absl::StatusCode::kInvalidArgument);
  Args bad = gru;
  bad["weight_ih"] = {Tensor::Zeros(DType::kFloat32, {4, 3})};
  EXPECT_EQ(Code(RunOp("gru", bad, 18, 2)), absl::StatusCode::kInvalidArgument);
  Args rnn = gru;
  EXPECT_EQ(Code(RunOp("rnn", rnn, 18, 2)), absl::StatusCode::kInvalidArgument);  // 3H rows for an rnn
}

// ---- quantize / dequantize --------------------------------------------------

TEST(QuantOps, QuantizeMatchesSlowReference) {
  std::mt19937 rng(11);
  for (const std::string dtype : {"int8", "uint8"}) {
    for (bool per_axis : {false, true}) {
      SCOPED_TRACE(dtype + (per_axis ? " per-axis" : " per-tensor"));
      const Shape xs = {2, 3, 4};
      Tensor x = Random(rng, xs, -40, 40);
      const double lo = dtype == "int8" ? -128 : 0, hi = dtype == "int8" ? 127 : 255;
      Tensor scale = per_axis ? Tensor::Float({3}, {0.1f, 0.25f, 0.5f}) : Tensor::FloatScalar(0.2f);
      Tensor zp = per_axis ? Tensor::Int({3}, {0, 3, -2}) : Tensor::IntScalar(dtype == "int8" ? -5 : 128);
      std::vector<double> want(x.size());
      for (int64_t i = 0; i < x.size(); ++i) {
        const int64_t c = per_axis ? Unflat(xs, i)[1] : 0;
        const double q = std::nearbyint(x.floats()[i] / scale.floats()[c]) + zp.ints()[c];
        want[i] = std::min(hi, std::max(lo, q));
      }
      Args args = {{"input", {x}}, {"scale", {scale}}, {"zero_point", {zp}}, {"output_dtype", {Str(dtype)}}};
      if (per_axis) args["axis"] = {Tensor::IntScalar(-2)};
      auto got = RunOp("quantize", args, 17);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ((*got)[0].dtype(), DType::kInt32);
      ExpectEqualValues((*got)[0], xs, want);
      // dequantize inverts it up to the rounding (where not clipped).
      args.erase("output_dtype");
      args["input"] = {(*got)[0]};
      auto back = RunOp("dequantize", args, 17);
      ASSERT_TRUE(back.ok()) << back.status();
      for (int64_t i = 0; i < x.size(); ++i) {
        const int64_t c = per_axis ? Unflat(xs, i)[1] : 0;
        ASSERT_NEAR((*back)[0].floats()[i], scale.floats()[c] * (want[i] - zp.ints()[c]), 1e-5);
      }
    }
  }
}

TEST(QuantOps, RoundsHalfToEvenAndChecksParameters) {
  Tensor x = Tensor::Float({4}, {0.5f, 1.5f, 2.5f, -0.5f});
  auto q = RunOp("quantize", {{"input", {x}}, {"scale", {Tensor::FloatScalar(1)}}, {"output_dtype", {Str("int8")}}});
  ASSERT_TRUE(q.ok()) << q.status();
  ExpectEqualValues((*q)[0], {4}, {0, 2, 2, -0.0});
  auto dq = RunOp("dequantize", {{"input", {Tensor::Int({2}, {3, -4})}}, {"scale", {Tensor::FloatScalar(0.5f)}}});
  ASSERT_TRUE(dq.ok()) << dq.status();
  ExpectEqualValues((*dq)[0], {2}, {1.5, -2});
  EXPECT_EQ(Code(RunOp("quantize", {{"input", {x}}, {"scale", {Tensor::FloatScalar(0)}}, {"output_dtype", {Str("int8")}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("quantize", {{"input", {x}}, {"scale", {Tensor::FloatScalar(1)}}, {"output_dtype", {Str("int4")}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("quantize", {{"input", {x}}, {"scale", {Tensor::Float({3}, {1, 1, 1})}},
                                    {"axis", {Tensor::IntScalar(0)}}, {"output_dtype", {Str("int8")}}})),
            absl::StatusCode::kInvalidArgument);  // 3 scales for a dim of 4
  EXPECT_EQ(Code(RunOp("dequantize", {{"input", {Tensor::Int({2}, {1, 2})}}, {"scale", {Tensor::Float({2}, {1, 1})}}})),
            absl::StatusCode::kInvalidArgument);  // a vector scale needs an axis
}

// ---- band_part --------------------------------------------------------------

TEST(BandPartOp, MatchesSlowReference) {
  std::mt19937 rng(12);
  for (auto [lower, upper] : std::vector<std::pair<int, int>>{{-1, 0}, {0, -1}, {0, 0}, {1, 2}, {-1, -1}, {2, 0}}) {
    SCOPED_TRACE(::testing::Message() << lower << "," << upper);
    const Shape xs = {2, 4, 5};
    Tensor x = Random(rng, xs);
    std::vector<double> want(x.size());
    for (int64_t i = 0; i < x.size(); ++i) {
      std::vector<int64_t> idx = Unflat(xs, i);
      const int64_t m = idx[1], n = idx[2];
      const bool keep = (lower < 0 || m - n <= lower) && (upper < 0 || n - m <= upper);
      want[i] = keep ? x.floats()[i] : 0;
    }
    Args args = {{"x", {x}}};
    if (lower != -1) args["lower"] = {Tensor::IntScalar(lower)};  // -1 is the default
    if (upper != -1) args["upper"] = {Tensor::IntScalar(upper)};
    auto got = RunOp("band_part", args);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectEqualValues((*got)[0], xs, want);
  }
  EXPECT_EQ(Code(RunOp("band_part", {{"x", {Tensor::Float({2}, {1, 2})}}})), absl::StatusCode::kInvalidArgument);
}

// ---- fill_like / reshape_like ----------------------------------------------

TEST(LikeOps, FillLikeTakesTheReferenceShapeAndTheValueType) {
  Tensor ref = Tensor::Zeros(DType::kInt32, {2, 0, 3});
  auto empty = RunOp("fill_like", {{"ref_tensor", {ref}}});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ((*empty)[0].shape(), Shape({2, 0, 3}));
  auto zeros = RunOp("fill_like", {{"ref_tensor", {Tensor::Zeros(DType::kInt32, {2, 2})}}});
  ASSERT_TRUE(zeros.ok()) << zeros.status();
  EXPECT_EQ((*zeros)[0].dtype(), DType::kFloat32);  // the default value is 0.0
  ExpectEqualValues((*zeros)[0], {2, 2}, {0, 0, 0, 0});
  auto sevens = RunOp("fill_like", {{"ref_tensor", {Tensor::Zeros(DType::kFloat32, {3})}}, {"value", {Tensor::IntScalar(7)}}});
  ASSERT_TRUE(sevens.ok()) << sevens.status();
  EXPECT_EQ((*sevens)[0].dtype(), DType::kInt32);
  ExpectEqualValues((*sevens)[0], {3}, {7, 7, 7});
  auto halves = RunOp("fill_like", {{"ref_tensor", {Tensor::Zeros(DType::kFloat32, {1, 2})}}, {"value", {Tensor::FloatScalar(0.5f)}}});
  ASSERT_TRUE(halves.ok()) << halves.status();
  ExpectEqualValues((*halves)[0], {1, 2}, {0.5, 0.5});
}

TEST(LikeOps, ReshapeLikeConcatenatesReferenceDimRanges) {
  // coremltools' example: refs [2, 3, 4] and [1, 5, 6], begins [0, 1], ends [2, 0],
  // end_masks [false, true] -> (2, 3, 5, 6).
  std::mt19937 rng(13);
  Tensor x = Random(rng, {6, 30});
  Args args = {{"x", {x}},
               {"ref_tensors", {Tensor::Zeros(DType::kFloat32, {2, 3, 4}), Tensor::Zeros(DType::kInt32, {1, 5, 6})}},
               {"begins", {Tensor::IntScalar(0), Tensor::IntScalar(1)}},
               {"ends", {Tensor::IntScalar(2), Tensor::IntScalar(0)}},
               {"end_masks", {BoolScalar(false), BoolScalar(true)}}};
  auto got = RunOp("reshape_like", args);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectEqualValues((*got)[0], {2, 3, 5, 6}, Values(x));
  Args mismatch = args;
  mismatch["end_masks"] = {BoolScalar(false), BoolScalar(false)};  // [1:0] is not a range
  EXPECT_EQ(Code(RunOp("reshape_like", mismatch)), absl::StatusCode::kInvalidArgument);
  Args wrong_count = args;
  wrong_count["x"] = {Random(rng, {5})};
  EXPECT_EQ(Code(RunOp("reshape_like", wrong_count)), absl::StatusCode::kInvalidArgument);
}

// ---- reverse / reverse_sequence ---------------------------------------------

TEST(ReverseOps, ReverseMatchesSlowReference) {
  std::mt19937 rng(14);
  const Shape xs = {2, 3, 4};
  Tensor x = Random(rng, xs);
  for (const std::vector<int32_t>& axes : std::vector<std::vector<int32_t>>{{}, {0}, {-1}, {0, 2}, {1, -2}}) {
    const bool all = axes.empty();
    SCOPED_TRACE(all ? "all" : ::testing::PrintToString(axes));
    std::vector<bool> flip(3, all);
    for (int32_t a : axes) flip[a < 0 ? a + 3 : a] = true;
    std::vector<double> want(x.size());
    for (int64_t i = 0; i < x.size(); ++i) {
      std::vector<int64_t> idx = Unflat(xs, i);
      for (int d = 0; d < 3; ++d) idx[d] = flip[d] ? xs[d] - 1 - idx[d] : idx[d];
      want[i] = x.floats()[Flat(xs, idx)];
    }
    Args args = {{"x", {x}}};
    if (!all) args["axes"] = {Ints(axes)};
    auto got = RunOp("reverse", args);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectEqualValues((*got)[0], xs, want);
  }
  EXPECT_EQ(Code(RunOp("reverse", {{"x", {x}}, {"axes", {Ints({3})}}})), absl::StatusCode::kInvalidArgument);
}

TEST(ReverseOps, ReverseSequenceReversesEachBatchPrefix) {
  std::mt19937 rng(15);
  for (auto [seq_axis, batch_axis] : std::vector<std::pair<int, int>>{{0, 1}, {1, 0}, {-1, 0}, {2, 1}}) {
    SCOPED_TRACE(::testing::Message() << seq_axis << "," << batch_axis);
    const Shape xs = {3, 4, 5};
    const int s = seq_axis < 0 ? seq_axis + 3 : seq_axis;
    Tensor x = RandomInts(rng, xs, -50, 50);
    Tensor lengths = RandomInts(rng, {xs[batch_axis]}, 0, xs[s]);
    std::vector<double> want(x.size());
    for (int64_t i = 0; i < x.size(); ++i) {
      std::vector<int64_t> idx = Unflat(xs, i);
      const int64_t len = lengths.ints()[idx[batch_axis]];
      if (idx[s] < len) idx[s] = len - 1 - idx[s];
      want[i] = x.ints()[Flat(xs, idx)];
    }
    auto got = RunOp("reverse_sequence", {{"x", {x}}, {"lengths", {lengths}}, {"seq_axis", {Tensor::IntScalar(seq_axis)}},
                                          {"batch_axis", {Tensor::IntScalar(batch_axis)}}});
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectEqualValues((*got)[0], xs, want);
  }
  Tensor x = Tensor::Float({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(Code(RunOp("reverse_sequence", {{"x", {x}}, {"lengths", {Ints({3, 4})}}, {"seq_axis", {Tensor::IntScalar(1)}}})),
            absl::StatusCode::kInvalidArgument);  // longer than the sequence
  EXPECT_EQ(Code(RunOp("reverse_sequence", {{"x", {x}}, {"lengths", {Ints({1, 1})}}})),
            absl::StatusCode::kInvalidArgument);  // seq_axis == batch_axis
}

// Shapes from parameters are checked against the element limit.
TEST(MoreOps, ShapesFromParametersAreCheckedBeforeAllocating) {
  auto huge = RunOp("one_hot", {{"indices", {Tensor::Zeros(DType::kInt32, {1 << 16})}},
                                {"one_hot_vector_size", {Tensor::IntScalar(1 << 20)}}});
  EXPECT_EQ(Code(huge), absl::StatusCode::kResourceExhausted);
  // Broadcasting two batch letters multiplies up to the same limit.
  auto outer = RunOp("einsum", {{"values", {Tensor::Zeros(DType::kFloat32, {1 << 16, 1}), Tensor::Zeros(DType::kFloat32, {1, 1 << 16})}},
                                {"equation", {Str("ab,ab->ab")}}});
  EXPECT_EQ(Code(outer), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace coremlz::execute::testing
