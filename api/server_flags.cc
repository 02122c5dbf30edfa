#include "api/server_flags.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/byte_size.h"
#include "common/status_macros.h"

namespace coremlz::api {
namespace {

absl::Status SetInt(const Args& args, const std::string& flag, int64_t min, int64_t* out) {
  ASSIGN_OR_RETURN(std::optional<int64_t> v, args.Int(flag));
  if (!v) return absl::OkStatus();
  if (*v < min) return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be at least ", min));
  *out = *v;
  return absl::OkStatus();
}

// A flag in whole seconds (0 allowed: no limit).
absl::Status SetSeconds(const Args& args, const std::string& flag, absl::Duration* out) {
  int64_t seconds = absl::ToInt64Seconds(*out);
  RETURN_IF_ERROR(SetInt(args, flag, 0, &seconds));
  if (seconds > 24 * 3600 * 365) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is too large"));
  *out = absl::Seconds(seconds);
  return absl::OkStatus();
}

}  // namespace

const std::set<std::string>& ServerValueFlags() {
  static const std::set<std::string> flags = {
      "address", "metrics-address", "workers", "queue", "memory-budget-mb", "max-upload-mb", "max-files",
      "max-chunk-kb", "max-manifest-kb", "max-calls", "work-dir", "tls-cert", "tls-key", "tls-client-ca", "token-file", "remote-workers",
      "runners", "runners-file", "grace-seconds", "worker-concurrency", "runner-probe-seconds", "peer-tls-ca",
      "peer-tls-cert", "peer-tls-key", "peer-token-file", "test-job-delay-ms", "header-timeout-seconds",
      "idle-timeout-seconds", "keepalive-seconds", "connection-idle-seconds", "connection-age-seconds",
      "max-streams-per-connection", "cache-dir", "cache-max-bytes", "stream-rate-mb"};
  return flags;
}

const std::set<std::string>& ServerBoolFlags() {
  static const std::set<std::string> flags = {"wait-for-worker", "no-reflection", "reflection-requires-token",
                                              "fixed-stream-rate", "help"};
  return flags;
}

absl::StatusOr<ServerOptions> OptionsFromFlags(const Args& args) {
  ServerOptions o;
  if (auto v = args.Value("address")) o.address = *v;
  if (auto v = args.Value("metrics-address")) o.metrics_address = *v;
  int64_t n = o.worker_threads;
  RETURN_IF_ERROR(SetInt(args, "workers", 0, &n));
  o.worker_threads = static_cast<int>(n);
  n = o.queue_capacity;
  RETURN_IF_ERROR(SetInt(args, "queue", 0, &n));
  o.queue_capacity = static_cast<int>(n);
  n = static_cast<int64_t>(o.memory_budget >> 20);
  RETURN_IF_ERROR(SetInt(args, "memory-budget-mb", 0, &n));
  o.memory_budget = static_cast<uint64_t>(n) << 20;
  n = static_cast<int64_t>(o.limits.max_total_bytes >> 20);
  RETURN_IF_ERROR(SetInt(args, "max-upload-mb", 1, &n));
  o.limits.max_total_bytes = static_cast<uint64_t>(n) << 20;
  n = o.limits.max_files;
  RETURN_IF_ERROR(SetInt(args, "max-files", 1, &n));
  o.limits.max_files = static_cast<uint32_t>(n);
  n = static_cast<int64_t>(o.limits.max_chunk_bytes >> 10);
  RETURN_IF_ERROR(SetInt(args, "max-chunk-kb", 1, &n));
  o.limits.max_chunk_bytes = static_cast<uint64_t>(n) << 10;
  n = static_cast<int64_t>(o.limits.max_manifest_bytes >> 10);
  RETURN_IF_ERROR(SetInt(args, "max-manifest-kb", 1, &n));
  o.limits.max_manifest_bytes = static_cast<uint64_t>(n) << 10;
  n = o.max_concurrent_calls;
  RETURN_IF_ERROR(SetInt(args, "max-calls", 1, &n));
  o.max_concurrent_calls = static_cast<int>(n);
  if (auto v = args.Value("work-dir")) o.work_dir = *v;
  n = static_cast<int64_t>(o.stream_rate_bytes_per_second / 1e6);
  RETURN_IF_ERROR(SetInt(args, "stream-rate-mb", 0, &n));
  o.stream_rate_bytes_per_second = static_cast<double>(std::min<int64_t>(n, int64_t{1} << 30)) * 1e6;
  if (auto v = args.Value("tls-cert")) o.tls.cert = *v;
  if (auto v = args.Value("tls-key")) o.tls.key = *v;
  if (auto v = args.Value("tls-client-ca")) o.tls.client_ca = *v;
  if (auto v = args.Value("token-file")) o.token_file = *v;
  o.wait_for_worker = args.Bool("wait-for-worker");
  o.learn_stream_rate = !args.Bool("fixed-stream-rate");
  o.reflection = !args.Bool("no-reflection");
  o.reflection_requires_token = args.Bool("reflection-requires-token");
  if (o.reflection_requires_token && o.token_file.empty()) {
    return absl::InvalidArgumentError("--reflection-requires-token needs --token-file");
  }
  RETURN_IF_ERROR(SetSeconds(args, "header-timeout-seconds", &o.header_timeout));
  RETURN_IF_ERROR(SetSeconds(args, "idle-timeout-seconds", &o.idle_timeout));
  RETURN_IF_ERROR(SetSeconds(args, "keepalive-seconds", &o.keepalive_time));
  RETURN_IF_ERROR(SetSeconds(args, "connection-idle-seconds", &o.connection_idle));
  RETURN_IF_ERROR(SetSeconds(args, "connection-age-seconds", &o.connection_age));
  n = o.max_streams_per_connection;
  RETURN_IF_ERROR(SetInt(args, "max-streams-per-connection", 1, &n));
  o.max_streams_per_connection = static_cast<int>(std::min<int64_t>(n, 1 << 20));
  if (auto v = args.Value("cache-dir")) o.cache_dir = *v;
  if (auto v = args.Value("cache-max-bytes")) {
    auto size = ParseByteSize(*v);
    if (!size.ok()) return absl::InvalidArgumentError(absl::StrCat("--cache-max-bytes: ", size.status().message()));
    o.cache_max_bytes = *size;
    if (o.cache_dir.empty()) return absl::InvalidArgumentError("--cache-max-bytes needs --cache-dir");
  }
  return o;
}

absl::Duration DrainGraceFromFlags(const Args& args) {
  // A bad value keeps the default rather than stopping a server that is
  // already shutting down.
  int64_t grace = 30;
  (void)SetInt(args, "grace-seconds", 0, &grace);
  return absl::Seconds(grace);
}

}  // namespace coremlz::api
