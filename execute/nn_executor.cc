#include "execute/nn_executor.h"

#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "format/neural_network_weights.h"

namespace coremlz::execute {
namespace {

namespace Spec = CoreML::Specification;

// The NeuralNetwork's layers and input mappings, whichever flavour holds
// them; for a classifier its class labels and the blob of class scores.
struct Network {
  const google::protobuf::RepeatedPtrField<Spec::NeuralNetworkLayer>* layers = nullptr;
  const google::protobuf::RepeatedPtrField<std::string>* preprocessing = nullptr;
  int array_mapping = 0;  // 0: rank 5, 1: exact
  int image_mapping = 0;  // 0: rank 5, 1: rank 4
  bool classifier = false;
  std::vector<std::string> string_labels;
  std::vector<int64_t> int_labels;
  std::string probability_blob;  // labelProbabilityLayerName ("" when unset)
};

absl::StatusOr<Network> NetworkOf(const Spec::Model& model) {
  Network n;
  if (model.has_neuralnetwork()) {
    const auto& nn = model.neuralnetwork();
    n = {&nn.layers(), &nn.preprocessing(), nn.arrayinputshapemapping(), nn.imageinputshapemapping()};
  } else if (model.has_neuralnetworkregressor()) {
    const auto& nn = model.neuralnetworkregressor();
    n = {&nn.layers(), &nn.preprocessing(), nn.arrayinputshapemapping(), nn.imageinputshapemapping()};
  } else if (model.has_neuralnetworkclassifier()) {
    const auto& nn = model.neuralnetworkclassifier();
    n = {&nn.layers(), &nn.preprocessing(), nn.arrayinputshapemapping(), nn.imageinputshapemapping()};
    n.classifier = true;
    n.string_labels.assign(nn.stringclasslabels().vector().begin(), nn.stringclasslabels().vector().end());
    n.int_labels.assign(nn.int64classlabels().vector().begin(), nn.int64classlabels().vector().end());
    if (n.string_labels.empty() == n.int_labels.empty()) {
      return absl::InvalidArgumentError("a NeuralNetworkClassifier needs either string or int64 class labels");
    }
    for (int64_t label : n.int_labels) {
      // Integers run as int32 (tensor.h).
      if (label < std::numeric_limits<int32_t>::min() || label > std::numeric_limits<int32_t>::max()) {
        return absl::UnimplementedError(absl::StrCat("class label ", label, " does not fit in int32; not executed yet"));
      }
    }
    n.probability_blob = nn.labelprobabilitylayername();
  } else {
    return absl::InvalidArgumentError("the model holds no NeuralNetwork");
  }
  return n;
}

// Decoded weights by layer name, then field.
using LayerWeights = absl::flat_hash_map<std::string, std::map<std::string, Tensor>>;

absl::StatusOr<LayerWeights> DecodeWeights(const Spec::Model& model) {
  // The lister points into a mutable model; a copy keeps `model` const.
  Spec::Model copy = model;
  ASSIGN_OR_RETURN(std::vector<format::NeuralNetworkWeight> listed, format::ListNeuralNetworkWeights(&copy));
  LayerWeights out;
  for (const format::NeuralNetworkWeight& w : listed) {
    absl::StatusOr<std::vector<float>> values = format::DecodeWeightParams(w);
    if (!values.ok()) {
      return absl::Status(values.status().code(), absl::StrCat("layer '", w.layer, "' (", w.layer_type, ") ", w.field,
                                                               ": ", values.status().message()));
    }
    const int64_t n = static_cast<int64_t>(values->size());
    out[w.layer][w.field] = Tensor::Float({n}, *std::move(values));
  }
  return out;
}

// The layer's type (the `layer` oneof member set) and its parameters.
absl::Status ReadLayer(const Spec::NeuralNetworkLayer& layer, NnLayerSpec* spec) {
  ASSIGN_OR_RETURN(WireMessage whole, WireMessage::Parse(layer.SerializeAsString()));
  // The oneof's members are numbered from 100 up; below are name, inputs,
  // outputs and tensor shapes.
  const std::vector<int> members = whole.LengthDelimitedIn(100, 1 << 20);
  if (members.empty()) return spec->Invalid("sets no layer type");
  const int number = members.back();
  spec->type = NnLayerTypeName(number);
  ASSIGN_OR_RETURN(spec->params, whole.Message(number));
  return absl::OkStatus();
}

std::string ShapeText(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&out, i ? ", " : "", s[i]);
  return out + "]";
}

}  // namespace

