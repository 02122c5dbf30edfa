// Early-return helpers for absl::Status / absl::StatusOr.
#ifndef COREMLZ_COMMON_STATUS_MACROS_H_
#define COREMLZ_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define COREMLZ_CONCAT_INNER_(a, b) a##b
#define COREMLZ_CONCAT_(a, b) COREMLZ_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function
// if it is not OK.
#define RETURN_IF_ERROR(expr)                                    \
  do {                                                           \
    ::absl::Status coremlz_status_ = (expr);                     \
    if (!coremlz_status_.ok()) return coremlz_status_;           \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns x from a StatusOr or
// returns its error status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  COREMLZ_ASSIGN_OR_RETURN_IMPL_(COREMLZ_CONCAT_(coremlz_statusor_, __LINE__), lhs, expr)

#define COREMLZ_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // COREMLZ_COMMON_STATUS_MACROS_H_
