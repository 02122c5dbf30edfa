// Process exit codes of the coremlz CLI, one per failure class, so CI
// scripts can tell a bad model from a busy server.
#ifndef COREMLZ_CLIENTS_EXIT_CODES_H_
#define COREMLZ_CLIENTS_EXIT_CODES_H_

#include "absl/status/status.h"

namespace coremlz::cli {

enum ExitCode {
  kExitOk = 0,
  kExitUsage = 1,          // bad command line
  kExitInput = 2,          // the model (a damaged file included), config or a path is invalid or missing
  kExitUnsupported = 3,    // the requested compression cannot be expressed for this model/target
  kExitServer = 4,         // the server is unreachable, busy, timed out, or refused auth
  kExitValidation = 5,     // on-device validation failed or found the model unfit
  kExitIntegrity = 6,      // data lost in transfer: a size or SHA-256 check failed
  kExitInternal = 7,       // a bug: please report it
  kExitCancelled = 130,    // interrupted (Ctrl-C)
};

inline int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied: return kExitInput;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented: return kExitUnsupported;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnauthenticated: return kExitServer;
    case absl::StatusCode::kDataLoss: return kExitIntegrity;
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kAborted: return kExitCancelled;
    default: return kExitInternal;
  }
}

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_EXIT_CODES_H_
