#include "clients/commands.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "clients/config_flags.h"
#include "clients/execute_commands.h"
#include "clients/plan_command.h"
#include "clients/exit_codes.h"
#include "execute/output_check.h"
#include "clients/html_report.h"
#include "clients/progress.h"
#include "clients/remote.h"
#include "clients/render.h"
#include "clients/terminal.h"
#include "common/byte_size.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/inventory.h"
#include "format/output_target.h"

namespace coremlz::cli {
namespace {

constexpr char kCompressHelp[] = R"(coremlz compress MODEL -o OUT [TECHNIQUE | --config FILE] [options]

Techniques (flags build a coremltools-style OptimizationConfig; --config FILE
takes the same thing as YAML or JSON, see docs/config.md):
  --palettize N             palettize to N bits (1, 2, 3, 4, 6, 8; 3 needs iOS18)
      --mode M              kmeans (default: exact optimal 1-D k-means), uniform, unique
      --group-size G        one palette per G output channels (iOS18)
      --cluster-dim D       vector palettization (iOS18)
      --per-channel-scale   normalise by a per-channel scale first (iOS18)
  --quantize DTYPE          linear quantization: int8, uint8, int4, uint4 (4-bit needs iOS18)
      --quant-mode M        linear_symmetric (default) or linear
      --granularity G       per_channel (default), per_tensor, per_block
      --block-size B        per-block quantization along the input axis (iOS18)
  --prune SPARSITY          magnitude pruning to this fraction of zeros (0..1)
      --prune-block-size B  block sparsity along output channels
  --n-m N:M                 n:m sparsity (e.g. 2:4)
  --prune-threshold T       zero every |w| <= T
  --fp16                    store fp32 weights as fp16
  Pruning combined with --palettize or --quantize runs both, jointly (iOS18).
  --weight-threshold N      leave weights with N or fewer elements alone (default 2048)

Options:
  -o, --output OUT          where the compressed model goes (required); it has the input's
                            kind: an .mlpackage for an .mlpackage, an .mlmodel for an .mlmodel
  --target T                deployment target to check against (ios16, ios17, ios18, ios26)
  --report FILE             write the JSON report here ("-" for stdout)
  --html FILE               write the report as a self-contained HTML page (bars, warnings, config)
  --all                     list every weight in the table, also those left alone
  --force                   replace OUT if it exists
  --quiet                   no progress bar and no table
  --check [N]               also run the original and the compressed model on N synthetic inputs
                            (default 4) with the reference CPU executor and report what compression
                            did to each output (PSNR, SNR, cosine, top-1/top-5 for class scores)
  --threads N               weights compressed at once in this process (default: every core);
                            the output is the same for any N
  --max-size SIZE           a size ceiling for CI: exit 5 if the compressed model is larger
                            (bytes, or 512K / 20M / 1.5G); the output is still written
  --server HOST:PORT        compress on a coremlzd server instead of in this process
  --deadline SECONDS        give up after this long (remote only; default 600)
  --token-file FILE         bearer token for the server
  --tls-ca FILE             trust this CA for the server (enables TLS)
  --tls-cert/--tls-key FILE client certificate for mTLS
  --report-only             ask the server for the report only (no artifact)
  --no-cache                compute even if the server has the result cached (coremlzd --cache-dir)
  --validate DEVICE         also validate on a device of the server's runner pool: a model
                            identifier ("iPhone15,2"), part of a device name, or "any";
                            outputs are compared with the original's; exit code 5 if it fails
  --validate-iterations N   timed predictions (default 20)
)";

constexpr char kInspectHelp[] = R"(coremlz inspect MODEL [--json] [--min-elements N] [--no-stats] [--server HOST:PORT]

Lists every weight of the model: the op holding it, the ops reading it, its
shape, storage (dtype, or the constexpr parameters of compressed weights),
bytes, share of all weights, fraction of zeros and number of distinct values
(after decompression). --min-elements hides smaller tensors (default 10).
)";

void PrintError(const absl::Status& s) {
  std::fprintf(stderr, "coremlz: %s\n", std::string(s.message()).c_str());
}

