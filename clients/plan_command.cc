#include "clients/plan_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/exit_codes.h"
#include "api/plan_convert.h"
#include "clients/plan_html.h"
#include "clients/plan_progress.h"
#include "clients/progress.h"
#include "clients/remote_plan.h"
#include "common/arg_parser.h"
#include "common/byte_size.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "format/output_target.h"
#include "plan/plan_outputs.h"
#include "plan/planner.h"

namespace coremlz::cli {
namespace {

constexpr char kPlanHelp[] = R"(coremlz plan MODEL (--size SIZE | --bits B | --min-psnr DB) [--candidates LIST]
             [--samples N] [--seed S] [--function F] [--weight-threshold N] [--threads T]
             [--config OUT.yaml] [--report OUT.json|-] [--pareto OUT.svg] [--html OUT.html]
             [--apply OUT [--force]] [--server HOST:PORT [--deadline S] [--no-cache] [TLS/token flags]]

Chooses a compression for every weight of an ML Program (.mlpackage) or a
NeuralNetwork (.mlmodel, or an .mlpackage holding one) to meet one target,
from measured sensitivity: each weight is compressed alone by each candidate
(exact bytes from the engine) and the model's outputs are compared with the
original's on N seeded synthetic inputs (reference CPU executor, float32;
not Core ML; a label output is measured on the scores it is the arg max of).
A knapsack allocation then picks one candidate per weight; the whole plan is
compressed and measured, and re-solved with the measured gap until the
target holds. On a terminal, stderr shows the phase and the trials done.

Targets (exactly one):
  --size SIZE       the compressed model's size on disk (512K, 20M, 1.5G, bytes)
  --bits B          average stored bits per planned weight
  --min-psnr DB     output PSNR floor: the lowest over outputs and samples, as
                    `coremlz compare` reports it; the plan is the smallest that meets it

