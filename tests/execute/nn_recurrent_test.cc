// The NeuralNetwork recurrent layers (simpleRecurrent, gru,
// uniDirectionalLSTM, biDirectionalLSTM) against slow references written
// in double from NeuralNetwork.proto's equations, and hand-computed values
// for the activations and the [-50, 50] clip.
#include <cmath>
#include <functional>
#include <random>

#include "execute/nn_layer.h"
#include "gtest/gtest.h"
#include "tests/execute/nn_test_util.h"

namespace coremlz::execute {
namespace {

using testing::Random;
using testing::RunLayerOutputs;
using testing::Wire;
using Weights = std::map<std::string, std::vector<float>>;
using Fn = std::function<double(double)>;

struct Act {
  Wire wire;
  Fn f;
};
Act Sigmoid() { return {Wire().Message(40, Wire()), [](double x) { return 1 / (1 + std::exp(-x)); }}; }
Act Tanh() { return {Wire().Message(30, Wire()), [](double x) { return std::tanh(x); }}; }
Act Relu() { return {Wire().Message(10, Wire()), [](double x) { return x > 0 ? x : 0; }}; }
Act Linear(float a, float b) {
  return {Wire().Message(5, Wire().Float(1, a).Float(2, b)), [=](double x) { return a * x + b; }};
}
Act HardSigmoid(float a, float b) {
  return {Wire().Message(41, Wire().Float(1, a).Float(2, b)),
          [=](double x) { return std::min(std::max(a * x + b, 0.0), 1.0); }};
}
Act ScaledTanh(float a, float b) {
  return {Wire().Message(31, Wire().Float(1, a).Float(2, b)), [=](double x) { return a * std::tanh(b * x); }};
}

double Clip(double v, double c = 50) { return std::min(std::max(v, -c), c); }

std::vector<float> Values(std::mt19937& rng, int64_t n, float scale = 1) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// sum_k m[o, k] v[k].
double Dot(const std::vector<float>& m, int64_t o, const std::vector<double>& v) {
  double s = 0;
  for (size_t k = 0; k < v.size(); ++k) s += m[o * v.size() + k] * v[k];
  return s;
}

// x_t for batch b of a [Seq, Batch, In, 1, 1] tensor.
std::vector<double> Step(const Tensor& x, int64_t t, int64_t b) {
  const int64_t batch = x.dim(1), in = x.dim(2);
  std::vector<double> v(in);
  for (int64_t i = 0; i < in; ++i) v[i] = x.floats()[(t * batch + b) * in + i];
  return v;
}

void ExpectClose(const Tensor& got, const Shape& shape, const std::vector<double>& want, double tol = 2e-5) {
  ASSERT_EQ(got.shape(), shape);
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got.floats()[i], want[i], tol) << "element " << i;
}

TEST(NnSimpleRecurrent, MatchesTheEquationForwardAndReversed) {
  std::mt19937 rng(11);
  const int64_t seq = 4, batch = 2, in = 3, out = 2;
  Tensor x = Random(rng, {seq, batch, in, 1, 1});
  Tensor h0 = Random(rng, {1, batch, out, 1, 1});
  Weights w = {{"weightMatrix", Values(rng, out * in)},
               {"recursionMatrix", Values(rng, out * out)},
               {"biasVector", Values(rng, out)}};
  for (bool reverse : {false, true}) {
    for (bool sequence : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "reverse " << reverse << " sequence " << sequence);
      Act act = Tanh();
      Wire p;
      p.Varint(1, in).Varint(2, out).Message(10, act.wire).Varint(15, sequence).Varint(20, 1).Varint(100, reverse);
      auto got = RunLayerOutputs("simpleRecurrent", p, {x, h0}, w, 2);
      ASSERT_TRUE(got.ok()) << got.status();
      std::vector<double> y(sequence ? seq * batch * out : batch * out), h(batch * out);
      for (int64_t b = 0; b < batch; ++b) {
        std::vector<double> state(out);
        for (int64_t o = 0; o < out; ++o) state[o] = h0.floats()[b * out + o];
        for (int64_t s = 0; s < seq; ++s) {
          const int64_t t = reverse ? seq - 1 - s : s;
          const std::vector<double> xt = Step(x, t, b);
          std::vector<double> next(out);
          for (int64_t o = 0; o < out; ++o) {
            next[o] = act.f(Clip(Dot(w["weightMatrix"], o, xt) + Dot(w["recursionMatrix"], o, state) +
                                 w["biasVector"][o]));
          }
          state = next;
          if (sequence) {
            for (int64_t o = 0; o < out; ++o) y[(t * batch + b) * out + o] = state[o];
          }
        }
        for (int64_t o = 0; o < out; ++o) h[b * out + o] = state[o];
        if (!sequence) {
          for (int64_t o = 0; o < out; ++o) y[b * out + o] = state[o];
        }
      }
      ExpectClose(got->at(0), {sequence ? seq : 1, batch, out, 1, 1}, y);
      ExpectClose(got->at(1), {1, batch, out, 1, 1}, h);
    }
  }
}

