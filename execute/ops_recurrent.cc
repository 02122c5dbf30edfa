// Recurrent layers (iOS15 recurrent.py; iOS17 only widens dtypes).
// lstm: forward, reverse and
// bidirectional, gates in the [input, forget, output, cell] ("ifoz") order,
// bias = input-hidden + hidden-hidden. Peepholes and clip are refused as
// UNIMPLEMENTED: the op definition does not pin down where they apply, and
// a guess could give a wrong answer.
// gru: forward or reverse, gates in the [reset, output, update] ("roz")
// order. `bias` is the hidden-side bias b_h and iOS18's `input_bias` the
// input side b_i (coremltools' iOS18 tests map PyTorch's bias_hh and
// bias_ih to them); the reset gate scales W_ho h alone (the iOS15 formula,
// o = act(W_io x + b_io + r * W_ho h + b_ho)) or, with iOS18's reset_after,
// W_ho h + b_ho (PyTorch's GRU). rnn: h = activation(W_ih x + W_hh h + b).
#include <cmath>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;

enum class Act { kSigmoid, kTanh, kRelu, kLinear };

absl::StatusOr<Act> ParseAct(const OpContext& ctx, const std::string& name) {
  if (name == "sigmoid") return Act::kSigmoid;
  if (name == "tanh") return Act::kTanh;
  if (name == "relu") return Act::kRelu;
  if (name == "linear") return Act::kLinear;
  if (name == "hard_sigmoid" || name == "scaled_tanh") {
    return absl::UnimplementedError(absl::StrCat(ctx.type(), ": activation '", name,
                                                 "' is not implemented by the reference executor"));
  }
  return ctx.Invalid(absl::StrCat("unknown activation '", name, "'"));
}

float Apply(Act a, float v) {
  switch (a) {
    case Act::kSigmoid: return 1.0f / (1.0f + std::exp(-v));
    case Act::kTanh: return std::tanh(v);
    case Act::kRelu: return v > 0 ? v : 0.0f;
    case Act::kLinear: return v;
  }
  return v;
}

struct Direction {
  const Tensor* w_ih;
  const Tensor* w_hh;
  const Tensor* bias;  // may be null
  bool reverse;
};

absl::StatusOr<std::vector<Tensor>> Lstm(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* h0, ctx.Input("initial_h"));
  ASSIGN_OR_RETURN(const Tensor* c0, ctx.Input("initial_c"));
  ASSIGN_OR_RETURN(std::string direction, ctx.String("direction", "forward"));
  ASSIGN_OR_RETURN(bool output_sequence, ctx.Bool("output_sequence", false));
  ASSIGN_OR_RETURN(std::string ra, ctx.String("recurrent_activation", "sigmoid"));
  ASSIGN_OR_RETURN(std::string ca, ctx.String("cell_activation", "tanh"));
  ASSIGN_OR_RETURN(std::string aa, ctx.String("activation", "tanh"));
  ASSIGN_OR_RETURN(Act recurrent_act, ParseAct(ctx, ra));
  ASSIGN_OR_RETURN(Act cell_act, ParseAct(ctx, ca));
  ASSIGN_OR_RETURN(Act out_act, ParseAct(ctx, aa));
  for (const char* name : {"peephole", "peephole_back", "clip"}) {
    if (ctx.Has(name)) {
      return absl::UnimplementedError(absl::StrCat("lstm: '", name, "' is not implemented by the reference executor"));
    }
  }
  if (x->rank() != 3 || !x->is_float()) return ctx.Invalid("x must be float [seq, batch, input]");
  const int64_t seq = x->dim(0), batch = x->dim(1), in = x->dim(2);
  std::vector<Direction> dirs;
  ASSIGN_OR_RETURN(const Tensor* w_ih, ctx.Input("weight_ih"));
  ASSIGN_OR_RETURN(const Tensor* w_hh, ctx.Input("weight_hh"));
  if (direction == "forward" || direction == "reverse") {
    dirs.push_back({w_ih, w_hh, ctx.Optional("bias"), direction == "reverse"});
  } else if (direction == "bidirectional") {
    ASSIGN_OR_RETURN(const Tensor* w_ih_b, ctx.Input("weight_ih_back"));
    ASSIGN_OR_RETURN(const Tensor* w_hh_b, ctx.Input("weight_hh_back"));
    dirs.push_back({w_ih, w_hh, ctx.Optional("bias"), false});
    dirs.push_back({w_ih_b, w_hh_b, ctx.Optional("bias_back"), true});
  } else {
    return ctx.Invalid(absl::StrCat("unknown direction '", direction, "'"));
  }
  const int64_t hidden = w_hh->rank() == 2 ? w_hh->dim(1) : -1;
  const int64_t nd = static_cast<int64_t>(dirs.size());
  for (const Direction& d : dirs) {
    if (d.w_ih->rank() != 2 || d.w_ih->dim(0) != 4 * hidden || d.w_ih->dim(1) != in || d.w_hh->rank() != 2 ||
        d.w_hh->dim(0) != 4 * hidden || d.w_hh->dim(1) != hidden || (d.bias && d.bias->size() != 4 * hidden)) {
      return ctx.Invalid("weights must be [4H, I] and [4H, H], bias [4H]");
    }
  }
  const Shape state_shape = {batch, nd * hidden};
  if (h0->shape() != state_shape || c0->shape() != state_shape) {
    return ctx.Invalid(absl::StrCat("initial_h and initial_c must be ", format::ShapeString(state_shape)));
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, {output_sequence ? seq : 1, batch, nd * hidden}));
  ASSIGN_OR_RETURN(Tensor h_final, Tensor::Allocate(DType::kFloat32, state_shape));
  ASSIGN_OR_RETURN(Tensor c_final, Tensor::Allocate(DType::kFloat32, state_shape));
  for (int64_t di = 0; di < nd; ++di) {
    const Direction& d = dirs[di];
    ConstMap wih(d.w_ih->floats().data(), 4 * hidden, in), whh(d.w_hh->floats().data(), 4 * hidden, hidden);
    // States per batch row, in float, like the rest of the executor.
    RowMatrix h(batch, hidden), c(batch, hidden);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < hidden; ++k) {
        h(b, k) = h0->floats()[b * nd * hidden + di * hidden + k];
        c(b, k) = c0->floats()[b * nd * hidden + di * hidden + k];
      }
    for (int64_t step = 0; step < seq; ++step) {
      const int64_t t = d.reverse ? seq - 1 - step : step;
      ConstMap xt(x->floats().data() + t * batch * in, batch, in);
      RowMatrix gates = xt * wih.transpose() + h * whh.transpose();  // [batch, 4H]
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t k = 0; k < hidden; ++k) {
          auto gate = [&](int g) { return gates(b, g * hidden + k) + (d.bias ? d.bias->floats()[g * hidden + k] : 0.0f); };
          const float i = Apply(recurrent_act, gate(0)), f = Apply(recurrent_act, gate(1));
          const float o = Apply(recurrent_act, gate(2)), z = Apply(cell_act, gate(3));
          c(b, k) = f * c(b, k) + i * z;
          h(b, k) = o * Apply(out_act, c(b, k));
        }
      }
      if (output_sequence) {
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t k = 0; k < hidden; ++k) out.mutable_floats()[(t * batch + b) * nd * hidden + di * hidden + k] = h(b, k);
      }
    }
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < hidden; ++k) {
        const int64_t o = b * nd * hidden + di * hidden + k;
        h_final.mutable_floats()[o] = h(b, k);
        c_final.mutable_floats()[o] = c(b, k);
        if (!output_sequence) out.mutable_floats()[o] = h(b, k);
      }
  }
  return Outputs(std::move(out), std::move(h_final), std::move(c_final));
}

