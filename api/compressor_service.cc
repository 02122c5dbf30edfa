#include "api/compressor_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/compress_reactor.h"
#include "api/grpc_status.h"
#include "api/inspect_reactor.h"
#include "api/plan_reactor.h"

namespace coremlz::api {

CompressorService::CompressorService(const ServerOptions& options, engine::WorkerPool* pool, ServerMetrics* metrics,
                                     std::shared_ptr<TokenAuth> auth, Validator* validator)
    : options_(options),
      pool_(pool),
      metrics_(metrics),
      auth_(std::move(auth)),
      validator_(validator),
      tasks_(2),
      stream_rate_(options.stream_rate_bytes_per_second, options.learn_stream_rate,
                   options.stream_learn_min_bytes) {
  if (metrics_ != nullptr) metrics_->StreamRateInt8(stream_rate_.Rate(1));
}

CompressorService::~CompressorService() = default;

grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* CompressorService::Compress(
    grpc::CallbackServerContext* context) {
  return NewCompressReactor(this, context);
}

grpc::ServerReadReactor<v1::InspectRequest>* CompressorService::Inspect(grpc::CallbackServerContext* context,
                                                                        v1::InspectResponse* response) {
  return NewInspectReactor(this, context, response);
}

grpc::ServerBidiReactor<v1::PlanRequest, v1::PlanResponse>* CompressorService::Plan(
    grpc::CallbackServerContext* context) {
  return NewPlanReactor(this, context);
}

grpc::ServerUnaryReactor* CompressorService::ListRunners(grpc::CallbackServerContext* context,
                                                        const v1::ListRunnersRequest*, v1::ListRunnersResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (auth_) {
    grpc::Status s = auth_->Check(*context);
    if (!s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
  }
  if (validator_ != nullptr) {
    for (auto& r : validator_->Runners()) *response->add_runners() = std::move(r);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::Status CompressorService::Admit() {
  if (draining_.load()) {
    return absl::UnavailableError("the server is shutting down; retry (another instance will take the call)");
  }
  int current = active_calls_.load();
  while (current < options_.max_concurrent_calls) {
    if (active_calls_.compare_exchange_weak(current, current + 1)) return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat("the server is handling its limit of ", options_.max_concurrent_calls,
                                                   " calls; retry in a few seconds"));
}

grpc::Status CompressorService::AdmitCall(const grpc::CallbackServerContext& context) {
  if (const TokenAuth* a = auth()) {
    grpc::Status s = a->Check(context);
    if (!s.ok()) return s;
  }
  return ToGrpcStatus(Admit());
}

void CompressorService::Release() { active_calls_.fetch_sub(1); }

void CompressorService::BeginDrain() { draining_.store(true); }

bool CompressorService::WaitIdle(absl::Time deadline) {
  while (active_calls_.load() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

void CompressorService::UpdateWorkerGauges() { metrics_->SetWorkers(pool_->busy(), pool_->queue_depth(), pool_->slots_lent()); }

}  // namespace coremlz::api
