#include "workers/runner/runner_service.h"

#include <unistd.h>

#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "api/grpc_status.h"
#include "api/upload_session.h"
#include "common/file_util.h"

#ifndef COREMLZ_VERSION
#define COREMLZ_VERSION "dev"
#endif

namespace coremlz::runner {
namespace {

// Outlives the reactor for the job thread: the reactor's state is under mu,
// and `reactor` goes null when the call is done.
struct Shared {
  absl::Mutex mu;
  class ValidateReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
};

class ValidateReactor final : public grpc::ServerBidiReactor<v1::ValidateRequest, v1::ValidateResponse> {
 public:
  ValidateReactor(RunnerService* service, grpc::CallbackServerContext* context)
      : service_(service), shared_(std::make_shared<Shared>()), control_(std::make_shared<engine::JobControl>()) {
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->reactor = this;
    }
    if (const api::TokenAuth* auth = service_->auth()) {
      grpc::Status s = auth->Check(*context);
      if (!s.ok()) {
        absl::MutexLock lock(&shared_->mu);
        FinishLocked(s);
        return;
      }
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&shared_->mu);
    if (finished_) return;
    if (!ok) {
      if (!header_seen_) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "the stream ended without a header"});
      } else if (!uploaded_) {
        FinishLocked(api::ToGrpcStatus(upload_->EndedEarly()));
      }
      return;
    }
    absl::Status s = header_seen_ ? OnChunkLocked() : OnHeaderLocked();
    if (!s.ok()) {
      FinishLocked(api::ToGrpcStatus(s));
      return;
    }
    if (finished_) return;
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&shared_->mu);
    writing_ = false;
    if (!ok) {
      control_->Cancel();
      FinishLocked({grpc::StatusCode::CANCELLED, "the front stopped reading"});
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&shared_->mu);
    control_->Cancel();
    if (!running_) FinishLocked({grpc::StatusCode::CANCELLED, "the call was cancelled"});
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->reactor = nullptr;
    }
    if (worker_.joinable()) worker_.join();
    if (!device_id_.empty()) service_->Release(device_id_);
    if (!job_dir_.empty()) (void)RemoveAll(job_dir_);
    delete this;
  }

 private:
  absl::Status OnHeaderLocked() {
    if (!request_.has_header()) return absl::InvalidArgumentError("the first message must be a header");
    header_seen_ = true;
    header_ = request_.header();
    // Claim a device before accepting any bytes: a busy runner says so now.
    auto device = service_->Acquire(header_.request().device());
    if (!device.ok()) return device.status();
    device_ = *device;
    device_id_ = device_.id();
    std::string base = service_->options().work_dir;
    auto dir = base.empty() ? MakeTempDirectory("coremlz-runner-") : [&]() -> absl::StatusOr<std::string> {
      std::string pattern = JoinPath(base, "coremlz-runner-XXXXXX");
      std::vector<char> buf(pattern.begin(), pattern.end());
      buf.push_back('\0');
      if (::mkdtemp(buf.data()) == nullptr) return absl::InternalError("cannot create a job directory");
      return std::string(buf.data());
    }();
    if (!dir.ok()) return dir.status();
    job_dir_ = *dir;
    for (const char* sub : {"compressed", "original", "work"}) {
      if (absl::Status s = MakeDirectories(JoinPath(job_dir_, sub)); !s.ok()) return s;
    }
    // The compressed model's files, then the original's: chunks number them
    // in that order.
    upload_ = std::make_unique<api::UploadSession>(service_->options().limits);
    if (absl::Status s = upload_->Declare(JoinPath(job_dir_, "compressed"), header_.compressed_files()); !s.ok()) return s;
    if (header_.original_files_size() > 0) {
      if (absl::Status s = upload_->Declare(JoinPath(job_dir_, "original"), header_.original_files()); !s.ok()) return s;
    }
    MaybeStartLocked();
    return absl::OkStatus();
  }

  absl::Status OnChunkLocked() {
    if (!request_.has_chunk()) return absl::InvalidArgumentError("only file chunks may follow the header");
    if (uploaded_) return absl::InvalidArgumentError("a chunk arrived after the upload was complete");
    const v1::FileChunk& chunk = request_.chunk();
    const uint32_t n = static_cast<uint32_t>(header_.compressed_files_size());
    // Without the original's files, an index past the compressed ones is
    // named against them.
    if (chunk.file_index() >= n && upload_->lists() == 1) {
      return absl::InvalidArgumentError(absl::StrCat("chunk for file ", chunk.file_index(), " of ", n));
    }
    if (absl::Status s = upload_->Add(chunk); !s.ok()) return s;
    MaybeStartLocked();
    return absl::OkStatus();
  }

  void MaybeStartLocked() {
    if (!upload_->complete()) return;
    if (absl::Status s = upload_->Finish(); !s.ok()) {
      FinishLocked(api::ToGrpcStatus(s));
      return;
    }
    uploaded_ = true;
    auto compressed_path = upload_->list(0).ModelPath();
    if (!compressed_path.ok()) {
      FinishLocked(api::ToGrpcStatus(compressed_path.status()));
      return;
    }
    ValidationInput input;
    input.request = header_.request();
    input.compressed_path = *compressed_path;
    if (upload_->lists() > 1) {
      auto p = upload_->list(1).ModelPath();
      if (!p.ok()) {
        FinishLocked(api::ToGrpcStatus(p.status()));
        return;
      }
      input.original_path = *p;
    }
    input.report = header_.report();
    input.work_dir = JoinPath(job_dir_, "work");
    running_ = true;
    v1::ValidateResponse progress;
    progress.mutable_progress()->set_phase(v1::Progress::VALIDATE);
    progress.mutable_progress()->set_current(device_.name());
    outbox_.push_back(std::move(progress));
    PumpLocked();
    std::shared_ptr<Shared> shared = shared_;
    std::shared_ptr<engine::JobControl> control = control_;
    DeviceBackend* backend = service_->backend();
    v1::DeviceInfo device = device_;
    worker_ = std::thread([shared, control, backend, device, input] {
      absl::StatusOr<v1::ValidationResult> result = backend->Run(device, input, control.get());
      absl::MutexLock lock(&shared->mu);
      if (shared->reactor != nullptr) shared->reactor->DoneLocked(std::move(result));
    });
  }

 public:
  void DoneLocked(absl::StatusOr<v1::ValidationResult> result) {
    running_ = false;
    if (finished_) return;
    if (!result.ok()) {
      FinishLocked(api::ToGrpcStatus(result.status()));
      return;
    }
    v1::ValidateResponse r;
    *r.mutable_result() = std::move(*result);
    outbox_.push_back(std::move(r));
    done_ = true;
    PumpLocked();
  }

 private:
  void PumpLocked() {
    if (writing_ || finished_) return;
    if (!outbox_.empty()) {
      current_ = std::move(outbox_.front());
      outbox_.pop_front();
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    if (done_) FinishLocked(grpc::Status::OK);
  }

  void FinishLocked(grpc::Status s) {
    if (finished_) return;
    finished_ = true;
    control_->Cancel();
    Finish(s);
  }

  RunnerService* service_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<engine::JobControl> control_;
  v1::ValidateRequest request_;
  v1::ValidateHeader header_;
  bool header_seen_ = false, uploaded_ = false, running_ = false, done_ = false;
  bool writing_ = false, finished_ = false;
  v1::DeviceInfo device_;
  std::string device_id_;
  std::string job_dir_;
  std::unique_ptr<api::UploadSession> upload_;
  std::deque<v1::ValidateResponse> outbox_;
  v1::ValidateResponse current_;
  std::thread worker_;
};

}  // namespace