absl::StatusOr<std::unique_ptr<NnExecutor>> NnExecutor::Load(const Spec::Model& model) {
  ASSIGN_OR_RETURN(Network net, NetworkOf(model));
  std::unique_ptr<NnExecutor> e(new NnExecutor());
  absl::flat_hash_map<std::string, int> slots;  // blob name -> current slot
  auto new_slot = [&](const std::string& name) { return slots[name] = e->slot_count_++; };

  for (const Spec::FeatureDescription& f : model.description().input()) {
    InputDecl decl;
    decl.name = f.name();
    Input in;
    if (f.type().has_imagetype()) {
      const Spec::ImageFeatureType& image = f.type().imagetype();
      ASSIGN_OR_RETURN(const int64_t channels, ImageChannels(image));
      if (image.height() <= 0 || image.width() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("image input '", f.name(), "' has no size"));
      }
      decl.shape = {1, channels, image.height(), image.width()};
      in.network_shape = net.image_mapping == 1 ? decl.shape : Shape{1, 1, channels, image.height(), image.width()};
      in.image = true;
      ASSIGN_OR_RETURN(in.preprocess, ReadImagePreprocess(*net.preprocessing, f.name(), image));
    } else if (f.type().has_multiarraytype()) {
      const auto& array = f.type().multiarraytype();
      decl.shape.assign(array.shape().begin(), array.shape().end());
      if (net.array_mapping == 1) {
        in.network_shape = decl.shape;
      } else if (decl.shape.size() == 1) {
        in.network_shape = {1, 1, decl.shape[0], 1, 1};
      } else if (decl.shape.size() == 3) {
        in.network_shape = {1, 1, decl.shape[0], decl.shape[1], decl.shape[2]};
      } else {
        return absl::InvalidArgumentError(absl::StrCat("input '", f.name(), "' has shape ", ShapeText(decl.shape),
                                                       "; the rank-5 mapping takes [C] or [C, H, W]"));
      }
    } else {
      return absl::UnimplementedError(
          absl::StrCat("input '", f.name(), "' is neither an image nor a multi-array; not executed yet"));
    }
    in.slot = new_slot(f.name());
    e->inputs_.push_back(std::move(decl));
    e->input_bindings_.push_back(std::move(in));
  }

  ASSIGN_OR_RETURN(LayerWeights weights, DecodeWeights(model));
  const auto& builders = NnLayerBuilders();
  int index = 0;
  for (const Spec::NeuralNetworkLayer& layer : *net.layers) {
    NnLayerSpec spec;
    spec.name = layer.name();
    spec.index = index++;
    spec.type = "?";
    RETURN_IF_ERROR(ReadLayer(layer, &spec));
    spec.input_count = layer.input_size();
    spec.output_count = layer.output_size();
    auto w = weights.find(layer.name());
    if (w != weights.end()) {
      spec.weights = std::move(w->second);
      weights.erase(w);
    }
    auto builder = builders.find(spec.type);
    if (builder == builders.end()) return spec.Unimplemented("this layer type");
    RETURN_IF_ERROR(CheckNnLayerInputs(spec));
    RETURN_IF_ERROR(CheckNnLayerOutputs(spec));
    ASSIGN_OR_RETURN(NnKernel kernel, builder->second(spec));
    Step step;
    step.label = spec;
    step.kernel = std::move(kernel);
    if (!spec.weights.empty()) {
      const int at = static_cast<int>(e->steps_.size());
      for (const auto& [field, value] : spec.weights) {
        const std::string weight = absl::StrCat(spec.name, ".", field);
        auto [it, fresh] = e->weight_slots_.emplace(weight, static_cast<int>(e->weight_refs_.size()));
        if (fresh) {
          e->weight_refs_.push_back({at, field});
        } else {
          it->second = -1;
        }
      }
      step.builder = builder->second;
    }
    for (const std::string& name : layer.input()) {
      auto s = slots.find(name);
      if (s == slots.end()) return spec.Invalid(absl::StrCat("reads '", name, "', which nothing before it produces"));
      step.inputs.push_back(s->second);
    }
    if (step.builder != nullptr) step.spec = std::make_shared<const NnLayerSpec>(std::move(spec));
    for (const std::string& name : layer.output()) step.outputs.push_back(new_slot(name));
    e->steps_.push_back(std::move(step));
  }

  // A classifier's class scores: the blob labelProbabilityLayerName names,
  // else the one named as the probabilities output, else the last layer's.
  int scores = -1;
  if (net.classifier) {
    const std::string& named =
        !net.probability_blob.empty() ? net.probability_blob : model.description().predictedprobabilitiesname();
    auto s = slots.find(named);
    if (s != slots.end()) {
      scores = s->second;
    } else if (!net.probability_blob.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("labelProbabilityLayerName '", net.probability_blob, "' is produced by no layer"));
    } else if (!e->steps_.empty()) {
      scores = e->steps_.back().outputs[0];
    } else {
      return absl::InvalidArgumentError("the classifier has no layer to give its class scores");
    }
    e->string_labels_ = net.string_labels;
    e->int_labels_ = net.int_labels;
  }

  for (const Spec::FeatureDescription& f : model.description().output()) {
    Output out;
    if (net.classifier && f.name() == model.description().predictedfeaturename()) {
      if (!f.type().has_stringtype() && !f.type().has_int64type()) {
        return absl::InvalidArgumentError(absl::StrCat("class label output '", f.name(), "' is not a string or int64"));
      }
      if (f.type().has_stringtype() != !net.string_labels.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("class label output '", f.name(), "' is not of the class labels' type"));
      }
      out.kind = Output::kLabel;
      out.slot = scores;
    } else if (net.classifier && f.name() == model.description().predictedprobabilitiesname()) {
      if (!f.type().has_dictionarytype()) {
        return absl::InvalidArgumentError(absl::StrCat("class probability output '", f.name(), "' is not a dictionary"));
      }
      out.kind = Output::kScores;
      out.slot = scores;
    } else {
      auto s = slots.find(f.name());
      if (s == slots.end()) {
        return absl::InvalidArgumentError(absl::StrCat("output '", f.name(), "' is produced by no layer"));
      }
      out.slot = s->second;
      if (f.type().has_multiarraytype()) {
        out.described.assign(f.type().multiarraytype().shape().begin(), f.type().multiarraytype().shape().end());
      } else if (!f.type().has_imagetype()) {
        return absl::UnimplementedError(
            absl::StrCat("output '", f.name(), "' is neither a multi-array nor an image; not executed yet"));
      }
    }
    e->output_names_.push_back(f.name());
    e->outputs_.push_back(out);
  }

  // Free each blob after the last step that reads it (outputs never).
  std::vector<int> last_use(e->slot_count_, -1);
  for (size_t i = 0; i < e->steps_.size(); ++i) {
    for (int s : e->steps_[i].inputs) last_use[s] = static_cast<int>(i);
  }
  for (const Output& o : e->outputs_) last_use[o.slot] = -1;
  for (int s = 0; s < e->slot_count_; ++s) {
    if (last_use[s] >= 0) e->steps_[last_use[s]].last_uses.push_back(s);
  }
  return e;
}

