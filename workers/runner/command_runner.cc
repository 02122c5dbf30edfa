// fork/exec with both output pipes drained concurrently through poll(), so a
// child that fills one pipe while we wait on the other cannot deadlock us.
// The child leads its own process group: `xcrun` runs the real tool as a
// grandchild, and a timeout must kill both.
#include "workers/runner/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coremlz::runner {
namespace {

// Beyond this a stream is cut (with a marker): a runaway tool must not take
// the runner's memory with it.
constexpr size_t kMaxStreamBytes = size_t{64} << 20;
// After the child exits, how long to keep reading from descendants that
// still hold the pipes open.
constexpr auto kDrainGrace = std::chrono::milliseconds(500);

bool MakePipe(int fds[2]) {
  if (::pipe(fds) != 0) return false;
  for (int i = 0; i < 2; ++i) ::fcntl(fds[i], F_SETFD, FD_CLOEXEC);
  return true;
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Appends what is readable; false at end of stream.
bool ReadSome(int fd, std::string* out, bool* truncated) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      const size_t room = out->size() < kMaxStreamBytes ? kMaxStreamBytes - out->size() : 0;
      out->append(buf, std::min(room, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) > room) *truncated = true;
      return true;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return false;
  }
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

class SystemCommandRunner : public CommandRunner {
 public:
  absl::StatusOr<CommandOutput> Run(const std::vector<std::string>& argv, absl::Duration timeout) override {
    if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("empty command line");
    // Everything the child touches is prepared before fork: after it only
    // async-signal-safe calls are allowed in a threaded process.
    std::vector<char*> cargv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);

    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
    if (!MakePipe(out_pipe) || !MakePipe(err_pipe) || !MakePipe(exec_pipe)) {
      const int e = errno;
      for (int* p : {out_pipe, err_pipe, exec_pipe}) {
        CloseFd(p[0]);
        CloseFd(p[1]);
      }
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(e)));
    }
    const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      for (int* p : {out_pipe, err_pipe, exec_pipe}) {
        CloseFd(p[0]);
        CloseFd(p[1]);
      }
      if (devnull >= 0) ::close(devnull);
      return absl::ResourceExhaustedError(absl::StrCat("fork: ", std::strerror(e)));
    }
    if (pid == 0) {
      ::setpgid(0, 0);
      if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
      ::dup2(out_pipe[1], STDOUT_FILENO);
      ::dup2(err_pipe[1], STDERR_FILENO);
      ::signal(SIGPIPE, SIG_DFL);
      ::execvp(cargv[0], cargv.data());
      const int e = errno;
      ssize_t ignored = ::write(exec_pipe[1], &e, sizeof e);
      (void)ignored;
      ::_exit(127);
    }
    // Also from the parent, so that a kill right after fork reaches the group.
    ::setpgid(pid, pid);
    if (devnull >= 0) ::close(devnull);
    CloseFd(out_pipe[1]);
    CloseFd(err_pipe[1]);
    CloseFd(exec_pipe[1]);

    // The exec pipe closes on a successful exec (CLOEXEC) or carries errno.
    int exec_errno = 0;
    for (;;) {
      const ssize_t n = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
      if (n < 0 && errno == EINTR) continue;
      if (n != static_cast<ssize_t>(sizeof exec_errno)) exec_errno = 0;
      break;
    }
    CloseFd(exec_pipe[0]);
    if (exec_errno != 0) {
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      CloseFd(out_pipe[0]);
      CloseFd(err_pipe[0]);
      const std::string what = absl::StrCat(argv[0], ": ", std::strerror(exec_errno));
      if (exec_errno == ENOENT) return absl::NotFoundError(absl::StrCat(what, " (not found in PATH)"));
      if (exec_errno == EACCES) return absl::PermissionDeniedError(what);
      return absl::InternalError(absl::StrCat("exec ", what));
    }

    CommandOutput result;
    bool out_truncated = false, err_truncated = false;
    // Clamped: an infinite duration would overflow the clock arithmetic.
    const auto deadline = start + absl::ToChronoNanoseconds(std::min(timeout, absl::Hours(24 * 30)));
    bool reaped = false, timed_out = false;
    int status = 0;
    std::chrono::steady_clock::time_point drain_until{};
    while (out_pipe[0] >= 0 || err_pipe[0] >= 0) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        timed_out = true;
        break;
      }
      if (reaped && now >= drain_until) break;
      if (!reaped) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {  // ECHILD: reaped elsewhere
          reaped = true;
          drain_until = now + kDrainGrace;
        }
      }
      struct pollfd fds[2];
      int nfds = 0;
      for (int fd : {out_pipe[0], err_pipe[0]}) {
        if (fd >= 0) fds[nfds++] = {fd, POLLIN, 0};
      }
      // Short slices so that the deadline and the child's exit are noticed.
      const auto slice = std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(100));
      const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(slice).count()) + 1;
      const int ready = ::poll(fds, nfds, ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < nfds; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const bool is_out = fds[i].fd == out_pipe[0];
        const bool more = ReadSome(fds[i].fd, is_out ? &result.stdout_text : &result.stderr_text,
                                   is_out ? &out_truncated : &err_truncated);
        if (!more) CloseFd(is_out ? out_pipe[0] : err_pipe[0]);
      }
    }
    const bool descendants_hold_pipes = out_pipe[0] >= 0 || err_pipe[0] >= 0;
    // Both streams ended but the child may still be running (it closed them
    // itself): it still gets until the deadline.
    while (!reaped && !timed_out && !descendants_hold_pipes) {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid || (r < 0 && errno == ECHILD)) {
        reaped = true;
      } else if (std::chrono::steady_clock::now() >= deadline) {
        timed_out = true;
      } else {
        ::usleep(2000);
      }
    }
    CloseFd(out_pipe[0]);
    CloseFd(err_pipe[0]);
    // Whatever is left of the group (a timed-out tool, or descendants that
    // outlived it) goes. Only then: once the group is empty its id may be
    // reused by someone else's process.
    if (!reaped || descendants_hold_pipes) ::kill(-pid, SIGKILL);
    if (!reaped) {
      if (timed_out) ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (timed_out && !reaped) {
      std::string msg = absl::StrCat("`", absl::StrJoin(argv, " "), "` did not finish within ",
                                     absl::FormatDuration(timeout), " and was killed");
      if (!result.stderr_text.empty()) absl::StrAppend(&msg, "; its stderr so far: ", result.stderr_text);
      return absl::DeadlineExceededError(msg);
    }
    if (out_truncated) absl::StrAppend(&result.stdout_text, "\n[output cut at 64 MiB]");
    if (err_truncated) absl::StrAppend(&result.stderr_text, "\n[output cut at 64 MiB]");
    result.exit_code = ExitCode(status);
    return result;
  }
};

}  // namespace

std::unique_ptr<CommandRunner> MakeSystemCommandRunner() { return std::make_unique<SystemCommandRunner>(); }

}  // namespace coremlz::runner
