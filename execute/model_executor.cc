// ProgramModelExecutor's incremental runs: ProgramExecutor's, behind the
// interface the planner uses for every kind of model.
#include "execute/model_executor.h"

#include "common/status_macros.h"

namespace coremlz::execute {
namespace {

struct ProgramKeptRun : ModelExecutor::KeptRun {
  ProgramExecutor::KeptRun run;
};

}  // namespace

absl::StatusOr<int> ProgramModelExecutor::WeightSlot(const std::string& weight) const {
  const int slot = program_->ConstantSlot(weight);
  if (slot < 0 || program_->UsesOf(slot).empty()) return -1;
  return slot;
}

std::shared_ptr<const Tensor> ProgramModelExecutor::WeightValue(int slot, const ModelExecutor& same_model) const {
  auto* other = dynamic_cast<const ProgramModelExecutor*>(&same_model);
  if (other == nullptr) return nullptr;
  const std::vector<ProgramExecutor::ArgumentRef> uses = program_->UsesOf(slot);
  if (uses.empty()) return nullptr;
  return other->program_->ConstantAt(uses[0]);
}

absl::StatusOr<std::unique_ptr<ModelExecutor::KeptRun>> ProgramModelExecutor::RunKeeping(
    const std::map<std::string, Tensor>& inputs, bool keep_intermediates) const {
  auto kept = std::make_unique<ProgramKeptRun>();
  ASSIGN_OR_RETURN(kept->run, program_->RunKeeping(inputs, keep_intermediates));
  kept->bytes = kept->run.bytes;
  return std::unique_ptr<KeptRun>(std::move(kept));
}

absl::StatusOr<std::map<std::string, Tensor>> ProgramModelExecutor::RunReplacing(
    const KeptRun& kept, const std::vector<WeightReplacement>& replacements, RunStats* stats) const {
  auto* mine = dynamic_cast<const ProgramKeptRun*>(&kept);
  if (mine == nullptr) return absl::InvalidArgumentError("the kept run comes from another kind of model");
  std::vector<ProgramExecutor::Replacement> r;
  r.reserve(replacements.size());
  for (const WeightReplacement& w : replacements) r.push_back({w.slot, w.value});
  return program_->RunReplacing(mine->run, r, stats);
}

}  // namespace coremlz::execute
