#include "api/job_server_main.h"

#include <cstdio>

#include "api/descriptor_guard.h"
#include "api/job_dirs.h"
#include "api/server_flags.h"
#include "api/termination_signal.h"

namespace coremlz::api {

int RunJobServerMain(const Args& args, const std::string& program, const JobServerSetupFn& setup) {
  // Block the termination signals in every thread; main waits for them.
  BlockTerminationSignals();

  const char* name = program.c_str();
  auto options = OptionsFromFlags(args);
  if (!options.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, std::string(options.status().message()).c_str());
    return 1;
  }
  // Descriptors: as many as allowed, and connections refused while fewer
  // than a reserve for the admitted calls is left (descriptor_guard.h).
  const uint64_t fd_limit = RaiseDescriptorLimit();
  const int reserve = 64 + 4 * options->max_concurrent_calls;
  const int max_connection_fd = GuardAccepts(fd_limit, reserve);
  if (fd_limit < static_cast<uint64_t>(2 * reserve)) {
    std::fprintf(stderr, "%s: warning: the descriptor limit (%llu, ulimit -n) leaves little room for connections "
                 "beside %d descriptors kept for --max-calls %d\n", name, static_cast<unsigned long long>(fd_limit),
                 reserve, options->max_concurrent_calls);
  }
  // Job directories of a process that was killed (job_dirs.h).
  if (const int stale = RemoveStaleJobDirs(options->work_dir); stale > 0) {
    std::fprintf(stderr, "%s: removed %d job directories left by processes that died\n", name, stale);
  }
  auto setup_done = setup(args, *options);
  if (!setup_done.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, std::string(setup_done.status().message()).c_str());
    return 1;
  }
  auto server = JobServer::Start(*options, std::move(setup_done->parts));
  if (!server.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, std::string(server.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "%s: serving gRPC on port %d, metrics on port %d, %d worker threads%s\n", name, (*server)->port(),
               (*server)->metrics_port(), (*server)->pool()->threads(), setup_done->description.c_str());
  std::fprintf(stderr, "%s: descriptor limit %llu; new connections are refused at descriptor %d\n", name,
               static_cast<unsigned long long>(fd_limit), max_connection_fd + 1);
  std::fflush(stderr);
  const int sig = WaitForTerminationSignal();
  const absl::Duration grace = DrainGraceFromFlags(args);
  std::fprintf(stderr, "%s: signal %d, draining calls for up to %lld s\n", name, sig,
               static_cast<long long>(absl::ToInt64Seconds(grace)));
  std::fflush(stderr);
  (*server)->Shutdown(grace);
  if (setup_done->on_shutdown) setup_done->on_shutdown();
  std::fprintf(stderr, "%s: stopped\n", name);
  return 0;
}

}  // namespace coremlz::api
