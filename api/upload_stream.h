// The receiving side of a call that streams files in (Compress, Inspect,
// the runner's Validate): the order of its messages - a header first, then
// the chunks of the files the header declares, then nothing more - checked
// into an UploadSession, and the limits on a client that stalls (no header
// within --header-timeout-seconds of the call's start, no message within
// --idle-timeout-seconds during the upload) with the timer that enforces
// them. Each reactor owns one and uses it under its call's mutex; the class
// itself is not thread-safe. What a reactor does with a header (its own
// checks, which files go where) stays in the reactor, between Read and
// Declared.
#ifndef COREMLZ_API_UPLOAD_STREAM_H_
#define COREMLZ_API_UPLOAD_STREAM_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/call_timer.h"
#include "api/server_options.h"
#include "api/transfer.h"
#include "api/upload_session.h"
#include "coremlz/v1/compressor.pb.h"

namespace coremlz::api {

class UploadStream {
 public:
  // How a call names a message out of place (INVALID_ARGUMENT). The words
  // differ between the calls, and clients and tests know them; each default
  // is what two of the three calls say.
  struct Words {
    const char* chunk_first = "the first message must be a header (a chunk came first)";
    const char* not_a_chunk = "only file chunks may follow the header";
    const char* after_upload = "a chunk arrived after the upload was complete";
  };

  struct Options {
    TransferLimits limits;
    // Stall limits; zero: none.
    absl::Duration header_timeout = absl::ZeroDuration();
    absl::Duration idle_timeout = absl::ZeroDuration();
    // Whether the upload is done at its last declared byte (Compress,
    // Validate: the work starts at once) or only when the client closes the
    // stream (Inspect: until then the idle limit holds and more chunks are
    // the session's to refuse).
    bool done_at_last_byte = true;
    Words words;
  };

  enum class Phase { kHeader, kUpload, kDone };
  // What a read brought, once its place in the stream is checked.
  enum class Arrival {
    kHeader,  // the header: declare its files into session(), then call Declared()
    kChunk,   // a chunk, stored; more are due
    kDone,    // the upload is complete and every file checked: start the work
    kClosed,  // the client closed the stream after the upload was done
  };

  // A job server's limits (coremlzd, coremlz-worker): transfer, header
  // and idle, with the default words.
  static Options ServerOptionsOf(const ServerOptions& server);

  // `start`: the call's start, from which the header limit runs.
  UploadStream(Options options, absl::Time start);

  // One read at `now` (`ok` false: the stream's end): `is_header` and
  // `chunk` (null when the message is not one) say what it holds. An error
  // is the status that ends the call.
  absl::StatusOr<Arrival> Read(absl::Time now, bool ok, bool is_header, const v1::FileChunk* chunk);
  // The same for a call's request message (its header and chunk fields).
  template <typename Request>
  absl::StatusOr<Arrival> Read(absl::Time now, bool ok, const Request& request) {
    return Read(now, ok, ok && request.has_header(), ok && request.has_chunk() ? &request.chunk() : nullptr);
  }

  // Read, with a header handed to `declare` (the reactor's own checks; it
  // declares the header's files into session()) and then Declared(): what
  // every reactor does with a read, in one place.
  template <typename Request, typename Declare>
  absl::StatusOr<Arrival> Receive(absl::Time now, bool ok, const Request& request, Declare declare) {
    absl::StatusOr<Arrival> arrival = Read(now, ok, request);
    if (!arrival.ok() || *arrival != Arrival::kHeader) return arrival;
    if (absl::Status s = declare(request.header()); !s.ok()) return s;
    return Declared();
  }

  // After the reactor declared the header's files: kDone when there is
  // nothing to wait for (every file empty) and the upload ends at its last
  // byte, else kHeader.
  absl::StatusOr<Arrival> Declared();

  // The stall limits at `now`: DEADLINE_EXCEEDED naming the flag once one
  // has passed; otherwise OK, and *next is when one falls due
  // (InfiniteFuture: none in this phase).
  absl::Status CheckStall(absl::Time now, absl::Time* next) const;
  // Arms the stall check for `next`, replacing the one armed; with nothing
  // due (InfiniteFuture), one idle period from `now` when there is an idle
  // limit (an upload or a write may start meanwhile), else never. `check`
  // runs on gRPC's timer thread, unless the stream is re-armed or destroyed
  // first; it must own what it touches (call_timer.h).
  void ArmStallCheck(absl::Time now, absl::Time next, std::function<void()> check);

  Phase phase() const { return phase_; }
  UploadSession& session() { return session_; }
  const UploadSession& session() const { return session_; }

 private:
  // The upload's end: every file checked, then kDone.
  absl::StatusOr<Arrival> Complete();

  Options options_;
  Phase phase_ = Phase::kHeader;
  absl::Time start_, last_read_;
  UploadSession session_;
  CallTimer stall_timer_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_UPLOAD_STREAM_H_