// The inputs gru and rnn share: x [seq, batch, I], initial_h [batch, H],
// weight_ih [G*H, I], weight_hh [G*H, H], bias [G*H] for G gates.
struct SingleStateInputs {
  const Tensor* x;
  const Tensor* h0;
  const Tensor* w_ih;
  const Tensor* w_hh;
  const Tensor* bias;  // may be null
  bool reverse;
  bool output_sequence;
  int64_t seq, batch, in, hidden;
};

absl::StatusOr<SingleStateInputs> ReadSingleState(const OpContext& ctx, int64_t gates) {
  SingleStateInputs s;
  ASSIGN_OR_RETURN(s.x, ctx.Input("x"));
  ASSIGN_OR_RETURN(s.h0, ctx.Input("initial_h"));
  ASSIGN_OR_RETURN(s.w_ih, ctx.Input("weight_ih"));
  ASSIGN_OR_RETURN(s.w_hh, ctx.Input("weight_hh"));
  s.bias = ctx.Optional("bias");
  ASSIGN_OR_RETURN(std::string direction, ctx.String("direction", "forward"));
  ASSIGN_OR_RETURN(s.output_sequence, ctx.Bool("output_sequence", false));
  if (direction != "forward" && direction != "reverse") {
    return ctx.Invalid(absl::StrCat("direction must be forward or reverse, not '", direction, "'"));
  }
  s.reverse = direction == "reverse";
  if (s.x->rank() != 3 || !s.x->is_float()) return ctx.Invalid("x must be float [seq, batch, input]");
  s.seq = s.x->dim(0), s.batch = s.x->dim(1), s.in = s.x->dim(2);
  s.hidden = s.w_hh->rank() == 2 ? s.w_hh->dim(1) : -1;
  if (s.w_ih->rank() != 2 || s.w_ih->dim(0) != gates * s.hidden || s.w_ih->dim(1) != s.in || s.w_hh->rank() != 2 ||
      s.w_hh->dim(0) != gates * s.hidden || !s.w_ih->is_float() || !s.w_hh->is_float() ||
      (s.bias && (s.bias->size() != gates * s.hidden || !s.bias->is_float()))) {
    return ctx.Invalid(absl::StrCat("weights must be [", gates, "H, I] and [", gates, "H, H], bias [", gates, "H]"));
  }
  if (s.h0->shape() != Shape{s.batch, s.hidden} || !s.h0->is_float()) {
    return ctx.Invalid(absl::StrCat("initial_h must be ", format::ShapeString({s.batch, s.hidden})));
  }
  return s;
}

