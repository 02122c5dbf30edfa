#include "tests/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <regex>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace coremlz::testing {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const std::string& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

int WaitExit(pid_t pid, absl::Duration timeout, long* max_rss_kb = nullptr) {
  const absl::Time end = absl::Now() + timeout;
  int status = 0;
  while (absl::Now() < end) {
    rusage usage{};
    pid_t r = ::wait4(pid, &status, WNOHANG, &usage);
    if (r == pid) {
      if (max_rss_kb != nullptr) *max_rss_kb = usage.ru_maxrss;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return -1;
}

}  // namespace

std::string BinaryPath(const std::string& relative) { return absl::StrCat(COREMLZ_BINARY_DIR, "/", relative); }

CommandResult RunProgram(const std::vector<std::string>& argv, absl::Duration timeout) {
  return RunProgramIn("", argv, timeout);
}

CommandResult RunProgramIn(const std::string& dir, const std::vector<std::string>& argv, absl::Duration timeout) {
  CommandResult result;
  auto io = MakeTempDirectory("coremlz-run-");
  if (!io.ok()) return result;
  const std::string out = *io + "/out", err = *io + "/err";
  pid_t pid = ::fork();
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, 1);
    ::dup2(e, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    if (!dir.empty() && ::chdir(dir.c_str()) != 0) ::_exit(126);
    auto args = Argv(argv);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  result.exit_code = WaitExit(pid, timeout, &result.max_rss_kb);
  if (result.exit_code == -1) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  result.out = ReadFile(out).value_or("");
  result.err = ReadFile(err).value_or("");
  (void)RemoveAll(*io);
  return result;
}

Daemon::Daemon(const std::vector<std::string>& argv, const std::string& ready_marker, absl::Duration timeout) {
  auto dir = MakeTempDirectory("coremlz-daemon-");
  if (!dir.ok()) return;
  log_path_ = *dir + "/log";
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    auto args = Argv(argv);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    port_ = NumberAfter(ready_marker);
    if (port_ > 0) return;
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (!log_path_.empty()) (void)RemoveAll(log_path_.substr(0, log_path_.rfind('/')));
}

std::string Daemon::log() const { return ReadFile(log_path_).value_or(""); }

int Daemon::NumberAfter(const std::string& marker) const {
  const std::string text = log();
  const size_t pos = text.find(marker);
  if (pos == std::string::npos) return 0;
  return std::atoi(text.c_str() + pos + marker.size());
}

int Daemon::Stop(int sig, absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  const int code = WaitExit(pid_, timeout);
  if (code != -1) pid_ = -1;
  return code;
}

}  // namespace coremlz::testing
