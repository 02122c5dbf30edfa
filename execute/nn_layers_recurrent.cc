// NeuralNetwork recurrent layers: simpleRecurrent, gru, uniDirectionalLSTM
// and biDirectionalLSTM, as NeuralNetwork.proto's equations write them.
//
// Layout: x is [Seq, Batch, inputVectorSize, 1, 1]; the optional state
// inputs (h0, then c0; for the bidirectional layer h0, c0, h0_reverse,
// c0_reverse) hold Batch * outputVectorSize values each and default to 0.
// Outputs: y ([Seq or 1, Batch, H (2H bidirectional), 1, 1]), then the final
// states in the input order, each [1, Batch, H, 1, 1]; a layer may list
// fewer outputs than that (the first ones).
//
// Every pre-activation is clipped to [-50, 50] (the proto's clip()); the
// LSTM cell state to +-cellClipThreshold (0: 50). reverseInput walks the
// sequence from its end; a sequence output keeps each step at its input
// position, as the bidirectional layer's documented output does for its
// backward half (and as MIL's lstm/gru with direction "reverse", which
// coremltools converts to reverseInput, define it).
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

// One of the activations the recurrent layers take (ActivationParams).
struct Activation {
  enum Kind { kLinear, kRelu, kTanh, kScaledTanh, kSigmoid, kSigmoidHard } kind = kSigmoid;
  float alpha = 0, beta = 0;
  float operator()(float x) const {
    switch (kind) {
      case kLinear: return alpha * x + beta;
      case kRelu: return x > 0 ? x : 0.f;
      case kTanh: return std::tanh(x);
      case kScaledTanh: return alpha * std::tanh(beta * x);
      case kSigmoid: return 1.f / (1.f + std::exp(-x));
      case kSigmoidHard: return std::min(std::max(alpha * x + beta, 0.f), 1.f);
    }
    return x;
  }
};

absl::StatusOr<Activation> ReadActivation(const WireMessage& m, const NnLayerSpec& spec) {
  const std::vector<int> set = m.LengthDelimitedIn(1, 1000);
  if (set.size() != 1) return spec.Invalid("an activation must set exactly one nonlinearity");
  ASSIGN_OR_RETURN(WireMessage p, m.Message(set[0]));
  Activation a;
  a.alpha = p.Float(1);
  a.beta = p.Float(2);
  switch (set[0]) {
    case 5: a.kind = Activation::kLinear; break;
    case 10: a.kind = Activation::kRelu; break;
    case 30: a.kind = Activation::kTanh; break;
    case 31: a.kind = Activation::kScaledTanh; break;
    case 40: a.kind = Activation::kSigmoid; break;
    case 41: a.kind = Activation::kSigmoidHard; break;
    default:
      return spec.Unimplemented(absl::StrCat("recurrent activation field ", set[0]));
  }
  return a;
}

absl::StatusOr<std::vector<Activation>> ReadActivations(const NnLayerSpec& spec, int field, size_t count) {
  ASSIGN_OR_RETURN(std::vector<WireMessage> ms, spec.params.Messages(field));
  if (ms.size() != count) return spec.Invalid(absl::StrCat("needs ", count, " activations, has ", ms.size()));
  std::vector<Activation> out;
  for (const WireMessage& m : ms) {
    ASSIGN_OR_RETURN(Activation a, ReadActivation(m, spec));
    out.push_back(a);
  }
  return out;
}

float Clip50(float v) { return std::min(std::max(v, -50.f), 50.f); }

// A weight of exactly `n` values (or, when optional, absent: empty).
absl::StatusOr<std::vector<float>> Values(const NnLayerSpec& spec, const std::string& field, int64_t n,
                                          bool required) {
  const Tensor* t = spec.OptionalWeight(field);
  if (t == nullptr) {
    if (required) return spec.Invalid(absl::StrCat("has no ", field));
    return std::vector<float>();
  }
  if (t->size() != n) return spec.Invalid(absl::StrCat(field, " has ", t->size(), " values, not ", n));
  return std::vector<float>(t->floats().begin(), t->floats().end());
}

// acc[o] += sum_k m[o, k] * v[k] for m [out, n].
void MatVec(const std::vector<float>& m, const float* v, int64_t out, int64_t n, float* acc) {
  for (int64_t o = 0; o < out; ++o) {
    double s = 0;
    const float* row = m.data() + o * n;
    for (int64_t k = 0; k < n; ++k) s += static_cast<double>(row[k]) * v[k];
    acc[o] += static_cast<float>(s);
  }
}

