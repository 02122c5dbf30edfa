// COREMLZ_TEST_AWAIT_WORKERS=1, a test knob of coremlzd (set only by tests):
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

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_TEST_AWAIT_WORKERS_H_