TEST(NnSimpleRecurrent, ActivationsAndTheClipByHand) {
  // in = out = 1, W = 1, R = 0, no bias: y = f(clip(x)).
  const Weights w = {{"weightMatrix", {1}}, {"recursionMatrix", {0}}};
  Tensor x = Tensor::Float({3, 1, 1, 1, 1}, {0.5f, -2, 100});
  struct Case {
    Act act;
    std::vector<double> want;
  };
  const Case cases[] = {
      {Linear(2, 1), {2, -3, 101}},  // 100 is clipped to 50 first
      {Relu(), {0.5, 0, 50}},
      {HardSigmoid(0.2f, 0.5f), {0.6, 0.1, 1}},
      {ScaledTanh(1.7159f, 2.f / 3), {1.7159 * std::tanh(1.0 / 3), 1.7159 * std::tanh(-4.0 / 3), 1.7159}},
      {Sigmoid(), {1 / (1 + std::exp(-0.5)), 1 / (1 + std::exp(2.0)), 1}},
  };
  for (const Case& c : cases) {
    Wire p;
    p.Varint(1, 1).Varint(2, 1).Message(10, c.act.wire).Varint(15, 1);
    auto got = RunLayerOutputs("simpleRecurrent", p, {x}, w, 1);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), 1u);
    ExpectClose(got->at(0), {3, 1, 1, 1, 1}, c.want, 1e-5);
  }
}

