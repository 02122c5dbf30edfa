// COREMLZ_TEST_HANG_TRIALS=1, a test knob of coremlz-worker (set only by
// tests): the worker accepts a plan's trials and never answers them, as a
// hung (not dead) process would, until the call is cancelled - so that the
// front's per-trial patience can be tested with a real process.
#ifndef COREMLZ_WORKERS_TEST_HANG_H_
#define COREMLZ_WORKERS_TEST_HANG_H_

#include <cstdlib>
#include <cstring>

namespace coremlz::workers {

inline bool TestHangsTrials() {
  const char* v = std::getenv("COREMLZ_TEST_HANG_TRIALS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace coremlz::workers

#endif  // COREMLZ_WORKERS_TEST_HANG_H_
