// coremlz-worker: the compression engine behind the internal Worker service,
// for fronts started with --remote-workers. It takes coremlzd's job flags
// (threads, queue, memory budget, limits, TLS, tokens, metrics).
#include <cstdio>
#include <memory>

#include "api/job_server_main.h"
#include "api/server_flags.h"
#include "api/test_job_delay.h"
#include "common/arg_parser.h"
#include "common/status_macros.h"
#include "workers/worker_service.h"

namespace {

// A worker's jobs run on its own threads; the Worker service is served
// beside the public Compressor one.
absl::StatusOr<coremlz::api::JobServerSetup> WorkerSetup(const coremlz::Args& args,
                                                          const coremlz::api::ServerOptions& options) {
  coremlz::api::JobServerSetup setup;
  ASSIGN_OR_RETURN(setup.parts.pool, coremlz::api::WithTestJobDelay(args, options, nullptr, &setup.description));
  setup.parts.internal_service = [](coremlz::api::CompressorService* jobs) -> std::unique_ptr<grpc::Service> {
    return std::make_unique<coremlz::workers::WorkerService>(jobs);
  };
  return setup;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  auto args = coremlz::Args::Parse(argv_list, coremlz::api::ServerValueFlags(), coremlz::api::ServerBoolFlags());
  if (!args.ok()) {
    std::fprintf(stderr, "coremlz-worker: %s (see coremlzd --help: the worker takes the same job flags)\n",
                 std::string(args.status().message()).c_str());
    return 1;
  }
  if (args->Bool("help")) {
    std::puts("coremlz-worker - serves the internal Worker service; flags as coremlzd --help (job, limits, TLS, metrics)");
    return 0;
  }
  if (args->Has("remote-workers") || args->Has("runners") || args->Has("runners-file") || args->Has("cache-dir")) {
    std::fputs("coremlz-worker: --remote-workers, --runners and --cache-dir belong to the front (coremlzd)\n", stderr);
    return 1;
  }
  return coremlz::api::RunJobServerMain(*args, "coremlz-worker", WorkerSetup);
}