// Runs `step(gates_x, gates_h, h)` over the sequence, where gates_x = x_t
// W_ih^T + bias and gates_h = h W_hh^T ([batch, G*H] each) and `step`
// updates h in place; returns the (sequence or last) output and the final h.
template <typename Step>
absl::StatusOr<std::vector<Tensor>> RunSingleState(const SingleStateInputs& s, int64_t gates, Step step) {
  ConstMap wih(s.w_ih->floats().data(), gates * s.hidden, s.in), whh(s.w_hh->floats().data(), gates * s.hidden, s.hidden);
  RowMatrix h = ConstMap(s.h0->floats().data(), s.batch, s.hidden);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, {s.output_sequence ? s.seq : 1, s.batch, s.hidden}));
  for (int64_t i = 0; i < s.seq; ++i) {
    const int64_t t = s.reverse ? s.seq - 1 - i : i;
    ConstMap xt(s.x->floats().data() + t * s.batch * s.in, s.batch, s.in);
    RowMatrix gates_x = xt * wih.transpose();
    if (s.bias) gates_x.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(s.bias->floats().data(), gates * s.hidden);
    const RowMatrix gates_h = h * whh.transpose();
    step(gates_x, gates_h, h);
    if (s.output_sequence) Eigen::Map<RowMatrix>(out.mutable_floats().data() + t * s.batch * s.hidden, s.batch, s.hidden) = h;
  }
  // With no steps the output and the final state are the initial state.
  if (!s.output_sequence) Eigen::Map<RowMatrix>(out.mutable_floats().data(), s.batch, s.hidden) = h;
  Tensor h_final = Tensor::Float({s.batch, s.hidden}, std::vector<float>(h.data(), h.data() + h.size()));
  return Outputs(std::move(out), std::move(h_final));
}

absl::StatusOr<std::vector<Tensor>> Gru(const OpContext& ctx) {
  ASSIGN_OR_RETURN(bool reset_after, ctx.Bool("reset_after", false));
  ASSIGN_OR_RETURN(std::string ra, ctx.String("recurrent_activation", "sigmoid"));
  ASSIGN_OR_RETURN(std::string aa, ctx.String("activation", "tanh"));
  ASSIGN_OR_RETURN(Act recurrent_act, ParseAct(ctx, ra));
  ASSIGN_OR_RETURN(Act out_act, ParseAct(ctx, aa));
  ASSIGN_OR_RETURN(SingleStateInputs s, ReadSingleState(ctx, 3));
  const int64_t hidden = s.hidden;
  const Tensor* input_bias = ctx.Optional("input_bias");
  if (input_bias && (input_bias->size() != 3 * hidden || !input_bias->is_float())) {
    return ctx.Invalid("input_bias must be [3H] floating point");
  }
  // RunSingleState adds its bias to the input side; b_h is added here.
  const Tensor* hidden_bias = s.bias;
  s.bias = input_bias;
  auto hb = [&](int64_t gate, int64_t k) { return hidden_bias ? hidden_bias->floats()[gate * hidden + k] : 0.0f; };
  return RunSingleState(s, 3, [&](const RowMatrix& gx, const RowMatrix& gh, RowMatrix& h) {
    for (int64_t b = 0; b < h.rows(); ++b) {
      for (int64_t k = 0; k < hidden; ++k) {
        const float r = Apply(recurrent_act, gx(b, k) + gh(b, k) + hb(0, k));
        const float ho = gh(b, hidden + k);
        const float o = Apply(out_act, reset_after ? gx(b, hidden + k) + r * (ho + hb(1, k))
                                                   : gx(b, hidden + k) + r * ho + hb(1, k));
        const float z = Apply(recurrent_act, gx(b, 2 * hidden + k) + gh(b, 2 * hidden + k) + hb(2, k));
        h(b, k) = (1 - z) * o + z * h(b, k);
      }
    }
  });
}

absl::StatusOr<std::vector<Tensor>> Rnn(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::string aa, ctx.String("activation", "tanh"));
  ASSIGN_OR_RETURN(Act act, ParseAct(ctx, aa));
  ASSIGN_OR_RETURN(SingleStateInputs s, ReadSingleState(ctx, 1));
  return RunSingleState(s, 1, [&](const RowMatrix& gx, const RowMatrix& gh, RowMatrix& h) {
    h = (gx + gh).unaryExpr([&](float v) { return Apply(act, v); });
  });
}

}  // namespace

void RegisterRecurrentOps(OpRegistry* r) {
  r->Register("lstm", Lstm);
  r->Register("gru", Gru);
  r->Register("rnn", Rnn);
}

}  // namespace coremlz::execute