absl::StatusOr<Tensor> NnExecutor::ClassifierOutput(const Output& o, const Tensor& scores,
                                                    const std::string& name) const {
  const int64_t classes = static_cast<int64_t>(string_labels_.empty() ? int_labels_.size() : string_labels_.size());
  if (!scores.is_float() || scores.size() != classes) {
    return absl::InvalidArgumentError(absl::StrCat("output '", name, "': the class scores hold ", scores.size(),
                                                   " values for ", classes, " class labels"));
  }
  if (o.kind == Output::kScores) return Tensor::Float({classes}, {scores.floats().begin(), scores.floats().end()});
  // The label of the highest score (the first of equal ones).
  const int64_t best = std::max_element(scores.floats().begin(), scores.floats().end()) - scores.floats().begin();
  if (!string_labels_.empty()) return Tensor::String({}, {string_labels_[best]});
  return Tensor::Int({}, {static_cast<int32_t>(int_labels_[best])});
}

absl::StatusOr<std::vector<std::pair<int, Tensor>>> NnExecutor::BindInputs(
    const std::map<std::string, Tensor>& inputs) const {
  std::vector<std::pair<int, Tensor>> bound;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const InputDecl& decl = inputs_[i];
    const Input& bind = input_bindings_[i];
    auto it = inputs.find(decl.name);
    if (it == inputs.end()) return absl::InvalidArgumentError(absl::StrCat("input '", decl.name, "' is missing"));
    const Tensor& given = it->second;
    if (given.shape() != decl.shape && given.shape() != bind.network_shape) {
      return absl::InvalidArgumentError(absl::StrCat("input '", decl.name, "' has shape ", ShapeText(given.shape()),
                                                     "; the model takes ", ShapeText(decl.shape)));
    }
    Tensor x;
    if (given.is_float()) {
      x = given;
    } else if (given.is_integer_storage()) {
      std::vector<float> v(given.ints().begin(), given.ints().end());
      x = Tensor::Float(given.shape(), std::move(v));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("input '", decl.name, "' is not numeric"));
    }
    x.Reshape(bind.network_shape);
    if (bind.image) RETURN_IF_ERROR(ApplyImagePreprocess(bind.preprocess, &x));
    bound.emplace_back(bind.slot, std::move(x));
  }
  return bound;
}