TEST(NnRecurrent, MalformedLayersAreRefused) {
  const Weights w = {{"weightMatrix", {1}}, {"recursionMatrix", {0}}};
  Tensor x = Tensor::Float({1, 1, 1, 1, 1}, {1});
  Wire ok;
  ok.Varint(1, 1).Varint(2, 1).Message(10, Tanh().wire);
  ASSERT_TRUE(RunLayerOutputs("simpleRecurrent", ok, {x}, w).ok());
  // No activation; an activation recurrent layers do not take (ELU).
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", Wire().Varint(1, 1).Varint(2, 1), {x}, w).status().code(),
            absl::StatusCode::kInvalidArgument);
  Wire elu;
  elu.Varint(1, 1).Varint(2, 1).Message(10, Wire().Message(50, Wire().Float(1, 1)));
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", elu, {x}, w).status().code(), absl::StatusCode::kUnimplemented);
  // Weights of the wrong size, a missing bias that hasBiasVector asks for.
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", ok, {x}, {{"weightMatrix", {1, 2}}, {"recursionMatrix", {0}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  Wire bias = ok;
  bias.Varint(20, 1);
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", bias, {x}, w).status().code(), absl::StatusCode::kInvalidArgument);
  // Input not [Seq, Batch, In, 1, 1]; an initial state of the wrong size;
  // three outputs.
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", ok, {Tensor::Float({1, 1, 2, 1, 1}, {1, 2})}, w).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", ok, {Tensor::Float({1, 1, 1}, {1})}, w).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", ok, {x, Tensor::Float({2}, {1, 2})}, w).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunLayerOutputs("simpleRecurrent", ok, {x}, w, 3).status().code(), absl::StatusCode::kInvalidArgument);
  // Sizes of 0.
  EXPECT_EQ(RunLayerOutputs("gru", Wire().Varint(2, 1), {x}, w).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NnGru, MatchesTheEquation) {
  std::mt19937 rng(12);
  const int64_t seq = 5, batch = 2, in = 3, out = 4;
  Tensor x = Random(rng, {seq, batch, in, 1, 1});
  Tensor h0 = Random(rng, {1, batch, out, 1, 1});
  Weights w;
  for (const char* g : {"updateGate", "resetGate", "outputGate"}) {
    w[std::string(g) + "WeightMatrix"] = Values(rng, out * in);
    w[std::string(g) + "RecursionMatrix"] = Values(rng, out * out);
    w[std::string(g) + "BiasVector"] = Values(rng, out);
  }
  for (bool reverse : {false, true}) {
    SCOPED_TRACE(reverse);
    Act f = Sigmoid(), g = Tanh();
    Wire p;
    p.Varint(1, in).Varint(2, out).Message(10, f.wire).Message(10, g.wire).Varint(15, 1).Varint(20, 1);
    p.Varint(100, reverse);
    auto got = RunLayerOutputs("gru", p, {x, h0}, w, 2);
    ASSERT_TRUE(got.ok()) << got.status();
    std::vector<double> y(seq * batch * out), h(batch * out);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<double> state(out);
      for (int64_t o = 0; o < out; ++o) state[o] = h0.floats()[b * out + o];
      for (int64_t s = 0; s < seq; ++s) {
        const int64_t t = reverse ? seq - 1 - s : s;
        const std::vector<double> xt = Step(x, t, b);
        std::vector<double> z(out), r(out), c(out), next(out);
        for (int64_t o = 0; o < out; ++o) {
          z[o] = f.f(Clip(Dot(w["updateGateWeightMatrix"], o, xt) + Dot(w["updateGateRecursionMatrix"], o, state) +
                          w["updateGateBiasVector"][o]));
          r[o] = f.f(Clip(Dot(w["resetGateWeightMatrix"], o, xt) + Dot(w["resetGateRecursionMatrix"], o, state) +
                          w["resetGateBiasVector"][o]));
          c[o] = state[o] * r[o];
        }
        for (int64_t o = 0; o < out; ++o) {
          const double ot = g.f(Clip(Dot(w["outputGateWeightMatrix"], o, xt) +
                                     Dot(w["outputGateRecursionMatrix"], o, c) + w["outputGateBiasVector"][o]));
          next[o] = (1 - z[o]) * ot + z[o] * state[o];
        }
        state = next;
        for (int64_t o = 0; o < out; ++o) y[(t * batch + b) * out + o] = state[o];
      }
      for (int64_t o = 0; o < out; ++o) h[b * out + o] = state[o];
    }
    ExpectClose(got->at(0), {seq, batch, out, 1, 1}, y);
    ExpectClose(got->at(1), {1, batch, out, 1, 1}, h);
  }
}

// The LSTM of NeuralNetwork.proto in double, one direction, over x in the
// order `reverse` says; y at each step's input position.
struct LstmRef {
  std::vector<double> y, h, c;
};
LstmRef ReferenceLstm(const Tensor& x, const Tensor& h0, const Tensor& c0, const Weights& w, const std::string& prefix,
                      int64_t out, const Act& f, const Act& g, const Act& hh, bool reverse, bool peephole,
                      bool coupled, bool forget_bias, double cell_clip) {
  const int64_t seq = x.dim(0), batch = x.dim(1);
  auto W = [&](const char* name) { return w.at(prefix + name); };
  LstmRef ref;
  ref.y.assign(seq * batch * out, 0);
  ref.h.assign(batch * out, 0);
  ref.c.assign(batch * out, 0);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> h(out), c(out);
    for (int64_t o = 0; o < out; ++o) h[o] = h0.floats()[b * out + o], c[o] = c0.floats()[b * out + o];
    for (int64_t s = 0; s < seq; ++s) {
      const int64_t t = reverse ? seq - 1 - s : s;
      const std::vector<double> xt = Step(x, t, b);
      std::vector<double> nh(out), nc(out);
      for (int64_t o = 0; o < out; ++o) {
        auto pre = [&](const std::string& gate) {
          return Dot(W((gate + "WeightMatrix").c_str()), o, xt) + Dot(W((gate + "RecursionMatrix").c_str()), o, h) +
                 W((gate + "BiasVector").c_str())[o];
        };
        const double pi = peephole ? W("inputGatePeepholeVector")[o] : 0;
        const double pf = peephole ? W("forgetGatePeepholeVector")[o] : 0;
        const double po = peephole ? W("outputGatePeepholeVector")[o] : 0;
        const double i = f.f(Clip(pre("inputGate") + pi * c[o]));
        const double fg = f.f(Clip(pre("forgetGate") + (forget_bias ? 1 : 0) + pf * c[o]));
        const double z = g.f(Clip(pre("blockInput")));
        double cell = coupled ? c[o] * (1 - i) + i * z : c[o] * fg + i * z;
        cell = Clip(cell, cell_clip);
        const double og = f.f(Clip(pre("outputGate") + po * cell));
        nc[o] = cell;
        nh[o] = hh.f(cell) * og;
      }
      h = nh, c = nc;
      for (int64_t o = 0; o < out; ++o) ref.y[(t * batch + b) * out + o] = h[o];
    }
    for (int64_t o = 0; o < out; ++o) ref.h[b * out + o] = h[o], ref.c[b * out + o] = c[o];
  }
  return ref;
}