  --candidates LIST comma-separated, default: palettize8,palettize6,palettize4,
                    palettize3 (iOS18+),palettize2,int8,int4-block32 (iOS18+),keep
                    (palettizeN: k-means per tensor; intN: linear symmetric per
                    channel; intN-blockB: per block of B; keep: unchanged); a
                    NeuralNetwork takes palettize3 and drops int4-block32
  --samples N       synthetic input samples per measurement (default 4)
  --seed S          seed of the synthetic inputs (default 0)
  --function F      the function of a multifunction package (default: its default)
  --weight-threshold N  weights of N elements or fewer are left alone (default 2048)
  --threads T       trial threads (default: the machine's cores); the plan does
                    not depend on it

Outputs:
  --config FILE     the plan as a coremltools OptimizationConfig (YAML) for
                    `coremlz compress --config`
  --report FILE     the JSON plan report (- for stdout): per weight the
                    sensitivity to every candidate, the choice and its bytes;
                    predicted and measured size and PSNR; the Pareto curve;
                    each candidate applied uniformly against the plan within
                    its bytes (also printed at the end); candidates whose
                    weight-SNR pruning that comparison refuted, re-admitted
  --pareto FILE     the Pareto curve (output PSNR vs size) as an SVG
  --html FILE       the plan as one self-contained web page: target, predicted and
                    measured size and PSNR, the Pareto curve, per weight every
                    candidate's output PSNR and the choice, the config
  --apply OUT       write the compressed model (as `compress --config` would; of the input's kind)
  --force           let --apply replace an existing model at OUT

Server (the same outputs, computed by coremlzd's Plan call; its trials run on
the server's threads and remote workers):
  --server HOST:PORT        plan on a coremlzd server instead of in this process
  --deadline SECONDS        give up after this long (default 600)
  --no-cache                plan even if the server holds this plan cached
                            (coremlzd --cache-dir); the same model, target and
                            options are otherwise answered from its cache
  --token-file FILE         bearer token for the server
  --tls-ca FILE             trust this CA for the server (enables TLS)
  --tls-cert/--tls-key FILE client certificate for mTLS
Exit codes as compress: 2 for a target that cannot make sense or cannot be
reached with the candidates.
)";

void PrintError(const absl::Status& s) { std::fprintf(stderr, "coremlz plan: %s\n", std::string(s.message()).c_str()); }

absl::StatusOr<plan::PlanTarget> TargetFromArgs(const Args& args) {
  int given = 0;
  for (const char* flag : {"size", "bits", "min-psnr"}) given += args.Has(flag) ? 1 : 0;
  if (given != 1) return absl::InvalidArgumentError("give exactly one target: --size, --bits or --min-psnr");
  plan::PlanTarget t;
  if (auto v = args.Value("size")) {
    absl::StatusOr<uint64_t> bytes = ParseByteSize(*v);
    if (!bytes.ok()) return absl::InvalidArgumentError(absl::StrCat("--size: ", bytes.status().message()));
    t.kind = plan::PlanTarget::Kind::kSize;
    t.value = static_cast<double>(*bytes);
    return t;
  }
  const char* flag = args.Has("bits") ? "bits" : "min-psnr";
  absl::StatusOr<std::optional<double>> v = args.Double(flag);
  if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", v.status().message()));
  if (!std::isfinite(**v) || **v <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be a positive number, not ", **v));
  }
  t.kind = args.Has("bits") ? plan::PlanTarget::Kind::kBits : plan::PlanTarget::Kind::kMinPsnr;
  t.value = **v;
  return t;
}

std::string Db(double db) { return std::isfinite(db) ? absl::StrFormat("%.2f dB", db) : "exact"; }

void PrintTable(const plan::PlanResult& p) {
  std::printf("%s: %s, %d weights, %d trials (%d pruned by weight SNR), %d samples, %.1f s\n", p.model.c_str(),
              plan::DescribeTarget(p.target).c_str(), static_cast<int>(p.weights.size()), p.trials_run,
              p.trials_pruned, p.samples, p.seconds);
  std::printf("%-44s %-14s %12s %12s %14s\n", "weight", "chosen", "bytes before", "bytes after", "alone: PSNR");
  for (const plan::WeightPlan& w : p.weights) {
    const plan::CandidateOutcome& o = w.outcomes[w.chosen];
    // A name longer than its column stands whole on a line of its own (to be
    // copied), and its row follows, aligned.
    const bool long_name = w.name.size() > 44;
    if (long_name) std::printf("%s\n", w.name.c_str());
    std::printf("%-44s %-14s %12llu %12llu %14s\n", long_name ? "" : w.name.c_str(), p.candidates[w.chosen].c_str(),
                static_cast<unsigned long long>(w.bytes_before), static_cast<unsigned long long>(o.bytes),
                Db(o.output_psnr_db).c_str());
  }
  std::printf("%-22s %14s %14s %16s\n", "", "model bytes", "bits/weight", "output PSNR");
  std::printf("%-22s %14llu %14s %16s\n", "original", static_cast<unsigned long long>(p.original_model_bytes), "",
              "exact");
  std::printf("%-22s %14llu %14.3f %16s\n", "predicted", static_cast<unsigned long long>(p.predicted.model_bytes),
              p.predicted.bits_per_weight, Db(p.predicted.psnr_db).c_str());
  std::printf("%-22s %14llu %14.3f %16s\n", "measured", static_cast<unsigned long long>(p.measured.model_bytes),
              p.measured.bits_per_weight, Db(p.measured.psnr_db).c_str());
  std::printf("(%d round(s); measured: the plan compressed and run by the reference CPU executor, not Core ML)\n",
              static_cast<int>(p.rounds.size()));
  // What "output PSNR" covers: a stateful function's states count too.
  constexpr size_t kShown = 6;
  std::vector<std::string> shown(p.measured_outputs.begin(),
                                 p.measured_outputs.begin() + std::min(kShown, p.measured_outputs.size()));
  if (p.measured_outputs.size() > kShown) shown.push_back(absl::StrCat(p.measured_outputs.size() - kShown, " more"));
  if (!shown.empty()) std::printf("(output PSNR: the worst over the samples of %s)\n", absl::StrJoin(shown, ", ").c_str());
  if (p.uniform.empty()) return;
  // What planning bought: each candidate applied uniformly against the
  // allocation within the same bytes.
  std::printf("\nagainst one candidate on every weight (the plan: the allocation within the same bytes):\n");
  std::printf("%-16s %12s %10s %10s %10s %10s %22s\n", "uniform", "model bytes", "uniform", "plan", "gain",
              "predicted", "alone: PSNR range");
  auto gain_text = [](double g) {
    return std::isnan(g) ? std::string("-") : std::isfinite(g) ? absl::StrFormat("%+.2f dB", g) : std::string("exact");
  };
  for (const plan::UniformComparison& u : p.uniform) {
    const std::string range = std::isnan(u.alone_psnr_lo_db)
                                  ? "-"
                                  : absl::StrFormat("%s..%s", Db(u.alone_psnr_lo_db), Db(u.alone_psnr_hi_db));
    std::printf("%-16s %12llu %10s %10s %10s %10s %22s\n", u.candidate.c_str(),
                static_cast<unsigned long long>(u.uniform.predicted.model_bytes), Db(u.uniform.measured_psnr_db).c_str(),
                Db(u.plan.measured_psnr_db).c_str(), gain_text(plan::UniformGainDb(u)).c_str(),
                gain_text(plan::PredictedUniformGainDb(u)).c_str(), range.c_str());
  }
  std::printf("(PSNRs and gain measured: the executor run with the decoded weights; model bytes predicted;\n"
              " predicted: the gain the additive model allows; alone: each weight compressed by the candidate\n"
              " by itself - weights alike in sensitivity leave the allocation little to trade)\n");
  for (const plan::Readmission& r : p.readmitted) {
    std::printf("(re-admitted %s: weight SNR had pruned %d of its trials, but applied uniformly it measured %s\n"
                " where the allocation within its bytes measured %s; those trials ran and the plan was solved again)\n",
                r.evidence.candidate.c_str(), r.trials, Db(r.evidence.uniform.measured_psnr_db).c_str(),
                Db(r.evidence.plan.measured_psnr_db).c_str());
  }
}

// The side files (--config, --report, --pareto, --html), each written
// atomically or to stdout for "-"; the paths were checked before any work.
int WriteOutputs(const Args& args, const plan::PlanResult& result, const std::string& yaml,
                 const std::string& report_json, const std::string& pareto_svg) {
  auto write = [&](const char* flag, const std::string& text) -> absl::Status {
    auto path = args.Value(flag);
    if (!path) return absl::OkStatus();
    if (*path == "-") {
      std::fputs(text.c_str(), stdout);
      return absl::OkStatus();
    }
    return WriteFileAtomically(*path, text);
  };
  for (const absl::Status& s : {write("config", yaml), write("report", report_json), write("pareto", pareto_svg),
                                write("html", RenderPlanHtml(result, yaml))}) {
    if (!s.ok()) {
      PrintError(s);
      return ExitCodeFor(s);
    }
  }
  return kExitOk;
}

// The same plan computed by coremlzd: the same table, files and messages.
int PlanOnServer(const Args& args, const std::string& input, const plan::PlanOptions& options,
                 format::OutputTarget* apply) {
  v1::PlanHeader header;
  *header.mutable_target() = api::ToProto(options.target);
  header.set_candidates(args.Value("candidates").value_or(""));
  header.set_samples(options.study.samples);
  header.set_seed(options.study.seed);
  header.set_function(options.study.function);
  header.set_weight_threshold(options.weight_threshold);
  header.set_no_cache(args.Bool("no-cache"));
  const std::string where = apply ? apply->path() : "";
  // Ctrl-C cancels the call (the server stops the plan); the staged --apply
  // output is removed with its target, nothing else is touched.
  ProgressBar::InstallInterruptHandler();
  ProgressBar bar(ProgressBar::StderrIsTerminal());
  absl::StatusOr<RemotePlanOutputs> out = RemotePlan(
      args, input, std::move(header), apply, [&bar] { return bar.Cancelled(); },
      [&bar](const v1::PlanProgress& p) { ShowPlanProgress(p, &bar); });
  bar.Done();
  if (!out.ok() && bar.Cancelled()) {
    std::fprintf(stderr, "coremlz: interrupted\n");
    return kExitCancelled;
  }
  if (!out.ok()) {
    PrintError(out.status());
    return ExitCodeFor(out.status());
  }
  const bool report_to_stdout = args.Value("report") == std::optional<std::string>("-");
  if (!report_to_stdout) PrintTable(out->result);
  if (int code = WriteOutputs(args, out->result, out->config_yaml, out->report_json, out->pareto_svg); code != kExitOk) {
    return code;
  }
  if (apply && !report_to_stdout) {
    std::printf("wrote %s (%llu bytes)\n", where.c_str(), static_cast<unsigned long long>(out->applied_model_bytes));
  }
  return kExitOk;
}

int Plan(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv,
                          {"size", "bits", "min-psnr", "candidates", "samples", "seed", "function", "weight-threshold",
                           "threads", "config", "report", "pareto", "html", "apply", "server", "deadline",
                           "token-file", "tls-ca", "tls-cert", "tls-key"},
                          {"force", "no-cache", "help"});
  if (!args.ok()) {
    PrintError(args.status());
    return kExitUsage;
  }
  if (args->Bool("help")) {
    std::fputs(kPlanHelp, stdout);
    return kExitOk;
  }
  if (args->positional().size() != 1) {
    std::fputs(kPlanHelp, stderr);
    return kExitUsage;
  }
  const std::string& input = args->positional()[0];
  absl::StatusOr<plan::PlanTarget> target = TargetFromArgs(*args);
  if (!target.ok()) {
    PrintError(target.status());
    // No target, or two, is a usage error; a target that makes no sense is invalid input.
    return absl::StrContains(target.status().message(), "exactly one") ? kExitUsage : kExitInput;
  }
  plan::PlanOptions options;
  options.target = *target;
  auto samples = args->Int("samples");
  auto seed = args->Int("seed");
  auto threshold = args->Int("weight-threshold");
  auto threads = args->Int("threads");
  if (!samples.ok() || !seed.ok() || !threshold.ok() || !threads.ok() || samples->value_or(4) < 1 ||
      samples->value_or(4) > 1000 || threshold->value_or(0) < 0 || threads->value_or(1) < 1) {
    PrintError(absl::InvalidArgumentError(
        "--samples takes 1..1000, --seed an integer, --weight-threshold a count >= 0 and --threads >= 1"));
    return kExitUsage;
  }
  options.weight_threshold = threshold->value_or(2048);
  options.study.samples = static_cast<int>(samples->value_or(4));
  options.study.seed = static_cast<uint64_t>(seed->value_or(0));
  options.study.function = args->Value("function").value_or("");
  options.study.threads =
      static_cast<int>(threads->value_or(std::max(1u, std::thread::hardware_concurrency())));
  if (auto list = args->Value("candidates")) {
    auto candidates = plan::ParseCandidates(*list, options.weight_threshold);
    if (!candidates.ok()) {
      PrintError(candidates.status());
      return kExitUsage;
    }
    options.candidates = *std::move(candidates);
  }
  // Every path is checked before any work.
  std::optional<format::OutputTarget> apply;
  if (auto out = args->Value("apply")) {
    absl::StatusOr<format::OutputTarget> t = format::OutputTarget::Check(*out, input, args->Bool("force"));
    if (!t.ok()) {
      PrintError(t.status());
      return ExitCodeFor(t.status());
    }
    apply.emplace(*std::move(t));
  }
  for (const char* side : {"config", "report", "pareto", "html"}) {
    if (auto path = args->Value(side); path && *path != "-") {
      if (absl::Status s = format::CheckSideFile(*path, input, apply ? apply->path() : ""); !s.ok()) {
        PrintError(s);
        return ExitCodeFor(s);
      }
    }
  }

  if (args->Has("server")) return PlanOnServer(*args, input, options, apply ? &*apply : nullptr);

  // Ctrl-C stops the plan within a weight or a trial (the study, the trials
  // and the rounds poll it); nothing was written yet but the plan's work
  // directory, which MakePlan removes on the way out.
  ProgressBar::InstallInterruptHandler();
  ProgressBar bar(ProgressBar::StderrIsTerminal());  // the phase on stderr; carries Ctrl-C into the plan
  options.study.cancelled = [&bar] { return bar.Cancelled(); };
  options.progress = [&bar](const plan::PlanProgress& p) { ShowPlanProgress(p, &bar); };
  absl::StatusOr<plan::PlanResult> result = plan::MakePlan(input, options);
  bar.Done();
  if (!result.ok() && bar.Cancelled()) {
    std::fprintf(stderr, "coremlz: interrupted\n");
    return kExitCancelled;
  }
  if (!result.ok()) {
    PrintError(result.status());
    return ExitCodeFor(result.status());
  }
  absl::StatusOr<std::string> yaml = plan::PlanConfigYaml(result->config);
  if (!yaml.ok()) {
    PrintError(yaml.status());
    return ExitCodeFor(yaml.status());
  }
  const bool report_to_stdout = args->Value("report") == std::optional<std::string>("-");
  if (!report_to_stdout) PrintTable(*result);
  // The side files this run creates (not those it replaces), removed again
  // if Ctrl-C stops the --apply that follows them.
  std::vector<std::string> created;
  for (const char* side : {"config", "report", "pareto", "html"}) {
    if (auto path = args->Value(side); path && *path != "-" && !PathExists(*path)) created.push_back(*path);
  }
  if (bar.Cancelled()) {
    std::fprintf(stderr, "coremlz: interrupted\n");
    return kExitCancelled;
  }
  if (int code = WriteOutputs(*args, *result, *yaml, plan::PlanReportJson(*result) + "\n", plan::ParetoSvg(*result));
      code != kExitOk) {
    return code;
  }
  if (apply) {
    const std::string where = apply->path();
    absl::StatusOr<engine::CompressionReport> report =
        engine::CompressModelPath(input, *std::move(apply), result->config, engine::CompressOptions{}, &bar);
    bar.Done();
    if (!report.ok() && bar.Cancelled()) {
      for (const std::string& path : created) (void)RemoveAll(path);
      std::fprintf(stderr, "coremlz: interrupted\n");
      return kExitCancelled;
    }
    if (!report.ok()) {
      PrintError(report.status());
      return ExitCodeFor(report.status());
    }
    if (!report_to_stdout) std::printf("wrote %s (%llu bytes)\n", where.c_str(), static_cast<unsigned long long>(report->model_bytes_after));
  }
  return kExitOk;
}

}  // namespace

bool RunPlanCommand(const std::string& command, const std::vector<std::string>& args, int* exit_code) {
  if (command != "plan") return false;
  *exit_code = Plan(args);
  return true;
}

bool PlanCommandHelp(const std::string& command) {
  if (command != "plan") return false;
  std::fputs(kPlanHelp, stdout);
  return true;
}

}  // namespace coremlz::cli
