#include "api/descriptor_guard.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <limits>

namespace coremlz::api {
namespace {

// Accepted descriptors at or above this number are refused; -1: no guard.
std::atomic<int> g_first_refused{-1};
// Held open so that, with no descriptor left at all, one can be freed to
// take a connection off the queue and close it.
std::atomic<int> g_spare{-1};
std::atomic<uint64_t> g_refused{0};

using Accept4Fn = int (*)(int, sockaddr*, socklen_t*, int);

Accept4Fn RealAccept4() {
  static const Accept4Fn fn = reinterpret_cast<Accept4Fn>(::dlsym(RTLD_NEXT, "accept4"));
  return fn;
}

}  // namespace

uint64_t RaiseDescriptorLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  if (r.rlim_cur < r.rlim_max) {
    rlimit raised = r;
    raised.rlim_cur = r.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) r = raised;
  }
  return r.rlim_cur == RLIM_INFINITY ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(r.rlim_cur);
}

int GuardAccepts(uint64_t limit, int reserve) {
  const uint64_t capped = std::min<uint64_t>(limit, std::numeric_limits<int>::max());
  const int first_refused = static_cast<int>(std::max<int64_t>(16, static_cast<int64_t>(capped) - reserve));
  if (g_spare.load() < 0) g_spare.store(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  (void)RealAccept4();  // resolve now, not on the first connection
  g_first_refused.store(first_refused);
  return first_refused - 1;
}

uint64_t RefusedConnections() { return g_refused.load(); }

}  // namespace coremlz::api

using coremlz::api::g_first_refused;
using coremlz::api::g_refused;
using coremlz::api::g_spare;

// Every accept4() of the process: gRPC's listeners call it through the PLT,
// so this definition, exported by the executable, takes their calls.
extern "C" int accept4(int listener, sockaddr* addr, socklen_t* addr_len, int flags) {
  const auto real = coremlz::api::RealAccept4();
  const int first_refused = g_first_refused.load(std::memory_order_relaxed);
  if (first_refused < 0 || real == nullptr) {
    if (real == nullptr) {
      errno = ENOSYS;
      return -1;
    }
    return real(listener, addr, addr_len, flags);
  }
  // Refused connections are drained here, so that the caller sees the next
  // acceptable one or EAGAIN (gRPC then waits for the next connection).
  for (;;) {
    const int fd = real(listener, addr, addr_len, flags);
    if (fd >= 0) {
      // Descriptors are allocated lowest first: a number this high means
      // every lower one is in use.
      if (fd < first_refused) return fd;
      ::close(fd);
      g_refused.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const int err = errno;
    if (err == EMFILE || err == ENFILE) {
      const int spare = g_spare.exchange(-1);
      if (spare >= 0) {
        ::close(spare);
        const int dropped = real(listener, nullptr, nullptr, flags);
        if (dropped >= 0) {
          ::close(dropped);
          g_refused.fetch_add(1, std::memory_order_relaxed);
        }
        g_spare.store(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (dropped >= 0) continue;
      }
      errno = EAGAIN;
      return -1;
    }
    if (err == ENOBUFS || err == ENOMEM || err == EPERM || err == EPROTO) {
      errno = EAGAIN;  // transient: keep the listener alive
      return -1;
    }
    errno = err;
    return -1;
  }
}
