// Test knobs of coremlzd's remote fan-out, set only by tests.
//
// COREMLZ_TEST_AWAIT_WORKERS=1:
// a plan fanned out to remote workers starts its own candidate builds only
// once every worker has taken its first build (or dropped out, or 120 s
// passed). Without it a worker whose study is slow to get ready - a loaded
// test machine - may find every build already done here and so take no part
// in the plan, and a test of what a hung or killed worker changes would then
// test nothing.
#ifndef COREMLZ_SERVICE_TEST_AWAIT_WORKERS_H_
#define COREMLZ_SERVICE_TEST_AWAIT_WORKERS_H_

#include <cstdlib>
#include <cstring>

namespace coremlz::service {

inline bool TestAwaitsWorkers() {
  const char* v = std::getenv("COREMLZ_TEST_AWAIT_WORKERS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// COREMLZ_TEST_TRIALS_ON_WORKERS=1, another test knob of coremlzd: the
// front runs no trial itself and a worker builds any candidate with a trial
// waiting (not only one with two windows' worth), so a plan that completes
// had every trial of every batch run by a worker (which trials the front
// would otherwise take depends on timing). The front gives up after
// kTestTrialsOnWorkersPatienceSeconds with an error rather than wait for
// ever if the workers take none.
inline bool TestTrialsOnWorkersOnly() {
  const char* v = std::getenv("COREMLZ_TEST_TRIALS_ON_WORKERS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}
inline constexpr int kTestTrialsOnWorkersPatienceSeconds = 120;

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_TEST_AWAIT_WORKERS_H_
