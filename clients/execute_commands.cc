#include "clients/execute_commands.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/arg_parser.h"
#include "clients/exit_codes.h"
#include "common/file_util.h"
#include "common/json_writer.h"
#include "common/status_macros.h"
#include "clients/render.h"
#include "execute/loaded_model.h"
#include "execute/output_check.h"
#include "execute/npy.h"
#include "execute/program_executor.h"
#include "execute/synthetic_inputs.h"

namespace coremlz::cli {
namespace {

namespace fs = std::filesystem;

constexpr char kRunHelp[] = R"(coremlz run MODEL [--inputs DIR] [--outputs DIR] [--function F] [--seed N] [--json]

Runs a model (an ML Program .mlpackage, or a NeuralNetwork .mlmodel or
.mlpackage) on this machine with the reference CPU
executor (float32; every compressed weight decoded as Core ML would) and
prints each output's shape and statistics. This is not Core ML: it computes
what the program's ops define, to measure and compare, not to time devices.

  --inputs DIR    one NAME.npy per input (np.save); default: synthetic inputs
                  from the model's description, reproducible from --seed
  --outputs DIR   write one NAME.npy per output there
  --function F    the function of a multifunction package (default: its default)
  --seed N        seed of the synthetic inputs (default 0)
  --json          the summary as JSON
)";

constexpr char kCompareHelp[] = R"(coremlz compare ORIGINAL COMPRESSED [--samples N] [--seed S] [--function F] [--json]
                [--min-psnr DB]

Runs both models with the reference CPU executor on the same N synthetic
inputs (default 4) and reports, per output, how far the compressed model's
outputs are from the original's: PSNR (against the original's peak), SNR,
cosine similarity, max abs error; for class scores (a last axis of 2 or more
on a rank-1 or rank-2 output) also top-1 agreement, top-5 overlap and the KL
divergence of the softmax. PSNR and cosine are the worst over the samples,
SNR the mean, max abs error the largest.

  --min-psnr DB   a quality floor for CI: exit 5 if any output's PSNR is below it
)";

void PrintError(const absl::Status& s) { std::fprintf(stderr, "coremlz: %s\n", std::string(s.message()).c_str()); }

std::string ShapeText(const execute::Shape& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

struct Stats {
  double min = 0, max = 0, mean = 0;
  bool finite = true;
};

Stats StatsOf(const execute::Tensor& t) {
  Stats s;
  if (t.size() == 0) return s;
  s.min = std::numeric_limits<double>::infinity();
  s.max = -s.min;
  double sum = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    const double v = t.AsDouble(i);
    if (!std::isfinite(v)) s.finite = false;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
    sum += v;
  }
  s.mean = sum / static_cast<double>(t.size());
  return s;
}

absl::StatusOr<std::map<std::string, execute::Tensor>> InputsFromDir(const std::vector<execute::InputSpec>& specs,
                                                                      const std::string& dir) {
  if (!IsDirectory(dir)) return absl::NotFoundError(absl::StrCat("--inputs ", dir, " is not a directory"));
  std::map<std::string, execute::Tensor> inputs;
  for (const auto& spec : specs) {
    const std::string path = JoinPath(dir, spec.name + ".npy");
    if (!PathExists(path)) {
      return absl::InvalidArgumentError(absl::StrCat("--inputs: no ", spec.name, ".npy in ", dir, " (the model's input '",
                                                     spec.name, "', shape ", ShapeText(spec.shape), ")"));
    }
    ASSIGN_OR_RETURN(execute::Tensor t, execute::ReadNpyFile(path));
    inputs[spec.name] = std::move(t);
  }
  return inputs;
}