struct Sizes {
  int64_t in = 0, out = 0;
};

absl::StatusOr<Sizes> ReadSizes(const NnLayerSpec& spec) {
  Sizes s{spec.params.Int(1), spec.params.Int(2)};
  // Bounded so that the weight shapes' products cannot overflow.
  if (s.in <= 0 || s.out <= 0 || s.in > (1 << 24) || s.out > (1 << 24)) {
    return spec.Invalid("inputVectorSize and outputVectorSize must be positive");
  }
  return s;
}

// The checked sequence input: [Seq, Batch, in, 1, 1].
absl::Status CheckSequence(const Tensor& x, int64_t in, const NnLayerLabel& label) {
  if (!x.is_float() || x.rank() != 5 || x.dim(2) != in || x.dim(3) != 1 || x.dim(4) != 1) {
    return label.Invalid(absl::StrCat("expects a float input [Seq, Batch, ", in, ", 1, 1]"));
  }
  return absl::OkStatus();
}

// The initial state input `k` (zeros when the layer has fewer inputs).
absl::StatusOr<std::vector<float>> InitialState(const std::vector<const Tensor*>& in, size_t k, int64_t n,
                                                const NnLayerLabel& label) {
  if (k >= in.size()) return std::vector<float>(n, 0.f);
  if (!in[k]->is_float() || in[k]->size() != n) {
    return label.Invalid(absl::StrCat("initial state input ", k, " must hold Batch * outputVectorSize = ", n,
                                      " floats"));
  }
  return std::vector<float>(in[k]->floats().begin(), in[k]->floats().end());
}

Tensor State(std::vector<float> v, int64_t batch, int64_t h) {
  return Tensor::Float({1, batch, h, 1, 1}, std::move(v));
}

// Writes step `t`'s outputs [Batch, h] into y at channel offset `c0` of a
// [*, Batch, width, 1, 1] tensor.
void Store(Tensor* y, int64_t t, const std::vector<float>& hidden, int64_t batch, int64_t h, int64_t width,
           int64_t c0) {
  float* dst = y->mutable_floats().data();
  for (int64_t b = 0; b < batch; ++b) {
    std::copy_n(hidden.data() + b * h, h, dst + (t * batch + b) * width + c0);
  }
}

// One LSTM direction's weights and settings.
struct LstmWeights {
  std::vector<float> w[4], r[4], b[4], p[3];  // gates i, f, z, o; peepholes i, f, o
};

struct LstmConfig {
  Sizes size;
  Activation f, g, h;
  bool sequence = false, peephole = false, coupled = false;
  float cell_clip = 50;
};

absl::StatusOr<LstmWeights> ReadLstmWeights(const NnLayerSpec& spec, const std::string& prefix, const LstmConfig& c,
                                            bool has_bias, bool forget_bias) {
  static const char* const kGate[4] = {"inputGate", "forgetGate", "blockInput", "outputGate"};
  const int64_t in = c.size.in, out = c.size.out;
  LstmWeights w;
  for (int g = 0; g < 4; ++g) {
    ASSIGN_OR_RETURN(w.w[g], Values(spec, prefix + kGate[g] + "WeightMatrix", out * in, true));
    ASSIGN_OR_RETURN(w.r[g], Values(spec, prefix + kGate[g] + "RecursionMatrix", out * out, true));
    if (has_bias) {
      ASSIGN_OR_RETURN(w.b[g], Values(spec, prefix + kGate[g] + "BiasVector", out, true));
    } else {
      w.b[g].assign(out, 0.f);
    }
  }
  if (forget_bias) {
    for (float& v : w.b[1]) v += 1;
  }
  static const char* const kPeep[3] = {"inputGatePeepholeVector", "forgetGatePeepholeVector",
                                       "outputGatePeepholeVector"};
  for (int k = 0; k < 3; ++k) {
    if (c.peephole) {
      ASSIGN_OR_RETURN(w.p[k], Values(spec, prefix + kPeep[k], out, true));
    } else {
      w.p[k].assign(out, 0.f);
    }
  }
  return w;
}

