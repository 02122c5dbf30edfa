#include "workers/runner/runner_service.h"

#include <unistd.h>

#include <deque>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/grpc_status.h"
#include "api/upload_stream.h"
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

// Validate's upload: the compressed model's files, then the original's. It
// ends at its last byte; the front that sends it has its own time limits.
api::UploadStream::Options ValidateStream(const RunnerOptions& options) {
  api::UploadStream::Options stream;
  stream.limits = options.limits;
  stream.words.chunk_first = "the first message must be a header";
  return stream;
}

class ValidateReactor final : public grpc::ServerBidiReactor<v1::ValidateRequest, v1::ValidateResponse> {
 public:
  ValidateReactor(RunnerService* service, grpc::CallbackServerContext* context)
      : service_(service),
        shared_(std::make_shared<Shared>()),
        control_(std::make_shared<engine::JobControl>()),
        stream_(ValidateStream(service->options()), absl::Now()) {
    absl::MutexLock lock(&shared_->mu);
    shared_->reactor = this;
    if (const api::TokenAuth* auth = service_->auth()) {
      grpc::Status s = auth->Check(*context);
      if (!s.ok()) {
        FinishLocked(s);
        return;
      }
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&shared_->mu);
    if (finished_) return;
    const v1::FileChunk* chunk = ok && request_.has_chunk() ? &request_.chunk() : nullptr;
    absl::Status s = CheckChunkIndexLocked(chunk);
    absl::StatusOr<api::UploadStream::Arrival> arrival =
        s.ok() ? stream_.Read(absl::Now(), ok, request_.has_header(), chunk) : s;
    if (arrival.ok() && *arrival == api::UploadStream::Arrival::kHeader) {
      s = OnHeaderLocked();
      arrival = s.ok() ? stream_.Declared() : s;
    }
    if (!arrival.ok()) {
      FinishLocked(api::ToGrpcStatus(arrival.status()));
      return;
    }
    if (*arrival == api::UploadStream::Arrival::kClosed) return;
    if (*arrival == api::UploadStream::Arrival::kDone) StartLocked();
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
    std::thread worker;
    std::string device_id, job_dir;
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->reactor = nullptr;
      worker = std::move(worker_);
      device_id = device_id_;
      job_dir = job_dir_;
    }
    // The job thread ends under the lock (finding no reactor): join it off
    // the lock.
    if (worker.joinable()) worker.join();
    if (!device_id.empty()) service_->Release(device_id);
    if (!job_dir.empty()) (void)RemoveAll(job_dir);
    delete this;
  }

 private:
  // For the job thread, which locks shared->mu and finds this reactor
  // through it: the analysis cannot see that it is shared_->mu.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(shared_->mu) { shared_->mu.AssertHeld(); }

  // Without the original's files, an index past the compressed ones is
  // named against them.
  absl::Status CheckChunkIndexLocked(const v1::FileChunk* chunk) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
    if (chunk == nullptr || stream_.phase() != api::UploadStream::Phase::kUpload) return absl::OkStatus();
    const uint32_t n = static_cast<uint32_t>(header_.compressed_files_size());
    if (chunk->file_index() >= n && stream_.session().lists() == 1) {
      return absl::InvalidArgumentError(absl::StrCat("chunk for file ", chunk->file_index(), " of ", n));
    }
    return absl::OkStatus();
  }

  absl::Status OnHeaderLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
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
    api::UploadSession& upload = stream_.session();
    if (absl::Status s = upload.Declare(JoinPath(job_dir_, "compressed"), header_.compressed_files()); !s.ok()) return s;
    if (header_.original_files_size() > 0) {
      if (absl::Status s = upload.Declare(JoinPath(job_dir_, "original"), header_.original_files()); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // The upload is complete and checked: the job runs on a thread of its own.
  void StartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
    const api::UploadSession& upload = stream_.session();
    auto compressed_path = upload.list(0).ModelPath();
    if (!compressed_path.ok()) {
      FinishLocked(api::ToGrpcStatus(compressed_path.status()));
      return;
    }
    ValidationInput input;
    input.request = header_.request();
    input.compressed_path = *compressed_path;
    if (upload.lists() > 1) {
      auto p = upload.list(1).ModelPath();
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
      if (ValidateReactor* r = shared->reactor) {
        r->AssertHeld();
        r->DoneLocked(std::move(result));
      }
    });
  }

  // From the job thread, which holds shared_->mu.
  void DoneLocked(absl::StatusOr<v1::ValidationResult> result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
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

  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
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

  void FinishLocked(grpc::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
    if (finished_) return;
    finished_ = true;
    control_->Cancel();
    Finish(s);
  }

  // Set at construction, then only read (control_ is thread-safe itself).
  RunnerService* const service_;
  const std::shared_ptr<Shared> shared_;
  const std::shared_ptr<engine::JobControl> control_;

  // Everything else is read and written under shared_->mu: gRPC's reactor
  // callbacks take it, and so does the job thread at its end.
  v1::ValidateRequest request_ ABSL_GUARDED_BY(shared_->mu);
  v1::ValidateHeader header_ ABSL_GUARDED_BY(shared_->mu);
  api::UploadStream stream_ ABSL_GUARDED_BY(shared_->mu);
  bool running_ ABSL_GUARDED_BY(shared_->mu) = false;
  bool done_ ABSL_GUARDED_BY(shared_->mu) = false;
  bool writing_ ABSL_GUARDED_BY(shared_->mu) = false;
  bool finished_ ABSL_GUARDED_BY(shared_->mu) = false;
  v1::DeviceInfo device_ ABSL_GUARDED_BY(shared_->mu);
  std::string device_id_ ABSL_GUARDED_BY(shared_->mu);
  std::string job_dir_ ABSL_GUARDED_BY(shared_->mu);
  std::deque<v1::ValidateResponse> outbox_ ABSL_GUARDED_BY(shared_->mu);
  v1::ValidateResponse current_ ABSL_GUARDED_BY(shared_->mu);  // the write in flight
  std::thread worker_ ABSL_GUARDED_BY(shared_->mu);
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
