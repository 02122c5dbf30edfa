#include "api/plan_convert.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::api {
namespace {

v1::PlanQuantities ToProto(const plan::PlanQuantities& q) {
  v1::PlanQuantities p;
  p.set_model_bytes(q.model_bytes);
  p.set_weight_bytes(q.weight_bytes);
  p.set_bits_per_weight(q.bits_per_weight);
  p.set_psnr_db(q.psnr_db);
  return p;
}

plan::PlanQuantities FromProto(const v1::PlanQuantities& p) {
  plan::PlanQuantities q;
  q.model_bytes = p.model_bytes();
  q.weight_bytes = p.weight_bytes();
  q.bits_per_weight = p.bits_per_weight();
  q.psnr_db = p.psnr_db();
  return q;
}

v1::PlanParetoPoint ToProto(const plan::ParetoPoint& pt) {
  v1::PlanParetoPoint p;
  *p.mutable_predicted() = ToProto(pt.predicted);
  p.set_measured_psnr_db(pt.measured_psnr_db);
  return p;
}

plan::ParetoPoint FromProto(const v1::PlanParetoPoint& p) {
  plan::ParetoPoint pt;
  pt.predicted = FromProto(p.predicted());
  pt.measured_psnr_db = p.measured_psnr_db();
  return pt;
}

v1::PlanUniformComparison ToProto(const plan::UniformComparison& u) {
  v1::PlanUniformComparison p;
  p.set_candidate(u.candidate);
  p.set_candidate_index(u.candidate_index);
  p.set_weights_kept(u.weights_kept);
  *p.mutable_uniform() = ToProto(u.uniform);
  *p.mutable_plan() = ToProto(u.plan);
  p.set_alone_psnr_lo_db(u.alone_psnr_lo_db);
  p.set_alone_psnr_hi_db(u.alone_psnr_hi_db);
  return p;
}

absl::StatusOr<plan::UniformComparison> FromProto(const v1::PlanUniformComparison& p, int candidates) {
  if (p.candidate_index() < 0 || p.candidate_index() >= candidates) {
    return absl::InvalidArgumentError(absl::StrCat("the plan's uniform comparison of \"", p.candidate(),
                                                   "\" names candidate ", p.candidate_index(), " of ", candidates));
  }
  plan::UniformComparison u;
  u.candidate = p.candidate();
  u.candidate_index = p.candidate_index();
  u.weights_kept = p.weights_kept();
  u.uniform = FromProto(p.uniform());
  u.plan = FromProto(p.plan());
  u.alone_psnr_lo_db = p.alone_psnr_lo_db();
  u.alone_psnr_hi_db = p.alone_psnr_hi_db();
  return u;
}

}  // namespace

v1::PlanTarget ToProto(const plan::PlanTarget& target) {
  v1::PlanTarget p;
  switch (target.kind) {
    case plan::PlanTarget::Kind::kSize: p.set_kind(v1::PlanTarget::SIZE); break;
    case plan::PlanTarget::Kind::kBits: p.set_kind(v1::PlanTarget::BITS); break;
    case plan::PlanTarget::Kind::kMinPsnr: p.set_kind(v1::PlanTarget::MIN_PSNR); break;
  }
  p.set_value(target.value);
  return p;
}

absl::StatusOr<plan::PlanTarget> FromProto(const v1::PlanTarget& target) {
  plan::PlanTarget t;
  switch (target.kind()) {
    case v1::PlanTarget::SIZE: t.kind = plan::PlanTarget::Kind::kSize; break;
    case v1::PlanTarget::BITS: t.kind = plan::PlanTarget::Kind::kBits; break;
    case v1::PlanTarget::MIN_PSNR: t.kind = plan::PlanTarget::Kind::kMinPsnr; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("the plan's target kind must be SIZE, BITS or MIN_PSNR, not ", static_cast<int>(target.kind())));
  }
  t.value = target.value();
  return t;
}

