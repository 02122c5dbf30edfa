#include "api/server_metrics.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"

namespace coremlz::api {
namespace {

using prometheus::Histogram;

constexpr char kUnknownLabel[] = "unknown";

const Histogram::BucketBoundaries kLatency = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
const Histogram::BucketBoundaries kRatio = {1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 16};

std::string CodeName(int code) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                 "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
}

// True for a method some service compiled into this binary declares (ours,
// reflection) or the health service's; callers can send any path, and a
// label per path would let them grow /metrics without bound.
bool KnownMethod(const std::string& service, const std::string& method) {
  // Services whose descriptors may be missing from the generated pool: the
  // health service's (gRPC's own copy) and worker.proto's, whose
  // descriptor the linker may drop from static libraries.
  if (service == "grpc.health.v1.Health") return method == "Check" || method == "Watch";
  if (service == "coremlz.v1.Worker") return method == "Run" || method == "Trials";
  if (service.empty() || method.empty()) return false;
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(absl::StrCat(service, ".", method)) != nullptr;
}

class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(ServerMetrics* metrics, grpc::experimental::ServerRpcInfo* info) : metrics_(metrics) {
    SplitMethod(info->method(), &service_, &method_);
    if (!KnownMethod(service_, method_)) service_ = method_ = kUnknownLabel;
    switch (info->type()) {
      case grpc::experimental::ServerRpcInfo::Type::UNARY: type_ = "unary"; break;
      case grpc::experimental::ServerRpcInfo::Type::CLIENT_STREAMING: type_ = "client_stream"; break;
      case grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING: type_ = "server_stream"; break;
      default: type_ = "bidi_stream";
    }
    start_ = std::chrono::steady_clock::now();
    metrics_->Started(service_, method_, type_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using H = grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(H::POST_RECV_MESSAGE)) metrics_->MessageReceived(service_, method_, type_);
    if (methods->QueryInterceptionHookPoint(H::PRE_SEND_MESSAGE)) metrics_->MessageSent(service_, method_, type_);
    if (methods->QueryInterceptionHookPoint(H::PRE_SEND_STATUS)) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->Handled(service_, method_, type_, static_cast<int>(methods->GetSendStatus().error_code()), s);
      handled_ = true;
    }
    methods->Proceed();
  }

  ~MetricsInterceptor() override {
    if (!handled_) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->Handled(service_, method_, type_, static_cast<int>(grpc::StatusCode::CANCELLED), s);
    }
  }

 private:
  ServerMetrics* metrics_;
  std::string service_, method_, type_;
  std::chrono::steady_clock::time_point start_;
  bool handled_ = false;
};

class MetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(ServerMetrics* m) : metrics_(m) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_, info);
  }

 private:
  ServerMetrics* metrics_;
};

}  // namespace

void SplitMethod(const std::string& full, std::string* service, std::string* method) {
  const size_t slash = full.rfind('/');
  if (slash == std::string::npos || slash == 0) {
    *service = "";
    *method = full;
    return;
  }
  *service = full.substr(full[0] == '/' ? 1 : 0, slash - (full[0] == '/' ? 1 : 0));
  *method = full.substr(slash + 1);
}

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using namespace prometheus;
  started_ = &BuildCounter().Name("grpc_server_started_total").Help("RPCs started on the server.").Register(*registry_);
  handled_ = &BuildCounter().Name("grpc_server_handled_total").Help("RPCs completed on the server, by status code.").Register(*registry_);
  handling_seconds_ = &BuildHistogram().Name("grpc_server_handling_seconds").Help("Time from RPC start to its status.").Register(*registry_);
  msg_received_ = &BuildCounter().Name("grpc_server_msg_received_total").Help("Stream messages received.").Register(*registry_);
  msg_sent_ = &BuildCounter().Name("grpc_server_msg_sent_total").Help("Stream messages sent.").Register(*registry_);
  upload_bytes_ = &BuildCounter().Name("coremlz_upload_bytes_total").Help("Model bytes received.").Register(*registry_).Add({});
  artifact_bytes_ = &BuildCounter().Name("coremlz_artifact_bytes_total").Help("Compressed model bytes sent.").Register(*registry_).Add({});
  streamed_jobs_ = &BuildCounter().Name("coremlz_jobs_streamed_total").Help("Jobs started while their upload still arrived.").Register(*registry_).Add({});
  stream_rate_jobs_ = &BuildCounter().Name("coremlz_stream_rate_jobs_total").Help("Completed jobs the early start learned its compression rates from.").Register(*registry_).Add({});
  stream_rate_int8_ = &BuildGauge().Name("coremlz_stream_rate_int8_bytes_per_second").Help("Compression rate the early start assumes for int8 (learned or the flag's).").Register(*registry_).Add({});
  stream_wait_seconds_ = &BuildCounter().Name("coremlz_stream_wait_seconds_total").Help("Seconds workers waited for upload bytes.").Register(*registry_).Add({});
  jobs_ = &BuildCounter().Name("coremlz_jobs_total").Help("Compression jobs by technique and outcome.").Register(*registry_);
  job_seconds_ = &BuildHistogram().Name("coremlz_job_seconds").Help("Compression job duration.").Register(*registry_);
  ratio_ = &BuildHistogram().Name("coremlz_compression_ratio").Help("Weight bytes before / after.").Register(*registry_).Add({}, kRatio);
  workers_busy_ = &BuildGauge().Name("coremlz_workers_busy").Help("Workers running a job.").Register(*registry_).Add({});
  queue_depth_ = &BuildGauge().Name("coremlz_queue_depth").Help("Jobs waiting for a worker.").Register(*registry_).Add({});
  slots_lent_ = &BuildCounter()
                     .Name("coremlz_worker_slots_lent_total")
                     .Help("Palette groups of a running job run on worker slots no job was using (one per group; a lend that found no group left is not counted).")
                     .Register(*registry_)
                     .Add({});
  validations_ = &BuildCounter().Name("coremlz_validation_jobs_total").Help("On-device validations by device and outcome.").Register(*registry_);
  validation_seconds_ = &BuildHistogram().Name("coremlz_validation_seconds").Help("On-device validation duration.").Register(*registry_);
  runner_up_ = &BuildGauge().Name("coremlz_runner_up").Help("1 if a device runner is healthy.").Register(*registry_);
  auto& trials = BuildCounter()
                     .Name("coremlz_plan_trials_total")
                     .Help("Plan trials by outcome: measured, pruned (no trial needed), failed, rerun (after a worker was lost).")
                     .Register(*registry_);
  // Every label value exists from the start, so the set is closed and a scrape shows zeros.
  for (const char* outcome : {"measured", "pruned", "failed", "rerun"}) plan_trials_[outcome] = &trials.Add({{"outcome", outcome}});
  plan_shared_builds_ = &BuildCounter()
                             .Name("coremlz_plan_shared_builds_total")
                             .Help("Candidates a remote worker built again to take trials another party's build left.")
                             .Register(*registry_)
                             .Add({});
  plans_ = &BuildCounter().Name("coremlz_plans_total").Help("Plan calls by outcome.").Register(*registry_);
  plan_seconds_ = &BuildHistogram().Name("coremlz_plan_seconds").Help("Plan duration, from its job's start.").Register(*registry_);
}

