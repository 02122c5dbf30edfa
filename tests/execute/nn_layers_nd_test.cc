// The NeuralNetwork layers added for the ND layer set - split / splitND,
// the remaining broadcastable arithmetic, unary, gelu, comparison and
// logical layers, batchedMatmul, layerNormalization, the reduce* family,
// argMax / argMin, topK, tile, stack, gather(AlongAxis),
// whereBroadcastable, reverse, the triangular masks, getShape, fill*,
// broadcastTo* and rangeStatic - against hand-computed values or slow
// references written from NeuralNetwork.proto's definitions; and a network
// whose split feeds two layers.
#include <algorithm>
#include <cmath>
#include <random>

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
using testing::RunLayerOutputs;
using testing::Wire;

Tensor Iota(Shape shape, float start = 0) {
  std::vector<float> v(NumElements(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
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

absl::StatusCode Code(const absl::StatusOr<Tensor>& t) { return t.status().code(); }

// Row-major strides of a shape.
std::vector<int64_t> Strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

// The multi-index of element i of `s`.
std::vector<int64_t> Unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) idx[d] = i % s[d], i /= s[d];
  return idx;
}

// ---- split ----

TEST(NnSplit, EqualPartsAlongChannels) {
  Tensor x = Iota({2, 6, 1, 2});  // batch 2, C 6, H 1, W 2
  auto got = RunLayerOutputs("split", Wire().Varint(1, 3), {x}, {}, 3);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  for (int k = 0; k < 3; ++k) {
    SCOPED_TRACE(k);
    // Part k holds channels 2k, 2k + 1 of each batch item.
    std::vector<double> want;
    for (int b = 0; b < 2; ++b)
      for (int c = 2 * k; c < 2 * k + 2; ++c)
        for (int w = 0; w < 2; ++w) want.push_back(b * 12 + c * 2 + w);
    Expect(got->at(k), {2, 2, 1, 2}, want);
  }
  EXPECT_EQ(RunLayerOutputs("split", Wire().Varint(1, 4), {x}, {}, 4).status().code(),
            absl::StatusCode::kInvalidArgument);  // 6 channels in 4 parts
  EXPECT_EQ(RunLayerOutputs("split", Wire().Varint(1, 3), {x}, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);  // nOutputs != outputs
}

TEST(NnSplit, SplitNDBySizesOrCountOnAnyAxis) {
  std::mt19937 rng(21);
  Tensor x = Random(rng, {5, 3, 4});
  // The proto's example: axis -3, sizes [3, 2].
  auto got = RunLayerOutputs("splitND", Wire().Varint(1, static_cast<uint64_t>(-3)).Ints(3, {3, 2}), {x}, {}, 2);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->at(0).shape(), (Shape{3, 3, 4}));
  ASSERT_EQ(got->at(1).shape(), (Shape{2, 3, 4}));
  for (int64_t i = 0; i < x.size(); ++i) {
    const Tensor& part = got->at(i < 36 ? 0 : 1);
    EXPECT_EQ(part.floats()[i < 36 ? i : i - 36], x.floats()[i]);
  }
  // numSplits 2 along the last axis: element (a, b, c) lands in part c / 2.
  got = RunLayerOutputs("splitND", Wire().Varint(1, 2).Varint(2, 2), {x}, {}, 2);
  ASSERT_TRUE(got.ok()) << got.status();
  for (int64_t i = 0; i < x.size(); ++i) {
    const int64_t c = i % 4, row = i / 4;
    EXPECT_EQ(got->at(c / 2).floats()[row * 2 + c % 2], x.floats()[i]);
  }
  EXPECT_EQ(RunLayerOutputs("splitND", Wire().Varint(1, 0).Ints(3, {3, 3}), {x}, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);  // sizes sum to 6, not 5
  EXPECT_EQ(RunLayerOutputs("splitND", Wire().Varint(1, 0).Varint(2, 2), {x}, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);  // 5 in 2 equal parts
  EXPECT_EQ(RunLayerOutputs("splitND", Wire().Varint(1, 3).Varint(2, 2), {x}, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);  // axis out of range
}

namespace Spec = CoreML::Specification;

TEST(NnSplit, ANetworkUsesEveryOutputOfASplit) {
  Spec::Model m;
  m.set_specificationversion(4);
  auto* in = m.mutable_description()->add_input();
  in->set_name("x");
  for (int64_t d : {4, 2}) in->mutable_type()->mutable_multiarraytype()->add_shape(d);
  auto* out = m.mutable_description()->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_multiarraytype();
  auto* nn = m.mutable_neuralnetwork();
  nn->set_arrayinputshapemapping(1);
  auto* split = testing::AddLayer(nn, "split", {"x"}, "top", 975, Wire().Varint(1, 0).Varint(2, 2));
  split->add_output("bottom");
  testing::AddLayer(nn, "sub", {"top", "bottom"}, "y", 905, Wire());
  auto ex = NnExecutor::Load(m);
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto y = (*ex)->Run({{"x", Iota({4, 2})}});
  ASSERT_TRUE(y.ok()) << y.status();
  Expect(y->at("y"), {2, 2}, {-4, -4, -4, -4});
  // A layer of one output given two is refused.
  nn->mutable_layers(1)->add_output("extra");
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- classifiers ----

// A NeuralNetworkClassifier over x [3]: identity to "logits", softmax to
// "probs"; outputs "label" and the probabilities dictionary "probs".
Spec::Model Classifier(bool string_labels) {
  Spec::Model m;
  m.set_specificationversion(1);
  auto* in = m.mutable_description()->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_multiarraytype()->add_shape(3);
  auto* label = m.mutable_description()->add_output();
  label->set_name("label");
  auto* probs = m.mutable_description()->add_output();
  probs->set_name("probs");
  if (string_labels) {
    label->mutable_type()->mutable_stringtype();
    probs->mutable_type()->mutable_dictionarytype()->mutable_stringkeytype();
  } else {
    label->mutable_type()->mutable_int64type();
    probs->mutable_type()->mutable_dictionarytype()->mutable_int64keytype();
  }
  m.mutable_description()->set_predictedfeaturename("label");
  m.mutable_description()->set_predictedprobabilitiesname("probs");
  auto* nn = m.mutable_neuralnetworkclassifier();
  if (string_labels) {
    for (const char* l : {"cat", "dog", "\xc3\xa9lan"}) nn->mutable_stringclasslabels()->add_vector(l);
  } else {
    for (int64_t l : {7, 42, -1}) nn->mutable_int64classlabels()->add_vector(l);
  }
  testing::AddLayer(nn, "identity", {"x"}, "logits", 130, Wire().Message(5, Wire().Float(1, 1)));
  testing::AddLayer(nn, "softmax", {"logits"}, "probs", 175, Wire());
  return m;
}

TEST(NnClassifier, LabelAndProbabilitiesAsCoreMLGivesThem) {
  auto ex = NnExecutor::Load(Classifier(true));
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto out = (*ex)->Run({{"x", Tensor::Float({3}, {0, std::log(3.f), 0})}});
  ASSERT_TRUE(out.ok()) << out.status();
  const Tensor& label = out->at("label");
  ASSERT_EQ(label.dtype(), DType::kString);
  EXPECT_EQ(label.shape(), Shape{});
  EXPECT_EQ(label.strings().at(0), "dog");
  Expect(out->at("probs"), {3}, {0.2, 0.6, 0.2});
  // Equal scores: the first label.
  out = (*ex)->Run({{"x", Tensor::Float({3}, {1, 0, 1})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("label").strings().at(0), "cat");

  // int64 labels; labelProbabilityLayerName picks the scores blob.
  Spec::Model m = Classifier(false);
  m.mutable_neuralnetworkclassifier()->set_labelprobabilitylayername("logits");
  ex = NnExecutor::Load(m);
  ASSERT_TRUE(ex.ok()) << ex.status();
  out = (*ex)->Run({{"x", Tensor::Float({3}, {-1, -2, 5})}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->at("label").dtype(), DType::kInt32);
  EXPECT_EQ(out->at("label").ints().at(0), -1);
  Expect(out->at("probs"), {3}, {-1, -2, 5});
}

TEST(NnClassifier, MalformedClassifiersAreRefused) {
  Spec::Model m = Classifier(true);
  m.mutable_neuralnetworkclassifier()->mutable_stringclasslabels()->add_vector("extra");  // 4 labels, 3 scores
  auto ex = NnExecutor::Load(m);
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_EQ((*ex)->Run({{"x", Tensor::Float({3}, {0, 0, 0})}}).status().code(), absl::StatusCode::kInvalidArgument);
  m = Classifier(true);
  m.mutable_neuralnetworkclassifier()->clear_stringclasslabels();
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kInvalidArgument);  // no labels
  m = Classifier(true);
  m.mutable_neuralnetworkclassifier()->set_labelprobabilitylayername("nowhere");
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kInvalidArgument);
  m = Classifier(true);
  m.mutable_description()->mutable_output(0)->mutable_type()->mutable_int64type();  // labels are strings
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kInvalidArgument);
  m = Classifier(false);
  m.mutable_neuralnetworkclassifier()->mutable_int64classlabels()->add_vector(int64_t{1} << 40);
  EXPECT_EQ(NnExecutor::Load(m).status().code(), absl::StatusCode::kUnimplemented);
}

// ---- elementwise ----

TEST(NnBroadcastable, ArithmeticWithPythonRounding) {
  Tensor a = Tensor::Float({2, 2}, {-3, 7, 2.5f, -7});
  Tensor b = Tensor::Float({2}, {2, -3});
  Expect(RunLayer("subtractBroadcastable", Wire(), {a, b}), {2, 2}, {-5, 10, 0.5, -4});
  Expect(RunLayer("divideBroadcastable", Wire(), {a, b}), {2, 2}, {-1.5, -7.0 / 3, 1.25, 7.0 / 3});
  Expect(RunLayer("powBroadcastable", Wire(), {Tensor::Float({2}, {2, 9}), Tensor::Float({2}, {3, 0.5f})}), {2},
         {8, 3});
  // floor(-3 / 2) = -2, floor(7 / -3) = -3; mod takes the divisor's sign.
  Expect(RunLayer("floorDivBroadcastable", Wire(), {a, b}), {2, 2}, {-2, -3, 1, 2});
  Expect(RunLayer("modBroadcastable", Wire(), {a, b}), {2, 2}, {1, -2, 0.5, -1});
  EXPECT_EQ(Code(RunLayer("subtractBroadcastable", Wire(), {a, Tensor::Float({3}, {1, 2, 3})})),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnUnaryND, EveryFunction) {
  std::mt19937 rng(22);
  Tensor x = Random(rng, {3, 4});  // in [-1, 1): inside every domain but acosh's
  struct Case {
    const char* type;
    double (*f)(double);
  };
  const Case cases[] = {
      {"ceil", [](double v) { return std::ceil(v); }},   {"floor", [](double v) { return std::floor(v); }},
      {"sign", [](double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0; }},
      {"exp2", [](double v) { return std::exp2(v); }},   {"sin", [](double v) { return std::sin(v); }},
      {"cos", [](double v) { return std::cos(v); }},     {"tan", [](double v) { return std::tan(v); }},
      {"asin", [](double v) { return std::asin(v); }},   {"acos", [](double v) { return std::acos(v); }},
      {"atan", [](double v) { return std::atan(v); }},   {"sinh", [](double v) { return std::sinh(v); }},
      {"cosh", [](double v) { return std::cosh(v); }},   {"tanh", [](double v) { return std::tanh(v); }},
      {"asinh", [](double v) { return std::asinh(v); }}, {"atanh", [](double v) { return std::atanh(v); }},
      {"erf", [](double v) { return std::erf(v); }},
      {"logicalNot", [](double v) { return v == 0 ? 1.0 : 0.0; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    std::vector<double> want;
    for (float v : x.floats()) want.push_back(c.f(v));
    Expect(RunLayer(c.type, Wire(), {x}), x.shape(), want);
  }
  Expect(RunLayer("acosh", Wire(), {Tensor::Float({2}, {1, 2})}), {2}, {0, std::acosh(2.0)});
  // round: halves to even.
  Expect(RunLayer("round", Wire(), {Tensor::Float({5}, {0.5f, 1.5f, -2.5f, 2.4f, -0.6f})}), {5}, {0, 2, -2, 2, -1});
  Expect(RunLayer("sign", Wire(), {Tensor::Float({3}, {0, -0.f, 3})}), {3}, {0, 0, 1});
}

TEST(NnGelu, ExactAndBothApproximations) {
  Tensor x = Tensor::Float({3}, {-1, 0, 1});
  auto exact = [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); };
  auto tanh = [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); };
  auto sigmoid = [](double v) { return v / (1 + std::exp(-1.702 * v)); };
  Expect(RunLayer("gelu", Wire(), {x}), {3}, {exact(-1), 0, exact(1)});
  EXPECT_NEAR(exact(1), 0.8413447, 1e-6);
  Expect(RunLayer("gelu", Wire().Varint(1, 1), {x}), {3}, {tanh(-1), 0, tanh(1)});
  Expect(RunLayer("gelu", Wire().Varint(1, 2), {x}), {3}, {sigmoid(-1), 0, sigmoid(1)});
  EXPECT_EQ(Code(RunLayer("gelu", Wire().Varint(1, 3), {x})), absl::StatusCode::kInvalidArgument);
}

TEST(NnCompare, TwoInputsBroadcastOrOneAgainstAlpha) {
  Tensor a = Tensor::Float({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::Float({3}, {2, 2, 6});
  Expect(RunLayer("equal", Wire(), {a, b}), {2, 3}, {0, 1, 0, 0, 0, 1});
  Expect(RunLayer("notEqual", Wire(), {a, b}), {2, 3}, {1, 0, 1, 1, 1, 0});
  Expect(RunLayer("lessThan", Wire(), {a, b}), {2, 3}, {1, 0, 1, 0, 0, 0});
  Expect(RunLayer("lessEqual", Wire(), {a, b}), {2, 3}, {1, 1, 1, 0, 0, 1});
  Expect(RunLayer("greaterThan", Wire(), {a, b}), {2, 3}, {0, 0, 0, 1, 1, 0});
  Expect(RunLayer("greaterEqual", Wire(), {a, b}), {2, 3}, {0, 1, 0, 1, 1, 1});
  // alpha: field 1 for equal, 2 for the orderings.
  Expect(RunLayer("equal", Wire().Float(1, 3), {a}), {2, 3}, {0, 0, 1, 0, 0, 0});
  Expect(RunLayer("greaterThan", Wire().Float(2, 4), {a}), {2, 3}, {0, 0, 0, 0, 1, 1});
  Expect(RunLayer("lessEqual", Wire().Float(2, 2), {a}), {2, 3}, {1, 1, 0, 0, 0, 0});
  Tensor p = Tensor::Float({4}, {0, 0, 1, -2}), q = Tensor::Float({4}, {0, 3, 0, 0.5f});
  Expect(RunLayer("logicalAnd", Wire(), {p, q}), {4}, {0, 0, 0, 1});
  Expect(RunLayer("logicalOr", Wire(), {p, q}), {4}, {0, 1, 1, 1});
  Expect(RunLayer("logicalXor", Wire(), {p, q}), {4}, {0, 1, 1, 0});
}

// ---- ND math ----

TEST(NnBatchedMatmul, TwoInputsBroadcastAndTranspose) {
  std::mt19937 rng(23);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << ta << tb);
      // a: [2, 1, M=3, K=4] (or its last two swapped), b: [3, K, N=2].
      Tensor a = Random(rng, ta ? Shape{2, 1, 4, 3} : Shape{2, 1, 3, 4});
      Tensor b = Random(rng, tb ? Shape{3, 2, 4} : Shape{3, 4, 2});
      std::vector<double> want;
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
          for (int m = 0; m < 3; ++m)
            for (int n = 0; n < 2; ++n) {
              double s = 0;
              for (int k = 0; k < 4; ++k) {
                const double av = a.floats()[i * 12 + (ta ? k * 3 + m : m * 4 + k)];
                const double bv = b.floats()[j * 8 + (tb ? n * 4 + k : k * 2 + n)];
                s += av * bv;
              }
              want.push_back(s);
            }
      Expect(RunLayer("batchedMatmul", Wire().Varint(1, ta).Varint(2, tb), {a, b}), {2, 3, 3, 2}, want);
    }
  // 1-D operands: [K] @ [K] gives [1, 1].
  Expect(RunLayer("batchedMatmul", Wire(), {Tensor::Float({2}, {1, 2}), Tensor::Float({2}, {3, 4})}), {1, 1}, {11});
  EXPECT_EQ(Code(RunLayer("batchedMatmul", Wire(), {Iota({2, 3}), Iota({2, 3})})), absl::StatusCode::kInvalidArgument);
}

TEST(NnBatchedMatmul, OneInputTimesTheWeights) {
  Tensor a = Iota({2, 1, 3});
  // W [X1 = 3, X2 = 2] row-major, bias [2].
  const std::vector<float> w = {1, 0, 0, 1, 1, 1};
  Wire p;
  p.Varint(5, 3).Varint(6, 2).Varint(7, 1);
  Expect(RunLayer("batchedMatmul", p, {a}, {{"weights", w}, {"bias", {10, 20}}}), {2, 1, 2},
         {0 + 2 + 10, 1 + 2 + 20, 3 + 5 + 10, 4 + 5 + 20});
  EXPECT_EQ(Code(RunLayer("batchedMatmul", p, {Iota({2, 4})}, {{"weights", w}, {"bias", {10, 20}}})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("batchedMatmul", Wire().Varint(5, 2).Varint(6, 2), {a}, {{"weights", w}})),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnLayerNormalization, OverTheTrailingAxes) {
  std::mt19937 rng(24);
  Tensor x = Random(rng, {2, 3, 4});
  std::vector<float> gamma(12), beta(12);
  for (int i = 0; i < 12; ++i) gamma[i] = 0.5f + i * 0.1f, beta[i] = i * -0.2f;
  std::vector<double> want;
  for (int g = 0; g < 2; ++g) {
    double mean = 0, var = 0;
    for (int i = 0; i < 12; ++i) mean += x.floats()[g * 12 + i] / 12.0;
    for (int i = 0; i < 12; ++i) var += std::pow(x.floats()[g * 12 + i] - mean, 2) / 12.0;
    for (int i = 0; i < 12; ++i) want.push_back(gamma[i] * (x.floats()[g * 12 + i] - mean) / std::sqrt(var + 1e-3) + beta[i]);
  }
  Wire p;
  p.Ints(1, {3, 4}).Float(2, 1e-3f);
  Expect(RunLayer("layerNormalization", p, {x}, {{"gamma", gamma}, {"beta", beta}}), x.shape(), want, 1e-4);
  EXPECT_EQ(Code(RunLayer("layerNormalization", Wire().Ints(1, {4, 3}), {x})), absl::StatusCode::kInvalidArgument);
}

TEST(NnReduceND, EveryModeAlongItsAxes) {
  std::mt19937 rng(25);
  Tensor x = Random(rng, {2, 3, 4});
  for (float& v : x.mutable_floats()) v = std::fabs(v) + 0.1f;  // logSum needs positive sums
  const char* types[] = {"reduceL1",   "reduceL2",     "reduceMax",       "reduceMin",      "reduceSum",
                         "reduceProd", "reduceMean",   "reduceLogSum",    "reduceSumSquare", "reduceLogSumExp"};
  struct Axes {
    std::vector<int64_t> axes;
    bool all;
  };
  const Axes axes_cases[] = {{{1}, false}, {{-1, 0}, false}, {{}, true}};
  for (const char* type : types)
    for (const Axes& ax : axes_cases)
      for (bool keep : {true, false}) {
        SCOPED_TRACE(::testing::Message() << type << " keep " << keep << " all " << ax.all);
        std::vector<bool> reduced(3, ax.all);
        for (int64_t a : ax.axes) reduced[a < 0 ? a + 3 : a] = true;
        Shape kept = x.shape(), squeezed;
        for (int d = 0; d < 3; ++d) {
          if (reduced[d]) kept[d] = 1;
          else squeezed.push_back(x.dim(d));
        }
        if (squeezed.empty()) squeezed = {1};
        std::vector<std::vector<double>> groups(NumElements(kept));
        const std::vector<int64_t> ks = Strides(kept);
        for (int64_t i = 0; i < x.size(); ++i) {
          const std::vector<int64_t> idx = Unravel(i, x.shape());
          int64_t o = 0;
          for (int d = 0; d < 3; ++d) o += (reduced[d] ? 0 : idx[d]) * ks[d];
          groups[o].push_back(x.floats()[i]);
        }
        std::vector<double> want;
        const std::string t = type;
        for (const auto& g : groups) {
          double r = t == "reduceProd" ? 1 : 0, m = *std::max_element(g.begin(), g.end());
          for (double v : g) {
            if (t == "reduceL1" || t == "reduceSum" || t == "reduceMean" || t == "reduceLogSum") r += v;
            if (t == "reduceL2" || t == "reduceSumSquare") r += v * v;
            if (t == "reduceProd") r *= v;
            if (t == "reduceLogSumExp") r += std::exp(v);
          }
          if (t == "reduceL2") r = std::sqrt(r);
          if (t == "reduceMean") r /= g.size();
          if (t == "reduceLogSum" || t == "reduceLogSumExp") r = std::log(r);
          if (t == "reduceMax") r = m;
          if (t == "reduceMin") r = *std::min_element(g.begin(), g.end());
          want.push_back(r);
        }
        Wire p;
        p.Ints(1, ax.axes).Varint(2, keep).Varint(3, ax.all);
        Expect(RunLayer(type, p, {x}), keep ? kept : squeezed, want, 1e-5);
      }
  EXPECT_EQ(Code(RunLayer("reduceSum", Wire().Ints(1, {3}), {x})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("reduceSum", Wire(), {x})), absl::StatusCode::kInvalidArgument);
}

TEST(NnArgMaxMinTopK, IndicesAsFloatsFirstOfTies) {
  Tensor x = Tensor::Float({2, 3}, {1, 5, 5, 7, -1, 7});
  Expect(RunLayer("argMax", Wire().Varint(1, 1), {x}), {2, 1}, {1, 0});
  Expect(RunLayer("argMax", Wire().Varint(1, static_cast<uint64_t>(-1)).Varint(2, 1), {x}), {2}, {1, 0});
  Expect(RunLayer("argMin", Wire().Varint(1, 0).Varint(2, 1), {x}), {3}, {0, 1, 0});
  Expect(RunLayer("argMax", Wire().Varint(2, 1), {Tensor::Float({3}, {0, 2, 1})}), {1}, {1});
  // topK: the two largest per row in order, equal values by index.
  auto top = RunLayerOutputs("topK", Wire().Varint(1, 1).Varint(2, 2), {x}, {}, 2);
  ASSERT_TRUE(top.ok()) << top.status();
  Expect(top->at(0), {2, 2}, {5, 5, 7, 7});
  Expect(top->at(1), {2, 2}, {1, 2, 0, 2});
  auto bottom = RunLayerOutputs("topK", Wire().Varint(1, 0).Varint(2, 1).Varint(3, 1), {x}, {}, 2);
  ASSERT_TRUE(bottom.ok()) << bottom.status();
  Expect(bottom->at(0), {1, 3}, {1, -1, 5});
  Expect(bottom->at(1), {1, 3}, {0, 1, 0});
  // K from a second input.
  auto k3 = RunLayerOutputs("topK", Wire().Varint(1, 1).Varint(2, 1), {x, Tensor::Float({1}, {3})}, {}, 2);
  ASSERT_TRUE(k3.ok()) << k3.status();
  Expect(k3->at(1), {2, 3}, {1, 2, 0, 0, 2, 1});
  EXPECT_EQ(RunLayerOutputs("topK", Wire().Varint(1, 1).Varint(2, 4), {x}, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- ND data ----

TEST(NnNdData, TileStackGather) {
  Tensor x = Iota({2, 3});
  Expect(RunLayer("tile", Wire().Ints(1, {2, 1}), {x}), {4, 3}, {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5});
  Expect(RunLayer("tile", Wire().Ints(1, {1, 2}), {x}), {2, 6}, {0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5});
  EXPECT_EQ(Code(RunLayer("tile", Wire().Ints(1, {2}), {x})), absl::StatusCode::kInvalidArgument);
  Tensor y = Iota({2, 3}, 10);
  Expect(RunLayer("stack", Wire().Varint(1, 0), {x, y}), {2, 2, 3}, {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15});
  Expect(RunLayer("stack", Wire().Varint(1, static_cast<uint64_t>(-1)), {x, y}), {2, 3, 2},
         {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15});
  // gather: shape data[:axis] + indices + data[axis+1:], negative indices.
  Expect(RunLayer("gather", Wire().Varint(1, 1), {x, Tensor::Float({2, 1}, {-1, 0})}), {2, 2, 1}, {2, 0, 5, 3});
  Expect(RunLayer("gather", Wire(), {x, Tensor::Float({1}, {1})}), {1, 3}, {3, 4, 5});
  EXPECT_EQ(Code(RunLayer("gather", Wire(), {x, Tensor::Float({1}, {2})})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("gather", Wire(), {x, Tensor::Float({1}, {0.5f})})), absl::StatusCode::kInvalidArgument);
  Expect(RunLayer("gatherAlongAxis", Wire().Varint(1, 1), {x, Tensor::Float({2, 2}, {2, 0, -1, 1})}), {2, 2},
         {2, 0, 5, 4});
}

TEST(NnNdData, WhereReverseAndTriangles) {
  Tensor cond = Tensor::Float({2, 1}, {1, 0});
  Tensor a = Iota({3}), b = Iota({2, 3}, 10);
  Expect(RunLayer("whereBroadcastable", Wire(), {cond, a, b}), {2, 3}, {0, 1, 2, 13, 14, 15});
  Tensor x = Iota({2, 3});
  Expect(RunLayer("reverse", Wire().Ints(1, {0, 1}), {x}), {2, 3}, {2, 1, 0, 5, 4, 3});
  Expect(RunLayer("reverse", Wire().Ints(1, {1, 1}), {x}), {2, 3}, {5, 4, 3, 2, 1, 0});
  Tensor m = Iota({3, 3}, 1);
  Expect(RunLayer("lowerTriangular", Wire(), {m}), {3, 3}, {1, 0, 0, 4, 5, 0, 7, 8, 9});
  Expect(RunLayer("lowerTriangular", Wire().Varint(1, static_cast<uint64_t>(-1)), {m}), {3, 3},
         {0, 0, 0, 4, 0, 0, 7, 8, 0});
  Expect(RunLayer("upperTriangular", Wire().Varint(1, 1), {m}), {3, 3}, {0, 2, 3, 0, 0, 6, 0, 0, 0});
  // Band of one below and none above; a negative bound keeps that side.
  Expect(RunLayer("matrixBandPart", Wire().Varint(1, 1).Varint(2, 0), {m}), {3, 3}, {1, 0, 0, 4, 5, 0, 0, 8, 9});
  Expect(RunLayer("matrixBandPart", Wire().Varint(1, static_cast<uint64_t>(-1)).Varint(2, 0), {m}), {3, 3},
         {1, 0, 0, 4, 5, 0, 7, 8, 9});
}

TEST(NnNdData, ShapesFillsBroadcastsAndRanges) {
  Tensor x = Iota({2, 1, 3});
  Expect(RunLayer("getShape", Wire(), {x}), {3}, {2, 1, 3});
  Expect(RunLayer("fillLike", Wire().Float(1, 2.5f), {x}), {2, 1, 3}, std::vector<double>(6, 2.5));
  Expect(RunLayer("fillStatic", Wire().Float(1, -1).Ints(2, {2, 2}), {}), {2, 2}, {-1, -1, -1, -1});
  Expect(RunLayer("broadcastToStatic", Wire().Ints(1, {2, 2, 3}), {x}), {2, 2, 3},
         {0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5});
  Expect(RunLayer("broadcastToLike", Wire(), {Tensor::Float({1}, {7}), Iota({2, 2})}), {2, 2}, {7, 7, 7, 7});
  EXPECT_EQ(Code(RunLayer("broadcastToStatic", Wire().Ints(1, {2, 2, 2}), {x})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("fillStatic", Wire().Ints(2, {1 << 20, 1 << 20, 1 << 20}), {})),
            absl::StatusCode::kInvalidArgument);  // checked before allocating
  Expect(RunLayer("rangeStatic", Wire().Float(1, 2).Float(2, -1).Float(3, 0.75f), {}), {4}, {-1, -0.25, 0.5, 1.25});
  Expect(RunLayer("rangeStatic", Wire().Float(1, 0).Float(2, 3).Float(3, -1), {}), {3}, {3, 2, 1});
  EXPECT_EQ(Code(RunLayer("rangeStatic", Wire().Float(1, 1).Float(3, 0), {})), absl::StatusCode::kInvalidArgument);
  // Too many elements is a resource bound, as for every tensor (and range_1d).
  const auto huge = RunLayer("rangeStatic", Wire().Float(1, 1e30f).Float(3, 1e-30f), {});
  EXPECT_EQ(Code(huge), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(huge.status().message().find("'test_layer' (rangeStatic): the range has 1"), std::string::npos)
      << huge.status();
  Expect(RunLayer("copy", Wire(), {x}), {2, 1, 3}, {0, 1, 2, 3, 4, 5});
}

TEST(NnNdMore, PadOneHotWhereNonZeroAndTheProtoExamples) {
  // constantPad: the proto's shape examples, values by hand.
  Tensor x = Iota({2, 2}, 1);
  Expect(RunLayer("constantPad", Wire().Float(1, 9).Ints(2, {0, 1, 1, 0}), {x}), {3, 3}, {9, 1, 2, 9, 3, 4, 9, 9, 9});
  auto big = RunLayer("constantPad", Wire().Ints(2, {0, 1, 4, 0}), {Tensor::Zeros(DType::kFloat32, {20, 10})});
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->shape(), (Shape{21, 14}));
  // To a given size: [0, 3] pads after, [3, 0] before.
  Expect(RunLayer("constantPad", Wire().Ints(2, {0, 3, 3, 0}).Varint(3, 1), {x}), {3, 3}, {0, 1, 2, 0, 3, 4, 0, 0, 0});
  EXPECT_EQ(Code(RunLayer("constantPad", Wire().Ints(2, {1, 1}), {x})), absl::StatusCode::kInvalidArgument);
  // oneHot: the proto's example (on 5, off -1; -1 is out of range).
  Wire one;
  one.Varint(1, 4).Varint(2, static_cast<uint64_t>(-1)).Float(3, 5).Float(4, -1);
  Expect(RunLayer("oneHot", one, {Tensor::Float({2}, {2, 0})}), {2, 4}, {-1, -1, 5, -1, 5, -1, -1, -1});
  Expect(RunLayer("oneHot", one, {Tensor::Float({2}, {2, -1})}), {2, 4}, {-1, -1, 5, -1, -1, -1, -1, -1});
  // axis 0, the size from a second input.
  Expect(RunLayer("oneHot", Wire().Float(3, 1), {Tensor::Float({2}, {1, 0}), Tensor::Float({1}, {3})}), {3, 2},
         {0, 1, 1, 0, 0, 0});
  // whereNonZero: the proto's first example.
  Expect(RunLayer("whereNonZero", Wire(), {Tensor::Float({4}, {0, 1, 0, 2})}), {2, 1}, {1, 3});
  Expect(RunLayer("whereNonZero", Wire(), {Tensor::Float({2, 2}, {0, 3, 4, 0})}), {2, 2}, {0, 1, 1, 0});
  Expect(RunLayer("clampedReLU", Wire().Float(1, 0.5f).Float(2, 3), {Tensor::Float({4}, {-4, -1, 2, 5})}), {4},
         {-2, -0.5, 2, 3});
}

TEST(NnNdMore, ArgSortCumSumDotAsTheProtoSays) {
  // argSort: the proto's examples.
  Expect(RunLayer("argSort", Wire(), {Tensor::Float({5}, {3.1f, 5.4f, 32.9f, 3.2f, 77})}), {5}, {0, 3, 1, 2, 4});
  Expect(RunLayer("argSort", Wire().Varint(2, 1), {Tensor::Float({5}, {3.1f, 5.4f, 32.9f, 3.2f, 77})}), {5},
         {4, 2, 1, 3, 0});
  Tensor m = Tensor::Float({2, 3}, {3, 5, 32, 3, 77, 6});
  Expect(RunLayer("argSort", Wire().Varint(1, 1), {m}), {2, 3}, {0, 1, 2, 0, 2, 1});
  Expect(RunLayer("argSort", Wire().Varint(1, 1).Varint(2, 1), {m}), {2, 3}, {2, 1, 0, 1, 2, 0});
  // cumSum: the proto's four cases on [4, 6, 7].
  Tensor v = Tensor::Float({3}, {4, 6, 7});
  Expect(RunLayer("cumSum", Wire(), {v}), {3}, {4, 10, 17});
  Expect(RunLayer("cumSum", Wire().Varint(2, 1), {v}), {3}, {0, 4, 10});
  Expect(RunLayer("cumSum", Wire().Varint(3, 1), {v}), {3}, {17, 13, 7});
  Expect(RunLayer("cumSum", Wire().Varint(2, 1).Varint(3, 1), {v}), {3}, {13, 7, 0});
  // Along axis 0 from the second input.
  Expect(RunLayer("cumSum", Wire().Varint(1, 1), {Iota({2, 2}), Tensor::Float({1}, {0})}), {2, 2}, {0, 1, 2, 4});
  // dot over C of [B, C, 1, 1], and the cosine.
  Tensor a = Tensor::Float({2, 2, 1, 1}, {1, 2, 3, 4}), b = Tensor::Float({2, 2, 1, 1}, {3, 4, -4, 3});
  Expect(RunLayer("dot", Wire(), {a, b}), {2, 1, 1, 1}, {11, 0});
  Expect(RunLayer("dot", Wire().Varint(1, 1), {a, b}), {2, 1, 1, 1}, {11 / (std::sqrt(5.0) * 5), 0});
}

TEST(NnNdMore, ShapesFromInputs) {
  Tensor x = Iota({2, 3});
  Expect(RunLayer("reshapeLike", Wire(), {x, Tensor::Zeros(DType::kFloat32, {3, 2})}), {3, 2}, {0, 1, 2, 3, 4, 5});
  Expect(RunLayer("reshapeDynamic", Wire(), {x, Tensor::Float({3}, {1, 6, 1})}), {1, 6, 1}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(Code(RunLayer("reshapeDynamic", Wire(), {x, Tensor::Float({1}, {5})})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunLayer("reshapeDynamic", Wire(), {x, Tensor::Float({2}, {-1, 6})})),
            absl::StatusCode::kInvalidArgument);
  Expect(RunLayer("fillDynamic", Wire().Float(1, 4), {Tensor::Float({2}, {1, 2})}), {1, 2}, {4, 4});
  EXPECT_EQ(Code(RunLayer("fillDynamic", Wire(), {Tensor::Float({3}, {1 << 20, 1 << 20, 1 << 20})})),
            absl::StatusCode::kInvalidArgument);  // checked before allocating
  Expect(RunLayer("broadcastToDynamic", Wire(), {Iota({1, 2}), Tensor::Float({2}, {2, 2})}), {2, 2}, {0, 1, 0, 1});
  Expect(RunLayer("rangeDynamic", Wire().Float(3, 1), {Tensor::Float({1}, {3})}), {3}, {0, 1, 2});
  Expect(RunLayer("rangeDynamic", Wire(), {Tensor::Float({1}, {0}), Tensor::Float({1}, {2}), Tensor::Float({1}, {-0.5f})}),
         {4}, {2, 1.5, 1, 0.5});
  EXPECT_EQ(Code(RunLayer("rangeDynamic", Wire().Float(3, 1e-30f), {Tensor::Float({1}, {1e30f})})),
            absl::StatusCode::kResourceExhausted);
  // rankPreservingReshape: the proto's examples.
  auto shape_of = [](const absl::StatusOr<Tensor>& t) { return t.ok() ? t->shape() : Shape{-1}; };
  EXPECT_EQ(shape_of(RunLayer("rankPreservingReshape", Wire().Ints(1, {5, -1}), {Iota({20, 10})})), (Shape{5, 40}));
  EXPECT_EQ(shape_of(RunLayer("rankPreservingReshape", Wire().Ints(1, {0, 2, 25}), {Iota({20, 10, 5})})),
            (Shape{20, 2, 25}));
  EXPECT_EQ(shape_of(RunLayer("rankPreservingReshape", Wire().Ints(1, {25, 0, -1}), {Iota({10, 3, 5})})),
            (Shape{25, 3, 2}));
  EXPECT_EQ(Code(RunLayer("rankPreservingReshape", Wire().Ints(1, {5, -1}), {Iota({3, 3})})),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::execute