// Runs one LSTM direction over x, writing y (when sequence) at channel
// offset c0 and leaving the final states in h and c.
void RunLstm(const Tensor& x, const LstmConfig& cfg, const LstmWeights& w, bool reverse, Tensor* y, int64_t width,
             int64_t c0, std::vector<float>* h, std::vector<float>* c) {
  const int64_t seq = x.dim(0), batch = x.dim(1), in = cfg.size.in, out = cfg.size.out;
  std::vector<float> gate[4];
  for (auto& g : gate) g.resize(out);
  std::vector<float> next_h(batch * out), next_c(batch * out);
  for (int64_t step = 0; step < seq; ++step) {
    const int64_t t = reverse ? seq - 1 - step : step;
    for (int64_t b = 0; b < batch; ++b) {
      const float* xt = x.floats().data() + (t * batch + b) * in;
      const float* hp = h->data() + b * out;
      const float* cp = c->data() + b * out;
      for (int g = 0; g < 4; ++g) {
        std::copy(w.b[g].begin(), w.b[g].end(), gate[g].begin());
        MatVec(w.w[g], xt, out, in, gate[g].data());
        MatVec(w.r[g], hp, out, out, gate[g].data());
      }
      for (int64_t o = 0; o < out; ++o) {
        const float i_t = cfg.f(Clip50(gate[0][o] + w.p[0][o] * cp[o]));
        const float f_t = cfg.f(Clip50(gate[1][o] + w.p[1][o] * cp[o]));
        const float z_t = cfg.g(Clip50(gate[2][o]));
        float cell = cfg.coupled ? cp[o] * (1 - i_t) + i_t * z_t : cp[o] * f_t + i_t * z_t;
        cell = std::min(std::max(cell, -cfg.cell_clip), cfg.cell_clip);
        const float o_t = cfg.f(Clip50(gate[3][o] + w.p[2][o] * cell));
        next_c[b * out + o] = cell;
        next_h[b * out + o] = cfg.h(cell) * o_t;
      }
    }
    h->swap(next_h);
    c->swap(next_c);
    if (cfg.sequence) Store(y, t, *h, batch, out, width, c0);
  }
  if (!cfg.sequence) Store(y, 0, *h, batch, out, width, c0);
}

absl::StatusOr<LstmConfig> ReadLstmConfig(const NnLayerSpec& spec, int activations_field, bool* has_bias,
                                          bool* forget_bias) {
  LstmConfig c;
  ASSIGN_OR_RETURN(c.size, ReadSizes(spec));
  ASSIGN_OR_RETURN(std::vector<Activation> acts, ReadActivations(spec, activations_field, 3));
  c.f = acts[0], c.g = acts[1], c.h = acts[2];
  ASSIGN_OR_RETURN(WireMessage p, spec.params.Message(15));  // LSTMParams
  c.sequence = p.Bool(10);
  *has_bias = p.Bool(20);
  *forget_bias = p.Bool(30);
  c.peephole = p.Bool(40);
  c.coupled = p.Bool(50);
  c.cell_clip = p.Float(60);
  if (c.cell_clip == 0) c.cell_clip = 50;  // "If 0, it is set to its default value = 50.0"
  if (!(c.cell_clip > 0)) return spec.Invalid("cellClipThreshold must be positive");
  return c;
}

absl::Status CheckOutputs(const NnLayerSpec& spec, int most) {
  if (spec.output_count < 1 || spec.output_count > most) {
    return spec.Invalid(absl::StrCat("has ", spec.output_count, " outputs; it gives 1 to ", most));
  }
  return absl::OkStatus();
}

}  // namespace

