// coremlz-worker: the compression engine behind the internal Worker service,
// for fronts started with --remote-workers. It takes coremlzd's job flags
// (threads, queue, memory budget, limits, TLS, tokens, metrics).
#include <cstdio>

#include "common/arg_parser.h"
#include "service/server_main_support.h"

int main(int argc, char** argv) {
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  auto args = coremlz::Args::Parse(argv_list, coremlz::service::ServerValueFlags(),
                                        coremlz::service::ServerBoolFlags());
  if (!args.ok()) {
    std::fprintf(stderr, "coremlz-worker: %s (see coremlzd --help: the worker takes the same job flags)\n",
                 std::string(args.status().message()).c_str());
    return 1;
  }
  if (args->Bool("help")) {
    std::puts("coremlz-worker - serves the internal Worker service; flags as coremlzd --help (job, limits, TLS, metrics)");
    return 0;
  }
  if (args->Has("remote-workers") || args->Has("runners") || args->Has("runners-file")) {
    std::fputs("coremlz-worker: --remote-workers and --runners belong to the front (coremlzd)\n", stderr);
    return 1;
  }
  return coremlz::service::RunServerMain(*args, "coremlz-worker", /*worker=*/true);
}
