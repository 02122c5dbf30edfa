#include "service/runner_pool.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/channel.h"
#include "api/client_call.h"
#include "api/device_selector.h"
#include "api/grpc_status.h"
#include "api/transfer.h"
#include "common/status_macros.h"

namespace coremlz::service {
namespace {

// A runner named without a port listens on coremlz-runner's default.
constexpr char kDefaultRunnerPort[] = "50061";

}  // namespace

absl::StatusOr<std::unique_ptr<RunnerPool>> RunnerPool::Create(RunnerPoolOptions options, ServerMetrics* metrics) {
  if (options.targets.empty()) return absl::InvalidArgumentError("a runner pool needs at least one runner address");
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds, api::ChannelCredentials(options.tls));
  std::unique_ptr<RunnerPool> pool(new RunnerPool(std::move(options), metrics, std::move(creds)));
  pool->ProbeAll();
  RunnerPool* raw = pool.get();
  pool->prober_ = std::thread([raw] {
    while (true) {
      {
        absl::MutexLock lock(&raw->mu_);
        if (raw->stopping_) break;
        raw->cv_.WaitWithTimeout(&raw->mu_, absl::Milliseconds(200));
        if (raw->stopping_) break;
      }
      raw->Resolve();
      std::vector<std::string> due;
      {
        absl::MutexLock lock(&raw->mu_);
        for (const auto& [addr, r] : raw->runners_) {
          if (absl::Now() >= r.next_probe) due.push_back(addr);
        }
      }
      for (const std::string& a : due) raw->Probe(a, false);
    }
  });
  return pool;
}

RunnerPool::~RunnerPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
    // Validations in flight finish (their callers are gone or going).
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (active_.load() != 0 && !cv_.WaitWithDeadline(&mu_, give_up)) {
    }
  }
  if (prober_.joinable()) prober_.join();
}

void RunnerPool::Resolve() {
  std::set<std::string> wanted;
  for (const std::string& t : options_.targets) {
    if (std::optional<std::string> name = api::DnsName(t)) {
      const api::HostPort hp = api::SplitHostPort(*name).value_or(api::HostPort{*name, kDefaultRunnerPort});
      absl::StatusOr<api::ResolvedAddresses> found = api::ResolveHost(hp.host, hp.port);
      if (!found.ok()) continue;  // a name that does not resolve now has no runners now
      wanted.insert(found->ipv4.begin(), found->ipv4.end());
      wanted.insert(found->ipv6.begin(), found->ipv6.end());
    } else {
      wanted.insert(t);
    }
  }
  absl::MutexLock lock(&mu_);
  for (auto it = runners_.begin(); it != runners_.end();) {
    if (!wanted.count(it->first)) {
      WithMetrics([&](ServerMetrics* m) { m->RunnerUp(it->first, false); });
      it = runners_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& a : wanted) {
    if (runners_.count(a)) continue;
    Runner r;
    r.address = a;
    r.channel = api::OpenChannel(a, creds_);
    r.stub = v1::DeviceRunner::NewStub(r.channel);
    runners_.emplace(a, std::move(r));
  }
}

void RunnerPool::Probe(const std::string& address, bool force) {
  v1::DeviceRunner::Stub* stub;
  {
    absl::MutexLock lock(&mu_);
    auto it = runners_.find(address);
    if (it == runners_.end() || (!force && absl::Now() < it->second.next_probe)) return;
    stub = it->second.stub.get();
  }
  grpc::ClientContext ctx;
  api::PrepareCall(&ctx, absl::Now() + options_.probe_timeout, options_.token);
  v1::RunnerDescription description;
  grpc::Status s = stub->Describe(&ctx, v1::DescribeRequest(), &description);
  absl::MutexLock lock(&mu_);
  auto it = runners_.find(address);
  if (it == runners_.end()) return;
  Runner& r = it->second;
  r.probed = true;
  r.last_probe = absl::Now();
  if (s.ok()) {
    r.up = true;
    r.failures = 0;
    r.description = description;
    r.last_error.clear();
    r.next_probe = absl::Now() + options_.probe_interval;
  } else {
    r.up = false;
    r.last_error = absl::StrCat(static_cast<int>(s.error_code()) == 14 ? "unreachable" : "describe failed", ": ", s.error_message());
    ++r.failures;
    // Exponential backoff for down runners: 1 s, 2 s, 4 s, ... max_backoff.
    absl::Duration backoff = absl::Seconds(1) * (1 << std::min(r.failures - 1, 10));
    r.next_probe = absl::Now() + std::min(backoff, options_.max_backoff);
  }
  WithMetrics([&](ServerMetrics* m) { m->RunnerUp(address, r.up); });
}

void RunnerPool::ProbeAll() {
  Resolve();
  std::vector<std::string> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [a, r] : runners_) all.push_back(a);
  }
  for (const std::string& a : all) Probe(a, true);
}

