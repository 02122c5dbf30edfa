// The state buffers of one conversation with a stateful ML Program (a KV
// cache, ...): read_state and write_state ops read and replace them, and they
// persist across the runs made with the same Session. Buffers are keyed by
// the state input's name, so the functions of a multifunction package that
// declare the same state (prefill, then decode) can share one Session. A
// buffer is zero-filled when a run first needs it.
#ifndef COREMLZ_EXECUTE_SESSION_H_
#define COREMLZ_EXECUTE_SESSION_H_

#include <map>
#include <string>

#include "execute/tensor.h"

namespace coremlz::execute {

class Session {
 public:
  // nullptr before a run has created the buffer.
  const Tensor* state(const std::string& name) const {
    auto it = states_.find(name);
    return it == states_.end() ? nullptr : &it->second;
  }
  // Sets a buffer explicitly (its shape and type are checked at the next run).
  void SetState(const std::string& name, Tensor value) { states_[name] = std::move(value); }
  // Forgets every buffer: the next run starts from zeros.
  void Reset() { states_.clear(); }

 private:
  friend class ProgramExecutor;
  std::map<std::string, Tensor> states_;
};

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_SESSION_H_
