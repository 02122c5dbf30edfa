// Running out of file descriptors must not wedge the server. gRPC 1.51
// stops accepting on a listening port for good once accept4() fails with
// anything but EAGAIN/ECONNABORTED/EINTR (EMFILE included: "Failed
// accept4: Too many open files", after which the port is dead while the
// process lives on), and it has no connection limit of its own. So:
//  - the soft RLIMIT_NOFILE is raised to the hard limit at start;
//  - coremlzd and coremlz-worker interpose accept4() (the executables
//    export it; see their CMakeLists.txt): a connection accepted while
//    fewer than `reserve` descriptors are left is closed at once (the
//    client sees UNAVAILABLE and may retry), and errors that would end the
//    listener are reported to gRPC as EAGAIN, which keeps it listening.
// The reserve keeps descriptors for the calls already admitted (upload and
// artifact files, job directory locks, worker and runner channels).
#ifndef COREMLZ_API_DESCRIPTOR_GUARD_H_
#define COREMLZ_API_DESCRIPTOR_GUARD_H_

#include <cstdint>

namespace coremlz::api {

// Raises the soft descriptor limit to the hard one; returns the soft limit
// now in force.
uint64_t RaiseDescriptorLimit();

// Starts refusing connections accepted with fewer than `reserve`
// descriptors left under `limit`. Returns the highest descriptor number a
// connection may get.
int GuardAccepts(uint64_t limit, int reserve);

// Connections refused so far.
uint64_t RefusedConnections();

}  // namespace coremlz::api

#endif  // COREMLZ_API_DESCRIPTOR_GUARD_H_