// simpleRecurrent: y_t = f(clip(W x_t + R y_{t-1} + b)).
absl::StatusOr<NnKernel> BuildSimpleRecurrent(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(Sizes size, ReadSizes(spec));
  RETURN_IF_ERROR(CheckOutputs(spec, 2));
  ASSIGN_OR_RETURN(std::vector<Activation> acts, ReadActivations(spec, 10, 1));
  const bool sequence = spec.params.Bool(15), has_bias = spec.params.Bool(20), reverse = spec.params.Bool(100);
  ASSIGN_OR_RETURN(std::vector<float> w, Values(spec, "weightMatrix", size.out * size.in, true));
  ASSIGN_OR_RETURN(std::vector<float> r, Values(spec, "recursionMatrix", size.out * size.out, true));
  ASSIGN_OR_RETURN(std::vector<float> bias, Values(spec, "biasVector", size.out, has_bias));
  if (!has_bias) bias.assign(size.out, 0.f);
  const int outputs = spec.output_count;
  const Activation f = acts[0];
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(CheckSequence(x, size.in, label));
    const int64_t seq = x.dim(0), batch = x.dim(1), out = size.out;
    ASSIGN_OR_RETURN(std::vector<float> h, InitialState(in, 1, batch * out, label));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, {sequence ? seq : 1, batch, out, 1, 1}));
    std::vector<float> next(batch * out);
    for (int64_t step = 0; step < seq; ++step) {
      const int64_t t = reverse ? seq - 1 - step : step;
      for (int64_t b = 0; b < batch; ++b) {
        float* acc = next.data() + b * out;
        std::copy(bias.begin(), bias.end(), acc);
        MatVec(w, x.floats().data() + (t * batch + b) * size.in, out, size.in, acc);
        MatVec(r, h.data() + b * out, out, out, acc);
        for (int64_t o = 0; o < out; ++o) acc[o] = f(Clip50(acc[o]));
      }
      h.swap(next);
      if (sequence) Store(&y, t, h, batch, out, out, 0);
    }
    if (!sequence) Store(&y, 0, h, batch, out, out, 0);
    std::vector<Tensor> result = Outputs(std::move(y));
    if (outputs > 1) result.push_back(State(std::move(h), batch, out));
    return result;
  });
}

// gru: z = f(W_z x + R_z y + b_z), r = f(W_r x + R_r y + b_r),
// o = g(W_o x + R_o (y * r) + b_o), y' = (1 - z) o + z y (each clipped).
absl::StatusOr<NnKernel> BuildGru(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(Sizes size, ReadSizes(spec));
  RETURN_IF_ERROR(CheckOutputs(spec, 2));
  ASSIGN_OR_RETURN(std::vector<Activation> acts, ReadActivations(spec, 10, 2));
  const bool sequence = spec.params.Bool(15), has_bias = spec.params.Bool(20), reverse = spec.params.Bool(100);
  static const char* const kGate[3] = {"updateGate", "resetGate", "outputGate"};
  std::vector<float> w[3], r[3], bias[3];
  for (int g = 0; g < 3; ++g) {
    ASSIGN_OR_RETURN(w[g], Values(spec, absl::StrCat(kGate[g], "WeightMatrix"), size.out * size.in, true));
    ASSIGN_OR_RETURN(r[g], Values(spec, absl::StrCat(kGate[g], "RecursionMatrix"), size.out * size.out, true));
    ASSIGN_OR_RETURN(bias[g], Values(spec, absl::StrCat(kGate[g], "BiasVector"), size.out, has_bias));
    if (!has_bias) bias[g].assign(size.out, 0.f);
  }
  const int outputs = spec.output_count;
  const Activation f = acts[0], g_act = acts[1];
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(CheckSequence(x, size.in, label));
    const int64_t seq = x.dim(0), batch = x.dim(1), out = size.out;
    ASSIGN_OR_RETURN(std::vector<float> h, InitialState(in, 1, batch * out, label));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, {sequence ? seq : 1, batch, out, 1, 1}));
    std::vector<float> next(batch * out), z(out), rg(out), o(out), cell(out);
    for (int64_t step = 0; step < seq; ++step) {
      const int64_t t = reverse ? seq - 1 - step : step;
      for (int64_t b = 0; b < batch; ++b) {
        const float* xt = x.floats().data() + (t * batch + b) * size.in;
        const float* hp = h.data() + b * out;
        std::copy(bias[0].begin(), bias[0].end(), z.begin());
        std::copy(bias[1].begin(), bias[1].end(), rg.begin());
        std::copy(bias[2].begin(), bias[2].end(), o.begin());
        MatVec(w[0], xt, out, size.in, z.data());
        MatVec(r[0], hp, out, out, z.data());
        MatVec(w[1], xt, out, size.in, rg.data());
        MatVec(r[1], hp, out, out, rg.data());
        for (int64_t k = 0; k < out; ++k) {
          z[k] = f(Clip50(z[k]));
          rg[k] = f(Clip50(rg[k]));
          cell[k] = hp[k] * rg[k];
        }
        MatVec(w[2], xt, out, size.in, o.data());
        MatVec(r[2], cell.data(), out, out, o.data());
        for (int64_t k = 0; k < out; ++k) {
          next[b * out + k] = (1 - z[k]) * g_act(Clip50(o[k])) + z[k] * hp[k];
        }
      }
      h.swap(next);
      if (sequence) Store(&y, t, h, batch, out, out, 0);
    }
    if (!sequence) Store(&y, 0, h, batch, out, out, 0);
    std::vector<Tensor> result = Outputs(std::move(y));
    if (outputs > 1) result.push_back(State(std::move(h), batch, out));
    return result;
  });
}