void RunnerPool::MarkDown(const std::string& address, const std::string& error) {
  absl::MutexLock lock(&mu_);
  auto it = runners_.find(address);
  if (it == runners_.end()) return;
  it->second.up = false;
  it->second.last_error = error;
  ++it->second.failures;
  it->second.next_probe = absl::Now() + absl::Seconds(1);
  WithMetrics([&](ServerMetrics* m) { m->RunnerUp(address, false); });
}

void RunnerPool::WithMetrics(const std::function<void(ServerMetrics*)>& fn) {
  absl::MutexLock lock(&metrics_mu_);
  if (metrics_ != nullptr) fn(metrics_);
}

void RunnerPool::SetMetrics(ServerMetrics* metrics) {
  {
    absl::MutexLock lock(&metrics_mu_);
    metrics_ = metrics;
  }
  // Lock order everywhere: mu_, then metrics_mu_.
  absl::MutexLock lock(&mu_);
  for (const auto& entry : runners_) {  // not a structured binding: C++17 lambdas cannot capture one
    WithMetrics([&](ServerMetrics* m) { m->RunnerUp(entry.first, entry.second.up); });
  }
}

std::vector<v1::RunnerStatus> RunnerPool::Runners() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::RunnerStatus> out;
  for (const auto& [a, r] : runners_) {
    v1::RunnerStatus s;
    s.set_address(a);
    s.set_up(r.up);
    s.set_runner_id(r.description.runner_id());
    s.set_backend(r.description.backend());
    *s.mutable_devices() = r.description.devices();
    s.set_free_slots(r.description.free_slots());
    s.set_last_error(r.last_error);
    if (r.last_probe != absl::InfinitePast()) s.set_last_probe_unix_ms(absl::ToUnixMillis(r.last_probe));
    out.push_back(std::move(s));
  }
  return out;
}

void RunnerPool::Validate(ValidationJob job) {
  active_.fetch_add(1);
  std::thread([this, job = std::move(job)]() mutable {
    Run(std::move(job));
    absl::MutexLock lock(&mu_);
    active_.fetch_sub(1);
    cv_.SignalAll();
  }).detach();
}

absl::StatusOr<v1::ValidationResult> RunnerPool::Attempt(const std::string& address, const ValidationJob& job,
                                                         grpc::Status* status) {
  v1::DeviceRunner::Stub* stub;
  {
    absl::MutexLock lock(&mu_);
    auto it = runners_.find(address);
    if (it == runners_.end()) return absl::UnavailableError("runner left the pool");
    stub = it->second.stub.get();
  }
  std::string compressed_root, original_root;
  ASSIGN_OR_RETURN(std::vector<v1::FileInfo> compressed, api::DescribeModelFiles(job.compressed_path, &compressed_root));
  std::vector<v1::FileInfo> original;
  if (!job.original_path.empty()) { ASSIGN_OR_RETURN(original, api::DescribeModelFiles(job.original_path, &original_root)); }
  v1::ValidateRequest header;
  *header.mutable_header()->mutable_request() = job.request;
  for (const auto& f : compressed) *header.mutable_header()->add_compressed_files() = f;
  for (const auto& f : original) *header.mutable_header()->add_original_files() = f;
  *header.mutable_header()->mutable_report() = job.report;

  grpc::ClientContext ctx;
  api::PrepareCall(&ctx, job.deadline, options_.token);
  auto stream = stub->Validate(&ctx);
  std::optional<v1::ValidationResult> result;
  {
    api::CallCanceller canceller(&ctx, job.control ? std::function<bool()>([&] { return job.control->Cancelled(); }) : nullptr,
                                 absl::Milliseconds(50));
    std::thread writer([&] {
      if (!stream->Write(header)) return;
      auto send = [&](v1::FileChunk&& c) {
        v1::ValidateRequest r;
        *r.mutable_chunk() = std::move(c);
        return stream->Write(r);
      };
      if (!api::SendFiles(compressed_root, compressed, 0, send).ok()) return;
      if (!original.empty() && !api::SendFiles(original_root, original, static_cast<uint32_t>(compressed.size()), send).ok()) return;
      stream->WritesDone();
    });
    v1::ValidateResponse response;
    while (stream->Read(&response)) {
      if (response.has_result() && !result) result = response.result();
    }
    writer.join();
    *status = stream->Finish();
  }
  if (!status->ok()) return api::FromGrpcStatus(*status);
  if (!result) return absl::DataLossError("the runner ended the call without a result");
  if (!result->has_device() || result->backend().empty()) {
    return absl::DataLossError("the runner's result names no device or backend");
  }
  result->set_runner(address);
  return *result;
}


