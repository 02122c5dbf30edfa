// The skeleton of a bidirectional call that receives an upload, runs work
// for it and streams replies back: Compress and Plan. It owns what those
// calls share - the call slot, the upload stream (message order, stall
// limits), the reply queue and its writes (progress coalesced, then the
// artifact read from disk chunk by chunk), the write-stall limit,
// cancellation and the one Finish - so that a new call of this shape adds
// only what is its own: what a header means, what the work is, and its
// last messages. The derived reactor supplies those through the virtual
// hooks below, all called with the call's mutex held.
//
// Threading: one mutex (CallState::mu) guards the whole call. gRPC's
// callbacks take it here; callbacks from other threads (the job, progress,
// timers) lock the shared CallState, find the reactor through it (null once
// the call is over) and call AssertHeld before touching it.
#ifndef COREMLZ_API_UPLOAD_CALL_H_
#define COREMLZ_API_UPLOAD_CALL_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/artifact_stream.h"
#include "api/cache_slot.h"
#include "api/call_state.h"
#include "api/call_slot.h"
#include "api/compressor_service.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/result_store.h"
#include "api/upload_stream.h"
#include "common/file_util.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

template <typename Derived, typename Request, typename Response>
class UploadCall : public grpc::ServerBidiReactor<Request, Response> {
 public:
  using State = CallState<Derived>;
  using Header = std::decay_t<decltype(std::declval<Request>().header())>;

  void OnReadDone(bool ok) final {
    absl::MutexLock lock(&state_->mu);
    if (finished_) return;
    absl::StatusOr<UploadStream::Arrival> arrival =
        stream_.Receive(absl::Now(), ok, request_, [this](const Header& header) {
          AssertHeld();
          return OnHeaderLocked(header);
        });
    if (arrival.ok() && ok && request_.has_chunk()) {
      service_->metrics()->UploadBytes(request_.chunk().data().size());
      MaybeUploadProgressLocked();
    }
    if (!arrival.ok()) {
      FinishLocked(ToGrpcStatus(arrival.status()));  // an upload cut short names its file
      return;
    }
    switch (*arrival) {
      case UploadStream::Arrival::kHeader:
        CheckStallLocked();  // the upload's idle limit replaces the header's
        break;
      case UploadStream::Arrival::kChunk:
        OnChunkLocked();
        if (finished_) return;
        break;
      case UploadStream::Arrival::kDone:
        OnUploadCheckedLocked();
        StartLocked();
        if (finished_) return;
        break;
      case UploadStream::Arrival::kClosed:
        return;  // the client half-closed after its upload
    }
    request_.Clear();
    this->StartRead(&request_);
  }

  void OnWriteDone(bool ok) final {
    absl::MutexLock lock(&state_->mu);
    writing_ = false;
    if (!ok) {
      // The client is gone; the call ends (cancellation will follow).
      StopWorkLocked();
      DropRepliesLocked();
      FinishLocked({grpc::StatusCode::CANCELLED, "the client stopped reading"});
      return;
    }
    PumpLocked();
  }

  void OnCancel() final {
    absl::MutexLock lock(&state_->mu);
    cancelled_ = true;
    // The caller has gone: its slot is free for the next call even while
    // its work winds down (the worker pool's memory budget still counts it).
    slot_.Release();
    StopWorkLocked();
    // Work in flight answers through its own callback; otherwise end now.
    if (!WorkPendingLocked() && !finished_) {
      DropRepliesLocked();
      FinishLocked({grpc::StatusCode::CANCELLED, "the call was cancelled"});
    }
  }