int Run(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, {"inputs", "outputs", "function", "seed"}, {"json", "help"});
  if (!args.ok()) {
    PrintError(args.status());
    return kExitUsage;
  }
  if (args->Bool("help")) {
    std::fputs(kRunHelp, stdout);
    return kExitOk;
  }
  if (args->positional().size() != 1) {
    std::fputs(kRunHelp, stderr);
    return kExitUsage;
  }
  auto seed = args->Int("seed");
  if (!seed.ok()) {
    PrintError(seed.status());
    return kExitUsage;
  }
  const std::string model_path = args->positional()[0];
  if (auto out = args->Value("outputs")) {
    // Never write outputs into the model being run.
    std::error_code ec;
    const std::string model_real = fs::weakly_canonical(model_path, ec).string();
    const std::string out_real = fs::weakly_canonical(*out, ec).string();
    if (out_real == model_real || absl::StartsWith(out_real, model_real + "/")) {
      PrintError(absl::InvalidArgumentError(absl::StrCat("--outputs ", *out, " is inside the model ", model_path)));
      return kExitInput;
    }
  }
  auto model = execute::LoadModel(model_path, args->Value("function").value_or(""));
  if (!model.ok()) {
    PrintError(model.status());
    return ExitCodeFor(model.status());
  }
  auto specs = execute::DescribeInputs(model->model(), *model->executor);
  if (!specs.ok()) {
    PrintError(specs.status());
    return ExitCodeFor(specs.status());
  }
  absl::StatusOr<std::map<std::string, execute::Tensor>> inputs =
      args->Has("inputs") ? InputsFromDir(*specs, *args->Value("inputs"))
                          : execute::SyntheticInputs(*specs, static_cast<uint64_t>(seed->value_or(0)), 0);
  if (!inputs.ok()) {
    PrintError(inputs.status());
    return ExitCodeFor(inputs.status());
  }
  const auto start = std::chrono::steady_clock::now();
  execute::RunStats stats;
  auto outputs = model->executor->Run(*inputs, &stats);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!outputs.ok()) {
    PrintError(outputs.status());
    return ExitCodeFor(outputs.status());
  }
  if (auto dir = args->Value("outputs")) {
    if (absl::Status s = MakeDirectories(*dir); !s.ok()) {
      PrintError(s);
      return ExitCodeFor(s);
    }
    for (const auto& [name, t] : *outputs) {
      if (absl::Status s = execute::WriteNpyFile(JoinPath(*dir, name + ".npy"), t); !s.ok()) {
        PrintError(s);
        return ExitCodeFor(s);
      }
    }
  }
  if (args->Bool("json")) {
    JsonWriter w;
    w.BeginObject();
    w.Key("model").String(model_path);
    w.Key("function").String(model->executor->function());
    w.Key("executor").String("coremlz reference CPU executor (float32), not Core ML");
    w.Key("seconds").Double(seconds);
    w.Key("inputs").BeginArray();
    for (const auto& spec : *specs) {
      w.BeginObject().Key("name").String(spec.name).Key("dtype").String(execute::DTypeName(spec.dtype));
      w.Key("shape").BeginArray();
      for (int64_t d : spec.shape) w.Int(d);
      w.EndArray();
      w.Key("source").String(args->Has("inputs") ? "npy" : spec.note).EndObject();
    }
    w.EndArray();
    w.Key("outputs").BeginArray();
    for (const auto& [name, t] : *outputs) {
      const Stats s = StatsOf(t);
      w.BeginObject().Key("name").String(name).Key("dtype").String(execute::DTypeName(t.dtype()));
      w.Key("shape").BeginArray();
      for (int64_t d : t.shape()) w.Int(d);
      w.EndArray();
      w.Key("min").Double(s.min).Key("max").Double(s.max).Key("mean").Double(s.mean).Key("finite").Bool(s.finite);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::printf("%s\n", w.str().c_str());
    return kExitOk;
  }
  std::printf("%s, function %s: %lld ops in %.3f s (reference CPU executor, float32; not Core ML)\n",
              model_path.c_str(), model->executor->function().c_str(), static_cast<long long>(stats.ops_run), seconds);
  for (const auto& spec : *specs) {
    std::printf("  input  %-24s %s%s  %s\n", spec.name.c_str(), execute::DTypeName(spec.dtype), ShapeText(spec.shape).c_str(),
                args->Has("inputs") ? "from .npy" : spec.note.c_str());
  }
  for (const auto& [name, t] : *outputs) {
    const Stats s = StatsOf(t);
    std::printf("  output %-24s %s%s  min %.6g  max %.6g  mean %.6g%s\n", name.c_str(), execute::DTypeName(t.dtype()),
                ShapeText(t.shape()).c_str(), s.min, s.max, s.mean, s.finite ? "" : "  (non-finite values!)");
  }
  if (auto dir = args->Value("outputs")) std::printf("wrote %zu .npy files to %s\n", outputs->size(), dir->c_str());
  return kExitOk;
}

