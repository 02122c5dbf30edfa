// coremlzd: the coremlz front server. With no other flags it is a complete
// system on one machine: gRPC API, in-process worker pool, /metrics.
#include <csignal>
#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "api/job_server_main.h"
#include "api/server_flags.h"
#include "common/arg_parser.h"
#include "service/front_setup.h"

namespace {

constexpr char kUsage[] = R"(coremlzd - the coremlz compression service

usage: coremlzd [options]
  --address HOST:PORT        gRPC address (default 127.0.0.1:50051; 0.0.0.0:50051 in containers)
  --metrics-address H:P      Prometheus /metrics (default 127.0.0.1:9464; "" disables)
  --workers N                compression threads (default: cores)
  --queue N                  jobs waiting beyond the running ones (default 16)
  --wait-for-worker          wait for a free worker within the call's deadline instead of
                             answering RESOURCE_EXHAUSTED
  --memory-budget-mb N       memory for jobs in flight (default: half of RAM)
  --max-upload-mb N          largest upload (default 8192)
  --max-files N              most files in an upload (default 1000)
  --max-chunk-kb N           largest chunk (default 1024)
  --max-manifest-kb N        largest Manifest.json of an uploaded package (default 1024)
  --max-calls N              Compress/Inspect calls in flight (default 64)
  --work-dir DIR             private job directories (default $TMPDIR)
  --stream-rate-mb N         start a package's job while its weights still arrive once the
                             upload is fast enough that a worker compressing at N MB/s would
                             not catch up with it (default 500; 0: only after the upload).
                             N is int8's rate; slower techniques divide it by their measured
                             relative cost (k-means 1.8, vector k-means 4-6.5, grouped 13).
                             That is the prior: each relative cost's rate is then learned from
                             the completed jobs of 16 MB or more (an upper quantile of its last
                             16, within 4x of the prior)
  --fixed-stream-rate        keep N and the fixed factors; learn nothing
  --cache-dir DIR            cache results by content: an identical call (same files, normalised
                             config, target, report-only, coremlz version) is answered from disk,
                             re-verified by SHA-256; identical calls in flight compress once
  --cache-max-bytes SIZE     bound of the cache, least recently used evicted (default 10G)
  --tls-cert/--tls-key FILE  serve TLS
  --tls-client-ca FILE       require client certificates (mTLS)
  --token-file FILE          require "authorization: Bearer <token>" (one token per line) on the
                             Compressor and Worker services; health and /metrics stay open
  --no-reflection            do not register gRPC server reflection
  --reflection-requires-token  reflection needs the token too (with --token-file)
  --header-timeout-seconds N a call must send its header, and a connection finish its
                             handshake, within N s (default 20; 0: no limit)
  --idle-timeout-seconds N   end a call whose upload receives nothing, or whose client reads
                             nothing, for N s (default 60; 0: no limit)
  --keepalive-seconds N      ping clients after N s without traffic, drop them 20 s later
                             (default 60; 0: off)
  --connection-idle-seconds N  close connections without calls after N s (default 300; 0: never)
  --connection-age-seconds N ask clients to reconnect after N s; calls in flight finish
                             (default 300; 0: never)
  --max-streams-per-connection N  calls at once on one connection; more wait in the client
                             (default 32)
  --remote-workers TARGET    run jobs on coremlz-worker processes (dns:///name:port or a,b,c)
  --runners TARGETS          device runners for validation (host:port,... or dns:///name:port)
  --runners-file FILE        device runners, one per line
  --runner-probe-seconds N   how often runners are described (default 5)
  --worker-concurrency N     jobs per remote worker (default 2)
  --peer-tls-ca/--peer-tls-cert/--peer-tls-key FILE   TLS for dialling workers and runners
  --peer-token-file FILE     bearer token sent to workers and runners (default: the first
                             token of --token-file)
  --grace-seconds N          drain time on SIGTERM (default 30)
  --test-job-delay-ms N      test knob: every weight of every job takes N ms longer
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  auto args = coremlz::Args::Parse(argv_list, coremlz::api::ServerValueFlags(),
                                        coremlz::api::ServerBoolFlags());
  if (!args.ok()) {
    std::fprintf(stderr, "coremlzd: %s\n%s", std::string(args.status().message()).c_str(), kUsage);
    return 1;
  }
  if (args->Bool("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return coremlz::api::RunJobServerMain(*args, "coremlzd", coremlz::service::FrontSetup);
}