  void OnDone() final {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
      artifact_.Close();
      slot_.Release();
      cache_.Release();  // a call that ends mid-job must not keep identical ones waiting
      OnDoneLocked();
    }
    delete this;
  }

  // For callbacks from other threads, which lock state->mu and find this
  // reactor through it: the analysis cannot see that state->mu and
  // state_->mu are one mutex.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(state_->mu) { state_->mu.AssertHeld(); }

  // Ends a call whose client stalls (--header-timeout-seconds,
  // --idle-timeout-seconds for the upload and for each write), so that it
  // stops holding a call slot, and re-arms itself for the next moment a
  // limit could pass.
  void CheckStallLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    const absl::Time now = absl::Now();
    absl::Time next;
    if (absl::Status s = stream_.CheckStall(now, &next); !s.ok()) {
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    const absl::Duration idle = service_->options().idle_timeout;
    if (idle > absl::ZeroDuration() && writing_) {
      if (now >= write_started_ + idle) {
        // The client reads nothing; a write cannot be abandoned, so cancel
        // the call (OnCancel frees the slot and stops the work).
        context_->TryCancel();
        return;
      }
      next = std::min(next, write_started_ + idle);
    }
    stream_.ArmStallCheck(now, next, StallRecheck(state_));
  }

 protected:
  UploadCall(CompressorService* service, grpc::CallbackServerContext* context)
      : service_(service),
        context_(context),
        state_(std::make_shared<State>()),
        deadline_(DeadlineOf(context)),
        stream_(StreamOptions(service->options()), absl::Now()) {}
  virtual ~UploadCall() = default;

  // The derived constructor's last step: admission, the header's stall
  // limit, the first read. (Not in this constructor: a read may complete on
  // another thread before the derived object exists.)
  void Begin() {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = static_cast<Derived*>(this);
    if (grpc::Status admitted = slot_.Take(service_, *context_); !admitted.ok()) {
      FinishLocked(admitted);
      return;
    }
    CheckStallLocked();
    this->StartRead(&request_);
  }

  // --- The hooks: the call's own steps, with the mutex held. ---

  // The header arrived: check it and declare its files (stream().session()).
  virtual absl::Status OnHeaderLocked(const Header& header) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) = 0;
  // A chunk arrived and was stored; more are due (work may start early).
  virtual void OnChunkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {}
  // Every file arrived and was checked: called before the result cache is
  // consulted (may end the call).
  virtual void OnUploadCheckedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {}
  // Every file arrived and was checked, and the result is not cached:
  // start the work.
  virtual void OnUploadedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) = 0;
  // An identical call computes this result: true when this call computes
  // it anyway (its work started before the upload was complete), false to
  // wait for that call's result.
  virtual bool ComputesWhileIdenticalLeadsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return false; }
  // The result cache holds this call's result (after UseCacheLocked): answer
  // with it as with a computed one.
  virtual void OnCacheHitLocked(ResultStore::Hit hit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) = 0;
  // The queue and the artifact are sent: write the call's last messages
  // (WriteLocked, one per call) or end it (FinishLocked), or wait for work
  // that will pump again.
  virtual void PumpTailLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) = 0;
  // Work on other threads still owes this call an answer.
  virtual bool WorkPendingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) = 0;
  // Tells that work to stop (it still answers).
  virtual void StopWorkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) = 0;
  // The status is decided (`status` as the caller will see it), just
  // before Finish: counters the client may read after its status.
  virtual void OnFinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {}
  // gRPC is done with the call; the reactor is deleted next.
  virtual void OnDoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {}

  // --- The result cache. ---

  // From OnHeaderLocked, on a server with a cache: this call's result is
  // cached under `key` (`bypass`: computed even when an entry exists).
  void UseCacheLocked(std::string key, bool bypass) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (service_->cache() != nullptr) cache_.Use(service_->cache(), std::move(key), bypass);
  }
  // Before a job starts on a partial upload (CacheSlot::MayStartEarly):
  // false when the cache or an identical call in flight will answer.
  bool MayStartEarlyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return cache_.MayStartEarly(); }
  // A computed result, when this call leads its key: stored off this
  // thread, then the identical calls waiting for it look again.
  void StoreResultLocked(std::string artifact_path, std::vector<v1::FileInfo> files, v1::Report report,
                         v1::PlanOutputs plan) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    cache_.StoreResult(service_->tasks(), stream_.session().job_dir(), std::move(artifact_path), std::move(files),
                       std::move(report), std::move(plan));
  }

  // --- Replies. ---

  void QueueLocked(Response r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    outbox_.push_back(std::move(r));
    PumpLocked();
  }
  // Only the latest progress matters: at most one waits.
  void QueueProgressLocked(Response r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    if (!outbox_.empty() && outbox_.back().has_progress()) outbox_.back() = std::move(r);
    else outbox_.push_back(std::move(r));
    PumpLocked();
  }
  // "Queued at this position", as every call says it.
  void QueueQueuedLocked(int position) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    Response r;
    r.mutable_progress()->set_phase(ProgressOf<Response>::QUEUED);
    r.mutable_progress()->set_queue_position(position);
    QueueLocked(std::move(r));
  }
  // A model's files as the call announces them (paths relative to `root`,
  // sizes, SHA-256) and the cache records them: a computed model is hashed
  // once, a cached one was verified by its lookup.
  struct ArtifactFiles {
    std::string root;
    std::vector<v1::FileInfo> files;
  };
  absl::StatusOr<ArtifactFiles> DescribeArtifactLocked(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    ArtifactFiles artifact;
    absl::StatusOr<std::vector<v1::FileInfo>> files =
        DescribeModelFiles(path, &artifact.root, service_->options().limits.max_manifest_bytes);
    if (!files.ok()) return files.status();
    artifact.files = *std::move(files);
    return artifact;
  }
  static ArtifactFiles ArtifactOf(ResultStore::Hit& hit) { return {std::move(hit.root), std::move(hit.files)}; }
  // The model follows the queued messages, file by file.
  void StartArtifactLocked(ArtifactFiles artifact) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    artifact_.Start(std::move(artifact.files), artifact.root);
  }
  // Forgets every reply not yet written (the call is ending in an error).
  void DropRepliesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    outbox_.clear();
    artifact_.Close();
  }

  // Starts the next write if none is in flight: queued messages first, then
  // the artifact's files chunk by chunk (read lazily so that a large model
  // never sits in memory), then the call's own tail.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (writing_ || finished_) return;
    if (!outbox_.empty()) {
      Response r = std::move(outbox_.front());
      outbox_.pop_front();
      WriteLocked(std::move(r));
      return;
    }
    if (artifact_.active()) {
      v1::CompressResponse c;
      if (absl::Status s = artifact_.Next(&c); !s.ok()) {
        artifact_.Close();
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      Response r;
      if (c.has_artifact_file()) {
        *r.mutable_artifact_file() = std::move(*c.mutable_artifact_file());
      } else if (c.has_artifact_chunk()) {
        service_->metrics()->ArtifactBytes(c.artifact_chunk().data().size());
        r.mutable_artifact_chunk()->Swap(c.mutable_artifact_chunk());
      }
      if (r.msg_case() != Response::MSG_NOT_SET) {
        WriteLocked(std::move(r));
        return;
      }
    }
    PumpTailLocked();
  }

  void WriteLocked(Response r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    current_ = std::move(r);
    writing_ = true;
    write_started_ = absl::Now();
    this->StartWrite(&current_);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    finished_ = true;
    cache_.Release();
    // The call stops counting against --max-calls now, not at OnDone: the
    // client sees its status first and may start its next call.
    slot_.Release();
    status = ForCaller(status, stream_.session().job_dir_path());
    final_status_ = FromGrpcStatus(status);
    StopWorkLocked();
    OnFinishLocked(final_status_);
    this->Finish(status);
  }

  // An upload-progress message every 4 MiB and at the last byte.
  void MaybeUploadProgressLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    const UploadSession& session = stream_.session();
    const uint64_t done = session.bytes_received();
    if (done - last_progress_bytes_ < (uint64_t{4} << 20) && done != session.bytes_declared()) return;
    last_progress_bytes_ = done;
    Response r;
    r.mutable_progress()->set_phase(ProgressOf<Response>::UPLOAD);
    r.mutable_progress()->set_bytes_done(done);
    r.mutable_progress()->set_bytes_total(session.bytes_declared());
    QueueProgressLocked(std::move(r));
  }

  // Set at construction, then only read.
  CompressorService* const service_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<State> state_;
  const absl::Time deadline_;

  // Everything else is read and written under state_->mu.
  UploadStream stream_ ABSL_GUARDED_BY(state_->mu);
  bool finished_ ABSL_GUARDED_BY(state_->mu) = false;   // Finish was called
  bool cancelled_ ABSL_GUARDED_BY(state_->mu) = false;  // OnCancel ran
  absl::Status final_status_ ABSL_GUARDED_BY(state_->mu);

 private:
  // Upload complete: answer from the cache when it holds this result; else
  // compute it (leading the identical calls), or wait for an identical
  // call that leads and then look again.
  void StartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    ResultStore::Hit hit;
    auto retry = [state = state_, tasks = service_->tasks()] {
      tasks->Post([state] {  // off the releasing thread
        absl::MutexLock lock(&state->mu);
        if (UploadCall* r = state->reactor) {
          r->AssertHeld();
          r->StartLocked();
        }
      });
    };
    switch (cache_.Begin(JoinPath(stream_.session().job_dir_path(), "out"), retry, &hit)) {
      case CacheSlot::Turn::kHit:
        OnCacheHitLocked(std::move(hit));
        return;
      case CacheSlot::Turn::kWait: {
        if (ComputesWhileIdenticalLeadsLocked()) return;
        Response r;
        r.mutable_progress()->set_phase(ProgressOf<Response>::QUEUED);
        r.mutable_progress()->set_current("waiting for an identical call in flight");
        QueueLocked(std::move(r));
        return;
      }
      case CacheSlot::Turn::kCompute:
        OnUploadedLocked();
        return;
    }
  }

  // The upload ends at its last byte (the work starts at once), and these
  // calls name a message out of place in their own words.
  static UploadStream::Options StreamOptions(const ServerOptions& server) {
    UploadStream::Options options = UploadStream::ServerOptionsOf(server);
    options.words.not_a_chunk = "a second header arrived; only file chunks may follow the header";
    options.words.after_upload = "a message arrived after the upload was complete";
    return options;
  }

  // The progress message's type, whose phase enum both calls spell alike.
  template <typename R>
  using ProgressOf = std::remove_pointer_t<decltype(std::declval<R&>().mutable_progress())>;

  CallSlot slot_ ABSL_GUARDED_BY(state_->mu);
  CacheSlot cache_ ABSL_GUARDED_BY(state_->mu);
  Request request_ ABSL_GUARDED_BY(state_->mu);
  uint64_t last_progress_bytes_ ABSL_GUARDED_BY(state_->mu) = 0;

  std::deque<Response> outbox_ ABSL_GUARDED_BY(state_->mu);
  Response current_ ABSL_GUARDED_BY(state_->mu);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(state_->mu) = false;
  absl::Time write_started_ ABSL_GUARDED_BY(state_->mu);
  ArtifactStream artifact_ ABSL_GUARDED_BY(state_->mu);
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_UPLOAD_CALL_H_
