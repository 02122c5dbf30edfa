#include "execute/label_scores.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "execute/nn_layer.h"
#include "execute/nn_wire.h"
#include "execute/program_executor.h"

namespace coremlz::execute {
namespace {

namespace MIL = CoreML::Specification::MILSpec;

// The single named value bound to `input` of `op`, "" if it is not one name.
std::string NamedArgument(const MIL::Operation& op, const std::string& input) {
  auto it = op.inputs().find(input);
  if (it == op.inputs().end() || it->second.arguments_size() != 1) return "";
  const MIL::Argument::Binding& b = it->second.arguments(0);
  return b.binding_case() == MIL::Argument::Binding::kName ? b.name() : "";
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ScoresOfLabelOutputs(const MIL::Program& program,
                                                                         const std::string& function) {
  auto executed = FindExecutedBlock(program, function);
  if (!executed.ok()) return executed.status();
  const MIL::Block& block = *executed->block;
  std::map<std::string, const MIL::Operation*> producer;
  for (const MIL::Operation& op : block.operations()) {
    for (const MIL::NamedValueType& o : op.outputs()) producer[o.name()] = &op;
  }
  std::map<std::string, std::string> scores;
  for (const std::string& output : block.outputs()) {
    std::string value = output;
    // A cast chain is at most as long as the block; the bound guards a cycle
    // in a malformed program.
    for (int hops = 0; hops <= block.operations_size(); ++hops) {
      auto it = producer.find(value);
      if (it == producer.end()) break;
      const MIL::Operation& op = *it->second;
      if (op.type() == "cast") {
        value = NamedArgument(op, "x");
        if (value.empty()) break;
        continue;
      }
      if (op.type() == "reduce_argmax" || op.type() == "reduce_argmin") {
        const std::string x = NamedArgument(op, "x");
        if (!x.empty()) scores[output] = x;
      }
      break;
    }
  }
  return scores;
}

std::map<std::string, std::string> NnScoresOfLabelOutputs(const CoreML::Specification::Model& model) {
  const google::protobuf::RepeatedPtrField<CoreML::Specification::NeuralNetworkLayer>* layers = nullptr;
  if (model.has_neuralnetwork()) layers = &model.neuralnetwork().layers();
  if (model.has_neuralnetworkclassifier()) layers = &model.neuralnetworkclassifier().layers();
  if (model.has_neuralnetworkregressor()) layers = &model.neuralnetworkregressor().layers();
  std::map<std::string, std::string> scores;
  if (layers == nullptr) return scores;
  for (const auto& output : model.description().output()) {
    for (const auto& layer : *layers) {
      if (layer.output_size() != 1 || layer.output(0) != output.name() || layer.input_size() < 1) continue;
      absl::StatusOr<WireMessage> whole = WireMessage::Parse(layer.SerializeAsString());
      if (!whole.ok()) continue;  // the executor's load reports a malformed layer
      const std::vector<int> members = whole->LengthDelimitedIn(100, 1 << 20);
      if (!members.empty() && NnLayerTypeName(members.back()) == "argMax") scores[output.name()] = layer.input(0);
    }
  }
  return scores;
}

absl::StatusOr<MIL::Program> WithExtraOutputs(const MIL::Program& program, const std::string& function,
                                              const std::map<std::string, std::string>& values,
                                              std::vector<std::string>* appended) {
  auto executed = FindExecutedBlock(program, function);
  if (!executed.ok()) return executed.status();
  MIL::Program copy = program;
  auto* outputs =
      (*copy.mutable_functions())[function].mutable_block_specializations()->at(executed->key).mutable_outputs();
  for (const auto& [output, value] : values) {
    if (std::find(outputs->begin(), outputs->end(), value) != outputs->end()) continue;
    *outputs->Add() = value;
    if (appended) appended->push_back(value);
  }
  return copy;
}

}  // namespace coremlz::execute
