#include "service/pools_from_flags.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/credentials.h"
#include "api/test_job_delay.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "service/remote_trials.h"
#include "service/remote_worker_pool.h"
#include "service/runner_pool.h"

namespace coremlz::service {
namespace {

std::vector<std::string> SplitList(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, absl::ByAnyChar(",\n"))) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty() || part[0] == '#') continue;
    out.emplace_back(part);
  }
  return out;
}

}  // namespace

absl::StatusOr<Pools> PoolsFromFlags(const Args& args, const api::ServerOptions& options) {
  Pools pools;
  // Credentials for dialling internal peers (workers, runners): TLS only
  // with the --peer-tls-* files (the front's own certificate is a server
  // certificate); the token of --peer-token-file, or else the front's own
  // (the first one in --token-file), so that one secret can guard a front
  // and its workers.
  api::TlsFiles peer_tls;
  peer_tls.client_ca = args.Value("peer-tls-ca").value_or("");
  peer_tls.cert = args.Value("peer-tls-cert").value_or("");
  peer_tls.key = args.Value("peer-tls-key").value_or("");
  std::string peer_token;
  if (auto path = args.Value("peer-token-file")) {
    ASSIGN_OR_RETURN(peer_token, api::ReadToken(*path));
  } else if (!options.token_file.empty()) {
    ASSIGN_OR_RETURN(peer_token, api::ReadToken(options.token_file));
  }

  if (auto target = args.Value("remote-workers")) {
    RemoteWorkerPoolOptions o;
    o.target = *target;
    o.tls = peer_tls;
    o.token = peer_token;
    ASSIGN_OR_RETURN(std::optional<int64_t> per_worker, args.Int("worker-concurrency"));
    if (per_worker) o.per_worker_concurrency = static_cast<int>(*per_worker);
    o.queue_capacity = options.queue_capacity;
    o.work_dir = options.work_dir;
    ASSIGN_OR_RETURN(pools.worker_pool, MakeRemoteWorkerPool(o));
    RemoteTrialsOptions trials;
    trials.target = *target;
    trials.tls = peer_tls;
    trials.token = peer_token;
    pools.plan_fan_out = MakeRemoteTrialsFanOut(trials);
    absl::StrAppend(&pools.description, ", remote workers at ", *target);
  }
  ASSIGN_OR_RETURN(pools.worker_pool, api::WithTestJobDelay(args, options, std::move(pools.worker_pool), &pools.description));
  std::vector<std::string> runners;
  if (auto list = args.Value("runners")) {
    for (auto& r : SplitList(*list)) runners.push_back(r);
  }
  if (auto path = args.Value("runners-file")) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(*path, 1 << 20));
    for (auto& r : SplitList(text)) runners.push_back(r);
  }
  if (!runners.empty()) {
    RunnerPoolOptions o;
    o.targets = runners;
    o.tls = peer_tls;
    o.token = peer_token;
    ASSIGN_OR_RETURN(std::optional<int64_t> probe, args.Int("runner-probe-seconds"));
    if (probe) o.probe_interval = absl::Seconds(*probe);
    // The metrics object belongs to the server, created later: runner_up is
    // registered on first probe through the validator's own registry hook.
    ASSIGN_OR_RETURN(std::unique_ptr<RunnerPool> pool, RunnerPool::Create(std::move(o), nullptr));
    pools.validator = std::move(pool);
    absl::StrAppend(&pools.description, ", ", runners.size(), " runner target(s)");
  }
  return pools;
}

}  // namespace coremlz::service