void ServerMetrics::PlanTrials(const std::string& outcome, int count) {
  auto it = plan_trials_.find(outcome);
  if (it != plan_trials_.end() && count > 0) it->second->Increment(count);
}

void ServerMetrics::Plan(const std::string& outcome, double seconds) {
  plans_->Add({{"outcome", outcome}}).Increment();
  plan_seconds_->Add({{"outcome", outcome}}, kLatency).Observe(seconds);
}

absl::Status ServerMetrics::Serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  return absl::OkStatus();
}

int ServerMetrics::port() const {
  if (!exposer_) return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports[0];
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ServerMetrics::InterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

void ServerMetrics::Started(const std::string& s, const std::string& m, const std::string& t) {
  started_->Add({{"grpc_service", s}, {"grpc_method", m}, {"grpc_type", t}}).Increment();
}

void ServerMetrics::Handled(const std::string& s, const std::string& m, const std::string& t, int code, double seconds) {
  handled_->Add({{"grpc_service", s}, {"grpc_method", m}, {"grpc_type", t}, {"grpc_code", CodeName(code)}}).Increment();
  handling_seconds_->Add({{"grpc_service", s}, {"grpc_method", m}, {"grpc_type", t}}, kLatency).Observe(seconds);
}

void ServerMetrics::MessageReceived(const std::string& s, const std::string& m, const std::string& t) {
  msg_received_->Add({{"grpc_service", s}, {"grpc_method", m}, {"grpc_type", t}}).Increment();
}

void ServerMetrics::MessageSent(const std::string& s, const std::string& m, const std::string& t) {
  msg_sent_->Add({{"grpc_service", s}, {"grpc_method", m}, {"grpc_type", t}}).Increment();
}

std::string TechniqueFamily(const std::string& technique) {
  static const char* kFamilies[] = {"linear_quantize", "palettize", "prune", "fp16", "mixed"};
  const std::vector<std::string> parts = absl::StrSplit(technique, '+');
  if (parts.size() > 2) return "other";
  for (const std::string& part : parts) {
    if (std::find(std::begin(kFamilies), std::end(kFamilies), part) == std::end(kFamilies)) return "other";
  }
  return technique;
}

void ServerMetrics::Job(const std::string& technique, const std::string& outcome, double seconds) {
  const std::string family = TechniqueFamily(technique);
  jobs_->Add({{"technique", family}, {"outcome", outcome}}).Increment();
  job_seconds_->Add({{"technique", family}}, kLatency).Observe(seconds);
}

void ServerMetrics::Validation(const std::string& device, const std::string& outcome, double seconds) {
  // The caller picks the device text; only values a runner vouched for
  // (see RunnerPool) arrive here, but keep the label short regardless.
  const std::string label = device.size() <= 64 ? device : "other";
  validations_->Add({{"device", label}, {"outcome", outcome}}).Increment();
  validation_seconds_->Add({{"device", label}}, kLatency).Observe(seconds);
}

void ServerMetrics::RunnerUp(const std::string& runner, bool up) { runner_up_->Add({{"runner", runner}}).Set(up ? 1 : 0); }

}  // namespace coremlz::api