RunnerService::RunnerService(std::unique_ptr<DeviceBackend> backend, RunnerOptions options,
                             std::shared_ptr<api::TokenAuth> auth)
    : backend_(std::move(backend)), options_(std::move(options)), auth_(std::move(auth)) {
  if (options_.runner_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    options_.runner_id = host;
  }
}

RunnerService::~RunnerService() = default;

grpc::ServerUnaryReactor* RunnerService::Describe(grpc::CallbackServerContext* context, const v1::DescribeRequest*,
                                                  v1::RunnerDescription* response) {
  auto* reactor = context->DefaultReactor();
  if (auth_) {
    grpc::Status s = auth_->Check(*context);
    if (!s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
  }
  auto devices = backend_->ListDevices();
  if (!devices.ok()) {
    reactor->Finish(api::ToGrpcStatus(devices.status()));
    return reactor;
  }
  response->set_runner_id(options_.runner_id);
  response->set_version(COREMLZ_VERSION);
  response->set_backend(backend_->name());
  int free = 0;
  absl::MutexLock lock(&mu_);
  for (v1::DeviceInfo d : *devices) {
    const bool busy = busy_.count(d.id()) > 0;
    if (busy) d.set_state("busy");
    free += !busy && d.state() == "available";
    *response->add_devices() = d;
  }
  response->set_free_slots(free);
  response->set_total_slots(static_cast<int>(devices->size()));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::ValidateRequest, v1::ValidateResponse>* RunnerService::Validate(
    grpc::CallbackServerContext* context) {
  return new ValidateReactor(this, context);
}

absl::StatusOr<v1::DeviceInfo> RunnerService::Acquire(const v1::DeviceSelector& selector) {
  auto devices = backend_->ListDevices();
  if (!devices.ok()) return devices.status();
  absl::MutexLock lock(&mu_);
  int matching = 0;
  std::vector<std::string> states;
  for (const v1::DeviceInfo& d : *devices) {
    if (!MatchesSelector(d, selector)) continue;
    ++matching;
    if (busy_.count(d.id())) {
      states.push_back(absl::StrCat(d.name(), ": busy"));
      continue;
    }
    if (d.state() != "available") {
      states.push_back(absl::StrCat(d.name(), ": ", d.state()));
      continue;
    }
    busy_.insert(d.id());
    return d;
  }
  if (matching == 0) {
    return absl::NotFoundError(absl::StrCat("runner ", options_.runner_id, " has no device matching the selector (",
                                            devices->size(), " devices)"));
  }
  return absl::ResourceExhaustedError(absl::StrCat("runner ", options_.runner_id, ": every matching device is busy (",
                                                   absl::StrJoin(states, ", "), ")"));
}

void RunnerService::Release(const std::string& device_id) {
  absl::MutexLock lock(&mu_);
  busy_.erase(device_id);
}

int RunnerService::jobs_in_flight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(busy_.size());
}

}  // namespace coremlz::runner