v1::PlanResult ToProto(const plan::PlanResult& r) {
  v1::PlanResult p;
  p.set_model(r.model);
  *p.mutable_target() = ToProto(r.target);
  for (const std::string& c : r.candidates) p.add_candidates(c);
  for (const std::string& c : r.dropped_candidates) p.add_dropped_candidates(c);
  for (const std::string& w : r.left_out_weights) p.add_left_out_weights(w);
  p.set_samples(r.samples);
  p.set_seed(r.seed);
  p.set_function(r.function);
  p.set_original_model_bytes(r.original_model_bytes);
  p.set_kept_activations(r.kept_activations);
  for (const std::string& o : r.measured_outputs) p.add_measured_outputs(o);
  p.set_trials_run(r.trials_run);
  p.set_trials_pruned(r.trials_pruned);
  for (const plan::WeightPlan& w : r.weights) {
    v1::PlanWeight* pw = p.add_weights();
    pw->set_name(w.name);
    for (const std::string& c : w.consumers) pw->add_consumers(c);
    pw->set_elements(w.elements);
    pw->set_bytes_before(w.bytes_before);
    for (const plan::CandidateOutcome& o : w.outcomes) {
      v1::PlanCandidateOutcome* po = pw->add_outcomes();
      po->set_status(o.status);
      po->set_bytes(o.bytes);
      po->set_weight_snr_db(o.weight_snr_db);
      po->set_measured(o.measured);
      po->set_output_psnr_db(o.output_psnr_db);
      po->set_mean_noise(o.mean_noise);
    }
    pw->set_chosen(w.chosen);
  }
  for (const plan::PlanRound& round : r.rounds) {
    v1::PlanRound* pr = p.add_rounds();
    pr->set_goal(round.goal);
    *pr->mutable_predicted() = ToProto(round.predicted);
    *pr->mutable_measured() = ToProto(round.measured);
    pr->set_met(round.met);
  }
  *p.mutable_predicted() = ToProto(r.predicted);
  *p.mutable_measured() = ToProto(r.measured);
  for (const plan::ParetoPoint& pt : r.pareto) *p.add_pareto() = ToProto(pt);
  for (const plan::UniformComparison& u : r.uniform) *p.add_uniform() = ToProto(u);
  for (const plan::Readmission& a : r.readmitted) {
    v1::PlanReadmission* pa = p.add_readmitted();
    *pa->mutable_evidence() = ToProto(a.evidence);
    pa->set_trials(a.trials);
  }
  p.set_seconds(r.seconds);
  p.set_study_seconds(r.study_seconds);
  p.set_trial_seconds(r.trial_seconds);
  p.set_compare_seconds(r.compare_seconds);
  p.set_round_seconds(r.round_seconds);
  p.set_pareto_seconds(r.pareto_seconds);
  return p;
}

absl::StatusOr<plan::PlanResult> FromProto(const v1::PlanResult& p) {
  plan::PlanResult r;
  r.model = p.model();
  absl::StatusOr<plan::PlanTarget> target = FromProto(p.target());
  if (!target.ok()) return target.status();
  r.target = *target;
  r.candidates.assign(p.candidates().begin(), p.candidates().end());
  r.dropped_candidates.assign(p.dropped_candidates().begin(), p.dropped_candidates().end());
  r.left_out_weights.assign(p.left_out_weights().begin(), p.left_out_weights().end());
  r.samples = p.samples();
  r.seed = p.seed();
  r.function = p.function();
  r.original_model_bytes = p.original_model_bytes();
  r.kept_activations = p.kept_activations();
  r.measured_outputs.assign(p.measured_outputs().begin(), p.measured_outputs().end());
  r.trials_run = p.trials_run();
  r.trials_pruned = p.trials_pruned();
  for (const v1::PlanWeight& pw : p.weights()) {
    if (pw.outcomes_size() != p.candidates_size() || pw.chosen() < -1 || pw.chosen() >= p.candidates_size()) {
      return absl::InvalidArgumentError(absl::StrCat("the plan's weight \"", pw.name(), "\" has ", pw.outcomes_size(),
                                                     " outcomes and choice ", pw.chosen(), " for ",
                                                     p.candidates_size(), " candidates"));
    }
    plan::WeightPlan w;
    w.name = pw.name();
    w.consumers.assign(pw.consumers().begin(), pw.consumers().end());
    w.elements = pw.elements();
    w.bytes_before = pw.bytes_before();
    for (const v1::PlanCandidateOutcome& po : pw.outcomes()) {
      plan::CandidateOutcome o;
      o.status = po.status();
      o.bytes = po.bytes();
      o.weight_snr_db = po.weight_snr_db();
      o.measured = po.measured();
      o.output_psnr_db = po.output_psnr_db();
      o.mean_noise = po.mean_noise();
      w.outcomes.push_back(std::move(o));
    }
    w.chosen = pw.chosen();
    r.weights.push_back(std::move(w));
  }
  for (const v1::PlanRound& pr : p.rounds()) {
    plan::PlanRound round;
    round.goal = pr.goal();
    round.predicted = FromProto(pr.predicted());
    round.measured = FromProto(pr.measured());
    round.met = pr.met();
    r.rounds.push_back(std::move(round));
  }
  r.predicted = FromProto(p.predicted());
  r.measured = FromProto(p.measured());
  for (const v1::PlanParetoPoint& pp : p.pareto()) r.pareto.push_back(FromProto(pp));
  for (const v1::PlanUniformComparison& pu : p.uniform()) {
    ASSIGN_OR_RETURN(plan::UniformComparison u, FromProto(pu, p.candidates_size()));
    r.uniform.push_back(std::move(u));
  }
  for (const v1::PlanReadmission& pa : p.readmitted()) {
    plan::Readmission a;
    ASSIGN_OR_RETURN(a.evidence, FromProto(pa.evidence(), p.candidates_size()));
    a.trials = pa.trials();
    r.readmitted.push_back(std::move(a));
  }
  r.seconds = p.seconds();
  r.study_seconds = p.study_seconds();
  r.trial_seconds = p.trial_seconds();
  r.compare_seconds = p.compare_seconds();
  r.round_seconds = p.round_seconds();
  r.pareto_seconds = p.pareto_seconds();
  return r;
}

}  // namespace coremlz::api
