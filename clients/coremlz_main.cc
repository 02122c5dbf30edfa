// coremlz: the command-line client CI jobs run.
//
//   coremlz inspect MODEL [--json]
//   coremlz compress MODEL -o OUT [technique flags | --config FILE] [--server HOST:PORT]
//
// Without --server the engine runs in this process (the embedded default),
// so a single command works with no service deployed.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "clients/commands.h"
#include "clients/exit_codes.h"

namespace {

constexpr char kUsage[] = R"(coremlz - data-free compression of Core ML models

usage:
  coremlz inspect MODEL [--json] [--min-elements N] [--no-stats]
  coremlz compress MODEL -o OUT [TECHNIQUE | --config FILE] [options]
  coremlz config [TECHNIQUE]            print the config a set of flags means, as YAML
  coremlz run MODEL [--inputs DIR] [--outputs DIR]   run a model on this CPU (reference executor)
  coremlz compare ORIGINAL COMPRESSED [--samples N] what compression did to the model's outputs
  coremlz plan MODEL (--size S | --bits B | --min-psnr DB)  choose a compression per weight for a target
  coremlz health --server HOST:PORT     check a server's gRPC health (exit 0 when serving)
  coremlz services --server HOST:PORT   list a server's gRPC services (reflection)
  coremlz runners --server HOST:PORT    list the server's device runners and their devices
  coremlz help [COMMAND]

MODEL is an .mlpackage directory (an ML Program, or a NeuralNetwork as Xcode wraps
.mlmodel files) or an .mlmodel file (NeuralNetwork); a package comes out a package.
Run "coremlz help compress" for techniques and options.

exit codes: 0 ok, 1 usage, 2 invalid input, 3 not expressible for this model/target,
            4 server unreachable/busy/timeout/auth, 5 validation failed,
            6 transfer integrity check failed (size/SHA-256), 7 internal error, 130 interrupted
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? coremlz::cli::kExitUsage : coremlz::cli::kExitOk;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "help") {
    if (!args.empty()) return coremlz::cli::PrintCommandHelp(args[0]);
    std::fputs(kUsage, stdout);
    return coremlz::cli::kExitOk;
  }
  if (command == "--version" || command == "version") {
    std::printf("coremlz %s\n", COREMLZ_VERSION);
    return 0;
  }
  return coremlz::cli::RunCommand(command, args);
}
