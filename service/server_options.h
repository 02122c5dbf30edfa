// Everything a coremlzd front server is configured with. Defaults are sane
// for one machine; every limit is a flag of coremlzd.
#ifndef COREMLZ_SERVICE_SERVER_OPTIONS_H_
#define COREMLZ_SERVICE_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>

#include "api/credentials.h"
#include "api/transfer.h"

namespace coremlz::service {

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
  api::TransferLimits limits;      // upload size, files, chunk size
  std::string work_dir;            // private job directories live here (default $TMPDIR)
  api::TlsFiles tls;
  std::string token_file;          // bearer tokens; empty: no authentication
  bool reflection = true;
  // Also serve the internal Worker service (coremlz-worker).
  bool worker_api = false;
};

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_SERVER_OPTIONS_H_