int Inspect(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, {"min-elements", "server", "token-file", "tls-ca", "tls-cert", "tls-key", "deadline"},
                          {"json", "no-stats", "help"});
  if (!args.ok()) {
    PrintError(args.status());
    return kExitUsage;
  }
  if (args->Bool("help")) {
    std::fputs(kInspectHelp, stdout);
    return kExitOk;
  }
  if (args->positional().size() != 1) {
    std::fputs(kInspectHelp, stderr);
    return kExitUsage;
  }
  engine::InspectOptions options;
  auto min = args->Int("min-elements");
  if (!min.ok()) {
    PrintError(min.status());
    return kExitUsage;
  }
  if (*min) options.min_elements = static_cast<uint64_t>(**min);
  options.statistics = !args->Bool("no-stats");
  absl::StatusOr<engine::Inventory> inv;
  if (args->Has("server")) {
    inv = RemoteInspect(*args, args->positional()[0], options);
  } else {
    inv = engine::InspectModel(args->positional()[0], options);
  }
  if (!inv.ok()) {
    PrintError(inv.status());
    return ExitCodeFor(inv.status());
  }
  std::fputs((args->Bool("json") ? RenderInventoryJson(*inv) : RenderInventoryTable(*inv, StdoutColumns())).c_str(), stdout);
  return kExitOk;
}