absl::StatusOr<Tensor> NnExecutor::OutputValue(size_t i, Tensor* blob, bool last) const {
  const Output& o = outputs_[i];
  if (o.kind != Output::kBlob) return ClassifierOutput(o, *blob, output_names_[i]);
  Tensor t = last ? std::move(*blob) : *blob;
  if (!o.described.empty() && NumElements(o.described) == t.size()) t.Reshape(o.described);
  return t;
}

absl::StatusOr<std::map<std::string, Tensor>> NnExecutor::Run(const std::map<std::string, Tensor>& inputs,
                                                              RunStats* stats) const {
  std::vector<Tensor> values(slot_count_);
  std::vector<bool> present(slot_count_, false);
  // Blobs the layers made, for the peak (inputs are not counted, as for
  // ML Programs).
  std::vector<bool> counted(slot_count_, false);
  int64_t live = 0, live_bytes = 0, peak = 0, peak_bytes = 0;
  ASSIGN_OR_RETURN(auto bound, BindInputs(inputs));
  for (auto& [slot, x] : bound) {
    values[slot] = std::move(x);
    present[slot] = true;
  }
  RunStats intermediates;  // only the largest-two tracking is used
  std::vector<const Tensor*> args;
  for (const Step& step : steps_) {
    args.clear();
    for (int s : step.inputs) {
      if (!present[s]) return step.label.Invalid("reads a blob that was not computed");
      args.push_back(&values[s]);
    }
    ASSIGN_OR_RETURN(std::vector<Tensor> results, step.kernel(args));
    if (results.size() != step.outputs.size()) return step.label.Invalid("produced the wrong number of outputs");
    for (size_t k = 0; k < results.size(); ++k) {
      const int s = step.outputs[k];
      if (counted[s]) live_bytes -= values[s].size() * 4, --live;
      values[s] = std::move(results[k]);
      present[s] = counted[s] = true;
      ++live;
      live_bytes += values[s].size() * 4;
      intermediates.NoteIntermediate(static_cast<int64_t>(values[s].size()) * 4);
    }
    peak = std::max(peak, live);
    peak_bytes = std::max(peak_bytes, live_bytes);
    for (int s : step.last_uses) {
      if (counted[s]) live_bytes -= values[s].size() * 4, --live;
      values[s] = Tensor();
      present[s] = counted[s] = false;
    }
    if (stats != nullptr && stats->after_op) {
      stats->after_op(absl::StrCat("layer ", step.label.index, " '", step.label.name, "' (", step.label.type, ")"),
                      live_bytes);
    }
  }
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const Output& o = outputs_[i];
    if (!present[o.slot]) {
      return absl::InvalidArgumentError(absl::StrCat("output '", output_names_[i], "' was not computed"));
    }
    // Moved out unless a later output reads the same blob.
    bool again = false;
    for (size_t j = i + 1; j < outputs_.size(); ++j) again = again || outputs_[j].slot == o.slot;
    ASSIGN_OR_RETURN(out[output_names_[i]], OutputValue(i, &values[o.slot], !again));
  }
  if (stats != nullptr) {
    stats->ops_run = static_cast<int64_t>(steps_.size());
    stats->peak_live_tensors = peak;
    stats->peak_live_bytes = peak_bytes;
    stats->largest_intermediate_bytes = intermediates.largest_intermediate_bytes;
    stats->second_largest_intermediate_bytes = intermediates.second_largest_intermediate_bytes;
  }
  return out;
}

}  // namespace coremlz::execute
