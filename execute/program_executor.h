// Runs one function of a Core ML ML Program on the CPU, in float32: the
// reference executor. At load it resolves every name, reads const values,
// decodes every constexpr_* op through the engine's decompression (so an
// original and its compressed form run the same code from then on), picks
// each op's kernel from the OpRegistry and computes when each intermediate
// is used for the last time. A run binds the inputs, runs the ops in order,
// frees each intermediate after its last use and returns the outputs.
//
// Stateful functions: state inputs are not passed to Run; read_state and
// write_state work on the buffers of a Session (a fresh, zero-filled one
// when none is given).
//
// Control flow: while_loop (a condition block and a body block over the loop
// variables) and cond (a block per branch) run their nested blocks, which may
// read any value defined before them; values made inside a nested block live
// until that block's run ends. Lists (make_list, list_*) are values too.
//
// Errors: an op without a kernel is UNIMPLEMENTED at load, naming the op,
// its type, function, block and position; a malformed program or bad inputs
// are INVALID_ARGUMENT.
#ifndef COREMLZ_EXECUTE_PROGRAM_EXECUTOR_H_
#define COREMLZ_EXECUTE_PROGRAM_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/mil.pb.h"
#include "engine/decompress.h"
#include "execute/op_registry.h"
#include "execute/session.h"
#include "execute/tensor.h"
#include "format/package.h"

namespace coremlz::execute {

// A function input: name, compute type and shape (-1 where not fixed).
struct InputDecl {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  bool is_state = false;
};

struct RunStats {
  int64_t ops_run = 0;
  // Most intermediate tensors alive at once, and their bytes (constants
  // and inputs not counted).
  int64_t peak_live_tensors = 0;
  int64_t peak_live_bytes = 0;
  // The two largest intermediates produced, for the memory bound a run is
  // held to (weights + the two largest activations + a constant).
  int64_t largest_intermediate_bytes = 0;
  int64_t second_largest_intermediate_bytes = 0;
  // Set by the caller before Run (kept through it): called after every
  // op (nested blocks' too) or layer, once the values it was the last to read are
  // freed, with its location and the bytes of live intermediates, so that a
  // profiler (bench/executor_memory --trace) can attribute memory to ops.
  std::function<void(const std::string& location, int64_t live_bytes)> after_op;

  void NoteIntermediate(int64_t bytes) {
    if (bytes > largest_intermediate_bytes) {
      second_largest_intermediate_bytes = largest_intermediate_bytes;
      largest_intermediate_bytes = bytes;
    } else if (bytes > second_largest_intermediate_bytes) {
      second_largest_intermediate_bytes = bytes;
    }
  }
};

class ProgramExecutor {
 public:
  // `function` empty: the model's default function, else "main", else the
  // only one. The package must outlive the call only.
  static absl::StatusOr<std::unique_ptr<ProgramExecutor>> Load(format::MlPackage* package,
                                                               const std::string& function = "");
  static absl::StatusOr<std::unique_ptr<ProgramExecutor>> Load(
      const CoreML::Specification::MILSpec::Program& program, engine::ValueReader* reader,
      const std::string& function);

  const std::string& function() const { return function_; }
  const std::vector<InputDecl>& inputs() const { return inputs_; }
  const std::vector<std::string>& output_names() const { return output_names_; }

