// Everything a coremlz job server (coremlzd, coremlz-worker) is configured
// with. Defaults are sane for one machine; every limit is a flag.
#ifndef COREMLZ_API_SERVER_OPTIONS_H_
#define COREMLZ_API_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

#include "api/credentials.h"
#include "api/transfer.h"

namespace coremlz::api {

struct ServerOptions {
  std::string address = "127.0.0.1:50051";
  std::string metrics_address = "127.0.0.1:9464";  // empty: no /metrics
  // Jobs: worker threads (0 = cores), queue, memory budget (0 = half of RAM).
  int worker_threads = 0;
  int queue_capacity = 16;
  uint64_t memory_budget = 0;
  // When the queue is full: false answers RESOURCE_EXHAUSTED at once; true
  // waits for a slot within the call's deadline.
  bool wait_for_worker = false;
  int max_concurrent_calls = 64;  // Compress + Inspect calls in flight
  TransferLimits limits;      // upload size, files, chunk size
  std::string work_dir;            // private job directories live here (default $TMPDIR)
  // Compress starts a package's job while its weights still arrive when the
  // upload outpaces a worker compressing at this rate (bytes/s; an estimate
  // at the fast end: int8 runs at ~400 MB/s per core, docs/performance.md)
  // - api/stream_admission.h. 0: every job waits for its whole upload.
  double stream_rate_bytes_per_second = 500e6;
  // Learn that rate, per relative cost, from the jobs this server completed
  // (api/learned_stream_rate.h); false keeps the flag's rate and the fixed
  // factors.
  bool learn_stream_rate = true;
  // Jobs with fewer bytes of weights teach it nothing (fixed costs dominate).
  uint64_t stream_learn_min_bytes = uint64_t{16} << 20;
  // Bytes that must have arrived before the upload's rate is trusted.
  uint64_t stream_min_bytes = uint64_t{4} << 20;
  TlsFiles tls;
  std::string token_file;          // bearer tokens; empty: no authentication
  bool reflection = true;
  bool reflection_requires_token = false;  // with token_file: reflection needs the token too
  // A call slot is held only by a call that makes progress: a call must
  // send its header within header_timeout of its start (and a connection
  // finish its handshake within it), and an upload that receives nothing
  // for idle_timeout, or a response the client does not read for as long,
  // ends the call (zero: no limit).
  absl::Duration header_timeout = absl::Seconds(20);
  absl::Duration idle_timeout = absl::Seconds(60);
  // Connections: HTTP/2 keepalive pings (dead peers are dropped after
  // keepalive_time + 20 s of silence), connections without calls close
  // after connection_idle, every connection is asked to go away after
  // connection_age (calls in flight finish first), and one connection
  // carries at most max_streams_per_connection calls at once (more wait in
  // the client). Zero disables the idle and age limits.
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration connection_idle = absl::Minutes(5);
  absl::Duration connection_age = absl::Minutes(5);
  int max_streams_per_connection = 32;
  // The front's result cache (service/result_cache.h): off when cache_dir is
  // empty.
  std::string cache_dir;
  uint64_t cache_max_bytes = uint64_t{10} << 30;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_SERVER_OPTIONS_H_