int Compare(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, {"samples", "seed", "function", "min-psnr"}, {"json", "help"});
  if (!args.ok()) {
    PrintError(args.status());
    return kExitUsage;
  }
  if (args->Bool("help")) {
    std::fputs(kCompareHelp, stdout);
    return kExitOk;
  }
  if (args->positional().size() != 2) {
    std::fputs(kCompareHelp, stderr);
    return kExitUsage;
  }
  auto samples = args->Int("samples");
  auto seed = args->Int("seed");
  if (!samples.ok() || !seed.ok() || samples->value_or(4) < 1 || samples->value_or(4) > 10000) {
    PrintError(absl::InvalidArgumentError("--samples takes 1..10000 and --seed an integer"));
    return kExitUsage;
  }
  auto floor = args->Double("min-psnr");
  if (!floor.ok()) {
    PrintError(floor.status());
    return kExitUsage;
  }
  execute::OutputCheckOptions options;
  options.samples = static_cast<int>(samples->value_or(4));
  options.seed = static_cast<uint64_t>(seed->value_or(0));
  options.function = args->Value("function").value_or("");
  auto checks = execute::CheckOutputs(args->positional()[0], args->positional()[1], options);
  if (!checks.ok()) {
    PrintError(checks.status());
    return ExitCodeFor(checks.status());
  }
  // Outputs under the quality floor, if one was set.
  std::vector<std::string> below;
  if (*floor) {
    for (const auto& c : *checks) {
      if (c.psnr_db < **floor) below.push_back(absl::StrFormat("%s (%.1f dB)", c.name, c.psnr_db));
    }
  }
  auto report_floor = [&]() {
    if (below.empty()) return kExitOk;
    std::fprintf(stderr, "coremlz: below --min-psnr %.1f dB: %s\n", **floor, absl::StrJoin(below, ", ").c_str());
    return kExitValidation;
  };
  if (args->Bool("json")) {
    JsonWriter w;
    w.BeginObject();
    w.Key("original").String(args->positional()[0]);
    w.Key("compressed").String(args->positional()[1]);
    w.Key("executor").String(execute::kExecutorLabel);
    w.Key("samples").Int(options.samples);
    w.Key("seed").Int(static_cast<int64_t>(options.seed));
    w.Key("outputs").BeginArray();
    for (const auto& c : *checks) WriteOutputCheckJson(c, w);
    w.EndArray();
    if (*floor) w.Key("min_psnr_db").Double(**floor).Key("passed").Bool(below.empty());
    w.EndObject();
    std::printf("%s\n", w.str().c_str());
    return report_floor();
  }
  std::printf("%s vs %s: %d synthetic samples (seed %llu), %s\n", args->positional()[0].c_str(),
              args->positional()[1].c_str(), options.samples, static_cast<unsigned long long>(options.seed),
              execute::kExecutorLabel);
  std::fputs(RenderOutputChecks(*checks).c_str(), stdout);
  return report_floor();
}

}  // namespace

bool RunExecuteCommand(const std::string& command, const std::vector<std::string>& args, int* exit_code) {
  if (command == "run") {
    *exit_code = Run(args);
    return true;
  }
  if (command == "compare") {
    *exit_code = Compare(args);
    return true;
  }
  return false;
}

bool ExecuteCommandHelp(const std::string& command) {
  if (command == "run") std::fputs(kRunHelp, stdout);
  else if (command == "compare") std::fputs(kCompareHelp, stdout);
  else return false;
  return true;
}

}  // namespace coremlz::cli
