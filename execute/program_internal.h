// What a loaded program is made of and the state of one run: shared by the
// files that implement ProgramExecutor (program_executor.cc loads,
// program_run.cc runs, incremental_run.cc reruns part of a program). Not an
// API: nothing outside execute/program_*.cc and incremental_run.cc includes it.
#ifndef COREMLZ_EXECUTE_PROGRAM_INTERNAL_H_
#define COREMLZ_EXECUTE_PROGRAM_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "execute/op_registry.h"
#include "execute/program_executor.h"
#include "execute/session.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// One non-constant op, ready to run.
struct ProgramExecutor::Step {
  // State ops need the session's buffers and control flow runs nested
  // blocks, so the executor runs those itself.
  enum class Kind { kKernel, kReadState, kWriteState, kWhileLoop, kCond };
  Kind kind = Kind::kKernel;
  int state = -1;  // index into inputs_ of the state a state op works on
  std::string type;
  std::string location;  // "op 'x' (type t) in function f, block b, op #n"
  int opset = 15;
  OpKernel kernel = nullptr;
  // Input name -> slots (variadic inputs hold several).
  std::vector<std::pair<std::string, std::vector<int>>> args;
  std::vector<OutputDecl> outputs;
  std::vector<int> output_slots;
  std::vector<int> free_after;  // intermediates whose last use is this op
  // Every slot the op reads, its nested blocks' reads included (top-level
  // ops only; set at load for freeing and for incremental reruns).
  std::vector<int> reads;
  // The states its loop or branch bodies read and write (top-level ops only;
  // set at load, for incremental reruns).
  std::vector<int> nested_state_reads, nested_state_writes;
  // while_loop: {condition, body}; cond: {true branch, false branch}.
  std::vector<Block> blocks;
};

// A nested block: its inputs (loop variables), its ops, what it returns, and
// the values it makes (released when a run of the block ends).
struct ProgramExecutor::Block {
  std::vector<int> input_slots;
  std::vector<Step> steps;
  std::vector<int> output_slots;
  std::vector<int> locals;
};

struct ProgramExecutor::RunState {
  std::vector<std::shared_ptr<const Tensor>> values;
  Session* session = nullptr;
  RunStats stats;
  int64_t live = 0;
  int64_t live_bytes = 0;
};

namespace program_internal {

inline absl::Status WithLocation(const absl::Status& s, const std::string& location) {
  return absl::Status(s.code(), absl::StrCat(location, ": ", s.message()));
}

inline int64_t Bytes(const Tensor& t) { return t.size() * (t.dtype() == DType::kString ? 16 : 4); }

// A program is untrusted: a loop whose condition never turns false must end.
inline constexpr int64_t kMaxLoopIterations = int64_t{1} << 20;

// Only these take list values; any other kernel given a list is refused
// rather than reading a list as an empty tensor.
inline bool TakesLists(const std::string& type) {
  return type == "make_list" || type == "identity" || absl::StartsWith(type, "list_");
}

}  // namespace program_internal
}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_PROGRAM_INTERNAL_H_
