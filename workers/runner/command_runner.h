// Running external commands (xcrun, the harness) with a timeout and captured
// output. An interface so that tests can replay recorded outputs.
#ifndef COREMLZ_WORKERS_RUNNER_COMMAND_RUNNER_H_
#define COREMLZ_WORKERS_RUNNER_COMMAND_RUNNER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace coremlz::runner {

struct CommandOutput {
  int exit_code = 0;
  std::string stdout_text;
  std::string stderr_text;
  double seconds = 0;
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs argv[0] (looked up in PATH). DEADLINE_EXCEEDED if it outlives
  // `timeout` (the process is killed); a non-zero exit is not an error here.
  virtual absl::StatusOr<CommandOutput> Run(const std::vector<std::string>& argv, absl::Duration timeout) = 0;
};

// fork/exec with pipes.
std::unique_ptr<CommandRunner> MakeSystemCommandRunner();

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_COMMAND_RUNNER_H_
