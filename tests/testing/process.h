// Running the project's binaries from tests: one-shot commands with their
// output and exit code, and background daemons whose log is read for the
// port they chose.
#ifndef COREMLZ_TESTS_TESTING_PROCESS_H_
#define COREMLZ_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace coremlz::testing {

// The build directory holding the binaries (clients/coremlz, ...).
std::string BinaryPath(const std::string& relative);

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
  // The child's peak resident set (getrusage of the waited-for child, in
  // KiB); -1 when it was killed on timeout.
  long max_rss_kb = -1;
};

// Runs argv[0] with the arguments, waiting at most `timeout` (then SIGKILL).
CommandResult RunProgram(const std::vector<std::string>& argv, absl::Duration timeout = absl::Seconds(120));
// The same with `dir` as the working directory (for relative paths like ".").
CommandResult RunProgramIn(const std::string& dir, const std::vector<std::string>& argv,
                           absl::Duration timeout = absl::Seconds(120));

class Daemon {
 public:
  // Starts the program with stderr/stdout to a log file and waits until the
  // log contains `ready_marker` followed by a number (returned by port()).
  Daemon(const std::vector<std::string>& argv, const std::string& ready_marker, absl::Duration timeout = absl::Seconds(20));
  ~Daemon();  // SIGKILL if still running
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const;
  // A second number after another marker (e.g. the metrics port).
  int NumberAfter(const std::string& marker) const;
  // Sends `sig` and waits for the exit; returns the exit code (-1 on timeout).
  int Stop(int sig, absl::Duration timeout = absl::Seconds(30));

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

}  // namespace coremlz::testing

#endif  // COREMLZ_TESTS_TESTING_PROCESS_H_