absl::StatusOr<NnKernel> BuildUniDirectionalLstm(const NnLayerSpec& spec) {
  RETURN_IF_ERROR(CheckOutputs(spec, 3));
  bool has_bias = false, forget_bias = false;
  ASSIGN_OR_RETURN(LstmConfig cfg, ReadLstmConfig(spec, 10, &has_bias, &forget_bias));
  ASSIGN_OR_RETURN(LstmWeights w, ReadLstmWeights(spec, "", cfg, has_bias, forget_bias));
  const bool reverse = spec.params.Bool(100);
  const int outputs = spec.output_count;
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(CheckSequence(x, cfg.size.in, label));
    const int64_t seq = x.dim(0), batch = x.dim(1), out = cfg.size.out;
    ASSIGN_OR_RETURN(std::vector<float> h, InitialState(in, 1, batch * out, label));
    ASSIGN_OR_RETURN(std::vector<float> c, InitialState(in, 2, batch * out, label));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, {cfg.sequence ? seq : 1, batch, out, 1, 1}));
    RunLstm(x, cfg, w, reverse, &y, out, 0, &h, &c);
    std::vector<Tensor> result = Outputs(std::move(y));
    if (outputs > 1) result.push_back(State(std::move(h), batch, out));
    if (outputs > 2) result.push_back(State(std::move(c), batch, out));
    return result;
  });
}

// biDirectionalLSTM: a forward and a backward LSTM over the same input,
// their outputs concatenated per step along the channel axis ([yf_t,
// yb_t]); final states h, c, h_reverse, c_reverse.
absl::StatusOr<NnKernel> BuildBiDirectionalLstm(const NnLayerSpec& spec) {
  RETURN_IF_ERROR(CheckOutputs(spec, 5));
  bool has_bias = false, forget_bias = false;
  ASSIGN_OR_RETURN(LstmConfig cfg, ReadLstmConfig(spec, 10, &has_bias, &forget_bias));
  // The proto requires the backward activations to equal the forward ones;
  // the backward LSTM uses its own where given.
  LstmConfig back = cfg;
  ASSIGN_OR_RETURN(std::vector<WireMessage> back_acts, spec.params.Messages(11));
  if (!back_acts.empty()) {
    ASSIGN_OR_RETURN(std::vector<Activation> acts, ReadActivations(spec, 11, 3));
    back.f = acts[0], back.g = acts[1], back.h = acts[2];
  }
  ASSIGN_OR_RETURN(LstmWeights fw, ReadLstmWeights(spec, "forward.", cfg, has_bias, forget_bias));
  ASSIGN_OR_RETURN(LstmWeights bw, ReadLstmWeights(spec, "backward.", back, has_bias, forget_bias));
  const int outputs = spec.output_count;
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(CheckSequence(x, cfg.size.in, label));
    const int64_t seq = x.dim(0), batch = x.dim(1), out = cfg.size.out;
    ASSIGN_OR_RETURN(std::vector<float> h, InitialState(in, 1, batch * out, label));
    ASSIGN_OR_RETURN(std::vector<float> c, InitialState(in, 2, batch * out, label));
    ASSIGN_OR_RETURN(std::vector<float> hb, InitialState(in, 3, batch * out, label));
    ASSIGN_OR_RETURN(std::vector<float> cb, InitialState(in, 4, batch * out, label));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, {cfg.sequence ? seq : 1, batch, 2 * out, 1, 1}));
    RunLstm(x, cfg, fw, /*reverse=*/false, &y, 2 * out, 0, &h, &c);
    RunLstm(x, back, bw, /*reverse=*/true, &y, 2 * out, out, &hb, &cb);
    std::vector<Tensor> result = Outputs(std::move(y));
    std::vector<float>* states[4] = {&h, &c, &hb, &cb};
    for (int k = 1; k < outputs; ++k) result.push_back(State(std::move(*states[k - 1]), batch, out));
    return result;
  });
}

}  // namespace coremlz::execute
