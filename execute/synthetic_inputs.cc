#include "execute/synthetic_inputs.h"

#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"

namespace coremlz::execute {
namespace {

namespace Spec = CoreML::Specification;
namespace MIL = CoreML::Specification::MILSpec;

const Spec::FeatureDescription* Described(const Spec::Model& model, const std::string& name) {
  for (const auto& f : model.description().input()) {
    if (f.name() == name) return &f;
  }
  for (const auto& fn : model.description().functions()) {
    for (const auto& f : fn.input()) {
      if (f.name() == name) return &f;
    }
  }
  return nullptr;
}

// Every named value's static shape in the program (op outputs), for the
// gather analysis: -1 where unknown.
void CollectShapes(const MIL::Block& block, std::map<std::string, Shape>* shapes) {
  for (const MIL::Operation& op : block.operations()) {
    for (const MIL::NamedValueType& out : op.outputs()) {
      if (!out.type().has_tensortype()) continue;
      Shape s;
      for (const MIL::Dimension& d : out.type().tensortype().dimensions()) {
        s.push_back(d.has_constant() ? static_cast<int64_t>(d.constant().size()) : -1);
      }
      (*shapes)[out.name()] = s;
    }
    for (const MIL::Block& nested : op.blocks()) CollectShapes(nested, shapes);
  }
}

// The size of the axis a gather-like op indexes with `input`, if any.
void GatherLimits(const MIL::Block& block, const std::map<std::string, Shape>& shapes,
                  std::map<std::string, int64_t>* limits) {
  for (const MIL::Operation& op : block.operations()) {
    const std::string& type = op.type();
    if (type == "gather" || type == "gather_along_axis" || type == "embedding") {
      auto idx = op.inputs().find("indices");
      auto x = op.inputs().find(type == "embedding" ? "weight" : "x");
      if (idx != op.inputs().end() && x != op.inputs().end() && idx->second.arguments_size() == 1 &&
          x->second.arguments_size() == 1 && !idx->second.arguments(0).name().empty()) {
        int64_t axis = 0;
        auto ax = op.inputs().find("axis");
        if (ax != op.inputs().end() && ax->second.arguments_size() == 1 && ax->second.arguments(0).has_value()) {
          const auto& v = ax->second.arguments(0).value();
          if (v.has_immediatevalue() && v.immediatevalue().has_tensor() && v.immediatevalue().tensor().has_ints() &&
              v.immediatevalue().tensor().ints().values_size() == 1) {
            axis = v.immediatevalue().tensor().ints().values(0);
          }
        }
        auto s = shapes.find(x->second.arguments(0).name());
        if (s != shapes.end() && !s->second.empty()) {
          if (axis < 0) axis += static_cast<int64_t>(s->second.size());
          if (axis >= 0 && axis < static_cast<int64_t>(s->second.size()) && s->second[axis] > 0) {
            const std::string& name = idx->second.arguments(0).name();
            auto [it, fresh] = limits->emplace(name, s->second[axis]);
            if (!fresh) it->second = std::min(it->second, s->second[axis]);
          }
        }
      }
    }
    for (const MIL::Block& nested : op.blocks()) GatherLimits(nested, shapes, limits);
  }
}

// Inputs that reach log, sqrt, rsqrt or a fractional pow through ops that
// keep a non-negative value non-negative (adding or multiplying by a
// constant, reshaping, slicing, ...): magnitudes and power spectra, which
// N(0, 1) would turn into NaNs (DTLN: log(mic_magnitude + eps)).
void NonNegativeInputs(const MIL::Block& block, std::map<std::string, std::string>* origin,
                       std::set<std::string>* inputs) {
  static const std::set<std::string> kKeeps = {"add", "mul", "real_div", "maximum", "identity", "reshape", "transpose",
                                                "expand_dims", "squeeze", "slice_by_index", "slice_by_size", "cast",
                                                "abs", "square", "concat", "split", "tile", "clip", "relu"};
  static const std::set<std::string> kNeeds = {"log", "sqrt", "rsqrt", "pow"};
  for (const MIL::Operation& op : block.operations()) {
    // A value of this op's inputs that comes from a model input.
    std::string from;
    for (const auto& [name, arg] : op.inputs()) {
      for (const auto& b : arg.arguments()) {
        auto it = origin->find(b.name());
        if (!b.name().empty() && it != origin->end()) from = it->second;
      }
    }
    if (!from.empty() && kNeeds.count(op.type())) inputs->insert(from);
    if (!from.empty() && kKeeps.count(op.type())) {
      for (const MIL::NamedValueType& out : op.outputs()) (*origin)[out.name()] = from;
    }
    for (const MIL::Block& nested : op.blocks()) NonNegativeInputs(nested, origin, inputs);
  }
}

// A smooth image with mild noise: recognisable structure for a model that
// expects pixels, reproducible from the generator.
void FillImage(const Shape& shape, std::mt19937_64& rng, std::vector<float>* v) {
  const int64_t w = shape.empty() ? 1 : shape.back();
  const int64_t h = shape.size() >= 2 ? shape[shape.size() - 2] : 1;
  std::normal_distribution<float> noise(0.f, 6.f);
  std::uniform_real_distribution<float> phase(0.f, 6.2831853f);
  const float p = phase(rng);
  for (size_t i = 0; i < v->size(); ++i) {
    const int64_t x = static_cast<int64_t>(i) % w, y = (static_cast<int64_t>(i) / w) % h;
    const int64_t plane = static_cast<int64_t>(i) / (w * h);
    const float base = 127.5f + 90.f * std::sin(p + 0.05f * x + 0.9f * plane) * std::cos(0.04f * y);
    (*v)[i] = std::clamp(base + noise(rng), 0.f, 255.f);
  }
}

}  // namespace

absl::StatusOr<std::vector<InputSpec>> DescribeInputs(const Spec::Model& model, const std::string& function,
                                                      const std::vector<InputDecl>& inputs) {
  std::map<std::string, int64_t> limits;
  std::set<std::string> non_negative;
  if (model.has_mlprogram()) {
    auto fn = model.mlprogram().functions().find(function);
    if (fn != model.mlprogram().functions().end()) {
      for (const auto& [key, block] : fn->second.block_specializations()) {
        std::map<std::string, Shape> shapes;
        CollectShapes(block, &shapes);
        GatherLimits(block, shapes, &limits);
        std::map<std::string, std::string> origin;
        for (const InputDecl& in : inputs) origin[in.name] = in.name;
        NonNegativeInputs(block, &origin, &non_negative);
      }
    }
  }
  std::vector<InputSpec> specs;
  for (const InputDecl& in : inputs) {
    if (in.is_state) continue;
    InputSpec spec;
    spec.name = in.name;
    spec.dtype = in.dtype;
    spec.shape = in.shape;
    const Spec::FeatureDescription* d = Described(model, in.name);
    if (d != nullptr && d->type().has_multiarraytype() && d->type().multiarraytype().shape_size() == static_cast<int>(spec.shape.size())) {
      // The description's shape is the default of a flexible input.
      for (int i = 0; i < d->type().multiarraytype().shape_size(); ++i) {
        if (spec.shape[i] < 0) spec.shape[i] = d->type().multiarraytype().shape(i);
      }
    }
    for (int64_t& dim : spec.shape) {
      if (dim < 0) {
        return absl::InvalidArgumentError(absl::StrCat("input '", in.name,
                                                       "' has a flexible shape with no default; pass it with --inputs"));
      }
    }
    if (absl::Status s = CheckShape(spec.shape); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("input '", in.name, "': ", s.message()));
    }
    if (d != nullptr && d->type().has_imagetype()) {
      spec.image = true;
      spec.note = "image pixels in [0, 255]";
    } else if (spec.dtype == DType::kInt32) {
      auto l = limits.find(in.name);
      spec.int_limit = l != limits.end() ? static_cast<int32_t>(std::min<int64_t>(l->second, INT32_MAX)) : 16;
      spec.note = l != limits.end() ? absl::StrCat("indices in [0, ", spec.int_limit, ") of the gather it feeds")
                                    : "integers in [0, 16)";
    } else if (spec.dtype == DType::kBool) {
      spec.note = "random booleans";
    } else if (non_negative.count(in.name)) {
      spec.non_negative = true;
      spec.note = "|N(0, 1)| (it reaches a log or sqrt)";
    } else {
      spec.note = "N(0, 1)";
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::map<std::string, Tensor> SyntheticInputs(const std::vector<InputSpec>& specs, uint64_t seed, int index) {
  std::map<std::string, Tensor> out;
  for (size_t k = 0; k < specs.size(); ++k) {
    const InputSpec& s = specs[k];
    // One generator per (seed, sample, input): adding an input or a sample
    // never changes the others.
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(index),
                      static_cast<uint32_t>(k)};
    std::mt19937_64 rng(seq);
    const int64_t n = NumElements(s.shape);
    if (s.dtype == DType::kFloat32) {
      std::vector<float> v(static_cast<size_t>(n));
      if (s.image) {
        FillImage(s.shape, rng, &v);
      } else {
        std::normal_distribution<float> normal(0.f, 1.f);
        for (float& x : v) x = s.non_negative ? std::fabs(normal(rng)) : normal(rng);
      }
      out[s.name] = Tensor::Float(s.shape, std::move(v));
    } else {
      std::vector<int32_t> v(static_cast<size_t>(n));
      std::uniform_int_distribution<int32_t> pick(0, s.dtype == DType::kBool ? 1 : std::max(1, s.int_limit) - 1);
      for (int32_t& x : v) x = pick(rng);
      out[s.name] = s.dtype == DType::kBool ? Tensor::Bool(s.shape, std::move(v)) : Tensor::Int(s.shape, std::move(v));
    }
  }
  return out;
}

}  // namespace coremlz::execute