std::set<std::string> Union(std::set<std::string> a, const std::set<std::string>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

int Compress(const std::vector<std::string>& raw_argv) {
  // `--check` takes an optional sample count: a bare one means 4.
  std::vector<std::string> argv;
  for (size_t i = 0; i < raw_argv.size(); ++i) {
    argv.push_back(raw_argv[i]);
    if (raw_argv[i] == "--check") {
      int64_t n = 0;
      if (i + 1 >= raw_argv.size() || !absl::SimpleAtoi(raw_argv[i + 1], &n)) argv.push_back("4");
    }
  }
  auto args = Args::Parse(argv,
                          Union({"output", "target", "report", "html", "max-size", "check", "threads", "server", "deadline", "token-file", "tls-ca", "tls-cert",
                                 "tls-key", "validate", "validate-iterations"},
                                ConfigValueFlags()),
                          Union({"force", "quiet", "all", "help", "report-only", "no-cache"}, ConfigBoolFlags()));
  if (!args.ok()) {
    PrintError(args.status());
    return kExitUsage;
  }
  if (args->Bool("help")) {
    std::fputs(kCompressHelp, stdout);
    return kExitOk;
  }
  if (args->positional().size() != 1 || (!args->Has("output") && !args->Bool("report-only"))) {
    std::fprintf(stderr, "coremlz compress: need one MODEL and -o OUT (see coremlz help compress)\n");
    return kExitUsage;
  }
  auto config = ConfigFromFlags(*args);
  if (!config.ok()) {
    PrintError(config.status());
    return config.status().message().find("no compression requested") != std::string::npos ? kExitUsage
                                                                                         : kExitInput;
  }
  engine::CompressOptions options;
  if (auto t = args->Value("target")) {
    auto target = engine::ParseTarget(*t);
    if (!target.ok()) {
      PrintError(target.status());
      return kExitUsage;
    }
    options.target = *target;
  }
  if (!args->Has("server") && (args->Has("validate") || args->Bool("report-only"))) {
    std::fprintf(stderr, "coremlz compress: --validate and --report-only need --server\n");
    return kExitUsage;
  }
  // Every path this command will write is checked before any work, and
  // before anything is sent to a server: the same checks, and the same
  // messages, embedded and remote.
  const std::string& input = args->positional()[0];
  std::optional<format::OutputTarget> output;
  if (!args->Bool("report-only")) {
    absl::StatusOr<format::OutputTarget> target =
        format::OutputTarget::Check(*args->Value("output"), input, args->Bool("force"));
    if (!target.ok()) {
      PrintError(target.status());
      return ExitCodeFor(target.status());
    }
    output.emplace(*std::move(target));
  }
  const std::string output_path = output ? output->path() : "";
  for (const char* side : {"report", "html"}) {
    if (auto path = args->Value(side); path && *path != "-") {
      if (absl::Status s = format::CheckSideFile(*path, input, output_path); !s.ok()) {
        PrintError(s);
        return ExitCodeFor(s);
      }
    }
  }
  std::optional<uint64_t> max_size;
  if (auto v = args->Value("max-size")) {
    auto parsed = ParseByteSize(*v);
    if (!parsed.ok()) {
      PrintError(absl::InvalidArgumentError(absl::StrCat("--max-size: ", parsed.status().message())));
      return kExitUsage;
    }
    max_size = *parsed;
  }
  int check_samples = 0;
  if (auto n = args->Int("check"); !n.ok() || (*n && (**n < 1 || **n > 10000))) {
    PrintError(absl::InvalidArgumentError("--check takes 1..10000 samples"));
    return kExitUsage;
  } else if (*n) {
    check_samples = static_cast<int>(**n);
  }
  options.check_samples = check_samples;
  if (auto n = args->Int("threads"); !n.ok() || (*n && (**n < 1 || **n > 1024))) {
    PrintError(absl::InvalidArgumentError("--threads takes 1..1024"));
    return kExitUsage;
  } else {
    options.threads = *n ? static_cast<int>(**n) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  const bool quiet = args->Bool("quiet");
  ProgressBar::InstallInterruptHandler();
  ProgressBar progress(!quiet && ProgressBar::StderrIsTerminal());
  absl::StatusOr<engine::CompressionReport> report;
  if (args->Has("server")) {
    report = RemoteCompress(*args, input, output ? &*output : nullptr, *config, options, &progress);
  } else {
    report = engine::CompressModelPath(input, *std::move(output), *config, options, &progress);
    if (report.ok() && check_samples > 0) {
      execute::OutputCheckOptions check;
      check.samples = check_samples;
      check.cancelled = [&progress] { return progress.Cancelled(); };
      execute::AddOutputCheck(input, output_path, check, &*report);
    }
  }
  progress.Done();
  if (!report.ok()) {
    PrintError(report.status());
    return ExitCodeFor(report.status());
  }
  if (auto path = args->Value("report")) {
    const std::string json = RenderReportJson(*report);
    if (*path == "-") {
      std::fputs(json.c_str(), stdout);
    } else if (absl::Status s = WriteFileAtomically(*path, json); !s.ok()) {
      PrintError(s);
      return kExitInput;
    }
  }
  if (auto path = args->Value("html")) {
    HtmlReportContext context{input, output_path, engine::CompressionConfigToYaml(*config)};
    if (absl::Status s = WriteFileAtomically(*path, RenderReportHtml(*report, context)); !s.ok()) {
      PrintError(s);
      return kExitInput;
    }
  }
  if (!quiet && args->Value("report").value_or("") != "-") {
    std::fputs(RenderReportTable(*report, args->Bool("all"), StdoutColumns()).c_str(), stdout);
    if (!output_path.empty()) std::printf("wrote %s\n", output_path.c_str());
  } else {
    // No table (which lists them): warnings still reach a person, on stderr.
    for (const std::string& warning : report->warnings) std::fprintf(stderr, "coremlz: warning: %s\n", warning.c_str());
  }
  if (max_size && report->model_bytes_after > *max_size) {
    std::fprintf(stderr, "coremlz: the compressed model is %s (%llu bytes), over --max-size %s (%llu bytes)\n",
                 HumanBytes(report->model_bytes_after).c_str(), static_cast<unsigned long long>(report->model_bytes_after),
                 HumanBytes(*max_size).c_str(), static_cast<unsigned long long>(*max_size));
    return kExitValidation;
  }
  return report->validation_failed ? kExitValidation : kExitOk;
}

int PrintConfig(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, ConfigValueFlags(), ConfigBoolFlags());
  if (!args.ok()) {
    PrintError(args.status());
    return kExitUsage;
  }
  auto config = ConfigFromFlags(*args);
  if (!config.ok()) {
    PrintError(config.status());
    return kExitInput;
  }
  std::fputs(engine::CompressionConfigToYaml(*config).c_str(), stdout);
  return kExitOk;
}

}  // namespace

int PrintCommandHelp(const std::string& command) {
  if (command == "compress") std::fputs(kCompressHelp, stdout);
  else if (command == "inspect") std::fputs(kInspectHelp, stdout);
  else if (command == "config") std::fputs("coremlz config [technique flags | --config FILE]: print the config as YAML\n", stdout);
  else if (!RemoteCommandHelp(command) && !ExecuteCommandHelp(command) && !PlanCommandHelp(command)) {
    std::fprintf(stderr, "coremlz: no help for \"%s\"\n", command.c_str());
    return kExitUsage;
  }
  return kExitOk;
}

int RunCommand(const std::string& command, const std::vector<std::string>& args) {
  if (command == "inspect") return Inspect(args);
  if (command == "compress") return Compress(args);
  if (command == "config") return PrintConfig(args);
  if (int code; RunRemoteCommand(command, args, &code)) return code;
  if (int code; RunExecuteCommand(command, args, &code)) return code;
  if (int code; RunPlanCommand(command, args, &code)) return code;
  std::fprintf(stderr, "coremlz: unknown command \"%s\" (see coremlz --help)\n", command.c_str());
  return kExitUsage;
}

}  // namespace coremlz::cli