  // Every function input (but states) by name; the outputs by name.
  absl::StatusOr<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& inputs,
                                                    RunStats* stats = nullptr) const;
  // The same, reading and updating the state buffers of `session`.
  absl::StatusOr<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& inputs, Session* session,
                                                    RunStats* stats = nullptr) const;
  bool is_stateful() const;
  // Bytes held by the decoded constants (weights widened to float32 and
  // every other const), for memory accounting.
  int64_t constant_bytes() const;

  // Incremental runs, for measuring what new values of a few constants do
  // to the outputs (the planner's trials) without running the whole program
  // each time. RunKeeping runs like Run and keeps every value it computed;
  // RunReplacing then recomputes only the ops that depend, directly or
  // through other ops, on a replaced constant, reusing the kept values for
  // everything else. The outputs are exactly those of Run on a program whose
  // constants had the new values (the same kernels on the same values).
  // A stateful function's runs each start from zeroed state buffers (a
  // fresh Session), and RunReplacing also returns every state's final value,
  // under kStateOutputPrefix + its name: what a call leaves in the state (a
  // KV cache) is as much its result as its outputs. A loop or branch whose
  // body reads or writes a state reruns when one of those states changed;
  // skipped, it leaves what it left in the kept run.
  static constexpr char kStateOutputPrefix[] = "state:";
  struct KeptRun {
    std::vector<std::shared_ptr<const Tensor>> values;  // by slot
    int64_t bytes = 0;  // of the kept intermediates
    std::map<std::string, Tensor> start_states;  // a stateful function's buffers when the run began
    // After each top-level loop or branch whose body writes states, what it
    // left in them (by op index, then state index): a rerun that skips the
    // op takes them from here.
    std::map<int, std::map<int, Tensor>> nested_writes;
  };
  // `keep_intermediates` false keeps only the inputs: RunReplacing then runs
  // every op (a full run), for when keeping them all would cost too much
  // memory.
  absl::StatusOr<KeptRun> RunKeeping(const std::map<std::string, Tensor>& inputs, bool keep_intermediates = true) const;
  struct Replacement {
    int slot = -1;  // ConstantSlot() of the constant
    std::shared_ptr<const Tensor> value;  // same type and shape as the constant
  };
  absl::StatusOr<std::map<std::string, Tensor>> RunReplacing(const KeptRun& kept,
                                                             const std::vector<Replacement>& replacements,
                                                             RunStats* stats = nullptr) const;
  // The slot of a named constant (a const op's or a decoded constexpr op's
  // output); -1 when no constant has that name.
  int ConstantSlot(const std::string& name) const;
  // Where an op reads a value: the op's index among the non-constant ops
  // (the same in a model and its compressed form, which differ only in their
  // constant ops), the input's name and the position within it. An op
  // inside a loop or branch body is reached from its top-level op through
  // `nested`: (block index, op index among that block's non-constant ops)
  // pairs, outermost first.
  struct ArgumentRef {
    int op = -1;
    std::string input;
    int position = 0;
    std::vector<std::pair<int, int>> nested;
  };
  // Every read of `slot`, top-level ops first, then those inside bodies (a
  // weight an LSTM's while_loop reads is used only there; RunReplacing
  // reruns such a loop when the weight changes).
  std::vector<ArgumentRef> UsesOf(int slot) const;
  // The constant bound at `use`; nullptr when that argument is not a constant.
  std::shared_ptr<const Tensor> ConstantAt(const ArgumentRef& use) const;

  ~ProgramExecutor();

 private:
  struct Step;
  struct Block;
  struct RunState;
  ProgramExecutor() = default;
  absl::Status BindInputs(const std::map<std::string, Tensor>& inputs, Session* session,
                          std::vector<std::shared_ptr<const Tensor>>* values) const;
  // Runs one op on state->values, checking what it produced against the program.
  absl::StatusOr<std::vector<Tensor>> Compute(const Step& step, RunState* state) const;
  absl::Status RunSteps(const std::vector<Step>& steps, RunState* state) const;
  static void SlotsRead(const Step& step, std::vector<int>* slots);
  // The states a top-level op's loop or branch bodies read and write, each
  // once, ascending.
  static void NestedStates(const Step& step, std::vector<int>* read, std::vector<int>* written);
  absl::Status RunControlFlow(const Step& step, RunState* state, std::vector<Tensor>* produced) const;
  absl::Status RunBlock(const Block& block, const std::vector<std::shared_ptr<const Tensor>>& inputs,
                        RunState* state, std::vector<std::shared_ptr<const Tensor>>* outputs) const;

  std::string function_;
  std::vector<InputDecl> inputs_;
  std::vector<int> input_slots_;
  std::vector<std::string> output_names_;
  std::vector<int> output_slots_;
  // Values by slot: constants filled at load, the rest during a run.
  std::vector<std::shared_ptr<const Tensor>> constants_;
  std::vector<Step> steps_;
  std::map<std::string, int> constant_slots_;
};

// Which function Load picks for a model when none is named.
std::string DefaultFunction(const CoreML::Specification::Model& model);

// The block of `function` that Load runs - its opset's specialization, else
// its only one - and that block's key. INVALID_ARGUMENT naming the functions
// the program has, or the opset without a block.
struct ExecutedBlock {
  const CoreML::Specification::MILSpec::Function* function = nullptr;
  std::string key;
  const CoreML::Specification::MILSpec::Block* block = nullptr;
};
absl::StatusOr<ExecutedBlock> FindExecutedBlock(const CoreML::Specification::MILSpec::Program& program,
                                               const std::string& function);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_PROGRAM_EXECUTOR_H_