Weights LstmWeights(std::mt19937& rng, const std::string& prefix, int64_t in, int64_t out) {
  Weights w;
  for (const char* g : {"inputGate", "forgetGate", "blockInput", "outputGate"}) {
    w[prefix + g + "WeightMatrix"] = Values(rng, out * in);
    w[prefix + g + "RecursionMatrix"] = Values(rng, out * out);
    w[prefix + g + "BiasVector"] = Values(rng, out);
  }
  for (const char* p : {"inputGatePeepholeVector", "forgetGatePeepholeVector", "outputGatePeepholeVector"}) {
    w[prefix + p] = Values(rng, out);
  }
  return w;
}

TEST(NnLstm, UniDirectionalMatchesTheEquations) {
  std::mt19937 rng(13);
  const int64_t seq = 4, batch = 2, in = 3, out = 3;
  // Inputs scaled up so that a cell clip of 0.4 bites.
  Tensor x = Random(rng, {seq, batch, in, 1, 1});
  for (float& v : x.mutable_floats()) v *= 3;
  Tensor h0 = Random(rng, {1, batch, out, 1, 1}), c0 = Random(rng, {1, batch, out, 1, 1});
  const Weights w = LstmWeights(rng, "", in, out);
  struct Case {
    bool reverse, peephole, coupled, forget_bias, sequence;
    float clip;
  };
  const Case cases[] = {
      {false, false, false, false, true, 0},    {true, false, false, false, true, 0},
      {false, true, false, true, false, 0},     {false, false, true, false, true, 0.4f},
      {true, true, true, true, true, 0.4f},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(::testing::Message() << "reverse " << k.reverse << " peephole " << k.peephole << " coupled "
                                      << k.coupled << " forget_bias " << k.forget_bias << " clip " << k.clip);
    Act f = Sigmoid(), g = Tanh(), h = ScaledTanh(1.7159f, 2.f / 3);
    Wire params;
    params.Varint(10, k.sequence).Varint(20, 1).Varint(30, k.forget_bias).Varint(40, k.peephole);
    params.Varint(50, k.coupled).Float(60, k.clip);
    Wire p;
    p.Varint(1, in).Varint(2, out).Message(10, f.wire).Message(10, g.wire).Message(10, h.wire);
    p.Message(15, params).Varint(100, k.reverse);
    auto got = RunLayerOutputs("uniDirectionalLSTM", p, {x, h0, c0}, w, 3);
    ASSERT_TRUE(got.ok()) << got.status();
    const LstmRef ref = ReferenceLstm(x, h0, c0, w, "", out, f, g, h, k.reverse, k.peephole, k.coupled,
                                      k.forget_bias, k.clip == 0 ? 50 : k.clip);
    if (k.sequence) {
      ExpectClose(got->at(0), {seq, batch, out, 1, 1}, ref.y);
    } else {
      ExpectClose(got->at(0), {1, batch, out, 1, 1}, ref.h);
    }
    ExpectClose(got->at(1), {1, batch, out, 1, 1}, ref.h);
    ExpectClose(got->at(2), {1, batch, out, 1, 1}, ref.c);
  }
  // Without state inputs the states start at zero; with one output only y.
  Wire p;
  p.Varint(1, in).Varint(2, out).Message(10, Sigmoid().wire).Message(10, Tanh().wire).Message(10, Tanh().wire);
  p.Message(15, Wire().Varint(20, 1));
  auto got = RunLayerOutputs("uniDirectionalLSTM", p, {x}, w, 1);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  Tensor zeros = Tensor::Zeros(DType::kFloat32, {1, batch, out, 1, 1});
  const LstmRef ref = ReferenceLstm(x, zeros, zeros, w, "", out, Sigmoid(), Tanh(), Tanh(), false, false, false,
                                    false, 50);
  ExpectClose(got->at(0), {1, batch, out, 1, 1}, ref.h);
  // Peepholes asked for but absent.
  Wire peep;
  peep.Varint(1, in).Varint(2, out).Message(10, Sigmoid().wire).Message(10, Tanh().wire).Message(10, Tanh().wire);
  peep.Message(15, Wire().Varint(20, 1).Varint(40, 1));
  Weights no_peep = w;
  no_peep.erase("inputGatePeepholeVector");
  EXPECT_EQ(RunLayerOutputs("uniDirectionalLSTM", peep, {x}, no_peep).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NnLstm, BiDirectionalConcatenatesBothDirectionsPerStep) {
  std::mt19937 rng(14);
  const int64_t seq = 3, batch = 2, in = 2, out = 3;
  Tensor x = Random(rng, {seq, batch, in, 1, 1});
  Tensor h0 = Random(rng, {1, batch, out, 1, 1}), c0 = Random(rng, {1, batch, out, 1, 1});
  Tensor hb = Random(rng, {1, batch, out, 1, 1}), cb = Random(rng, {1, batch, out, 1, 1});
  Weights w = LstmWeights(rng, "forward.", in, out);
  for (auto& [k, v] : LstmWeights(rng, "backward.", in, out)) w[k] = v;
  for (bool sequence : {true, false}) {
    SCOPED_TRACE(sequence);
    Act f = Sigmoid(), g = Tanh(), h = Tanh();
    Wire p;
    p.Varint(1, in).Varint(2, out);
    for (int k = 0; k < 2; ++k) p.Message(10 + k, f.wire).Message(10 + k, g.wire).Message(10 + k, h.wire);
    p.Message(15, Wire().Varint(10, sequence).Varint(20, 1).Varint(40, 1));
    auto got = RunLayerOutputs("biDirectionalLSTM", p, {x, h0, c0, hb, cb}, w, 5);
    ASSERT_TRUE(got.ok()) << got.status();
    const LstmRef fw = ReferenceLstm(x, h0, c0, w, "forward.", out, f, g, h, false, true, false, false, 50);
    const LstmRef bw = ReferenceLstm(x, hb, cb, w, "backward.", out, f, g, h, true, true, false, false, 50);
    std::vector<double> y;
    if (sequence) {
      // [yf_t, yb_t] at each input position t.
      for (int64_t t = 0; t < seq; ++t)
        for (int64_t b = 0; b < batch; ++b) {
          for (int64_t o = 0; o < out; ++o) y.push_back(fw.y[(t * batch + b) * out + o]);
          for (int64_t o = 0; o < out; ++o) y.push_back(bw.y[(t * batch + b) * out + o]);
        }
    } else {
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t o = 0; o < out; ++o) y.push_back(fw.h[b * out + o]);
        for (int64_t o = 0; o < out; ++o) y.push_back(bw.h[b * out + o]);
      }
    }
    ExpectClose(got->at(0), {sequence ? seq : 1, batch, 2 * out, 1, 1}, y);
    ExpectClose(got->at(1), {1, batch, out, 1, 1}, fw.h);
    ExpectClose(got->at(2), {1, batch, out, 1, 1}, fw.c);
    ExpectClose(got->at(3), {1, batch, out, 1, 1}, bw.h);
    ExpectClose(got->at(4), {1, batch, out, 1, 1}, bw.c);
  }
}

}  // namespace
}  // namespace coremlz::execute