void RunnerPool::Run(ValidationJob job) {
  const absl::Time start = absl::Now();
  std::vector<std::string> attempts;
  // Candidates: up, with a matching device; most free slots first.
  std::vector<std::pair<int, std::string>> candidates;
  std::string matched_model;  // for the metrics label
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [addr, r] : runners_) {
      if (!r.up) {
        attempts.push_back(absl::StrCat(addr, ": down (", r.last_error.empty() ? "not probed yet" : r.last_error, ")"));
        continue;
      }
      int free = 0, matching = 0;
      for (const auto& d : r.description.devices()) {
        if (!api::MatchesSelector(d, job.request.device())) continue;
        if (matched_model.empty()) matched_model = d.model();
        ++matching;
        free += d.state() == "available";
      }
      if (matching == 0) {
        attempts.push_back(absl::StrCat(addr, ": skipped, no device matches"));
        continue;
      }
      candidates.emplace_back(free, addr);
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  // The metrics label is the model of a device that matched, never the
  // caller's text: callers choose the selector, runners bound the set.
  const std::string& wanted = job.request.device().model();
  std::string device_label = wanted.empty() || wanted == "any" ? "any"
                             : matched_model.empty()             ? "unmatched"
                                                                 : matched_model;
  int tries = 0;
  for (const auto& [free, addr] : candidates) {
    if (tries >= options_.max_attempts) break;
    if (job.control && job.control->Cancelled()) break;
    if (absl::Now() >= job.deadline) break;
    ++tries;
    grpc::Status status;
    absl::StatusOr<v1::ValidationResult> result = Attempt(addr, job, &status);
    if (result.ok()) {
      for (const std::string& a : attempts) result->add_attempts(a);
      WithMetrics([&](ServerMetrics* m) { m->Validation(device_label, result->passed() ? "passed" : "failed", absl::ToDoubleSeconds(absl::Now() - start)); });
      job.done(std::move(*result));
      return;
    }
    attempts.push_back(absl::StrCat(addr, ": ", absl::StatusCodeToString(result.status().code()), " ", result.status().message()));
    const absl::StatusCode code = result.status().code();
    if (job.control && job.control->Cancelled()) break;
    if (code == absl::StatusCode::kDeadlineExceeded) break;
    if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kInternal ||
        code == absl::StatusCode::kUnknown || code == absl::StatusCode::kCancelled) {
      MarkDown(addr, std::string(result.status().message()));
    }
    // RESOURCE_EXHAUSTED (busy), NOT_FOUND (no device) and broken runners:
    // try the next one.
  }
  absl::Status final_status;
  if (job.control && job.control->Cancelled()) {
    final_status = absl::CancelledError("validation cancelled");
  } else if (absl::Now() >= job.deadline) {
    final_status = absl::DeadlineExceededError(absl::StrCat("the deadline passed before a runner validated the model; tried: ",
                                                            absl::StrJoin(attempts, "; ")));
  } else {
    final_status = absl::UnavailableError(absl::StrCat("no device runner could validate the model; tried: ",
                                                       attempts.empty() ? "no runners configured" : absl::StrJoin(attempts, "; ")));
  }
  WithMetrics([&](ServerMetrics* m) { m->Validation(device_label, "unavailable", absl::ToDoubleSeconds(absl::Now() - start)); });
  job.done(final_status);
}

}  // namespace coremlz::service
