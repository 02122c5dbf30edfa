// A minimal HTTP/1.0 GET against a loopback port, for tests that read
// /metrics or Prometheus' HTTP API (5 s socket timeouts).
#ifndef COREMLZ_TESTS_TESTING_HTTP_GET_H_
#define COREMLZ_TESTS_TESTING_HTTP_GET_H_

#include <string>

namespace coremlz::testing {

// The response body; *status (if given) gets the HTTP status, 0 when the
// request failed.
std::string HttpGet(int port, const std::string& path, int* status = nullptr);

}  // namespace coremlz::testing

#endif  // COREMLZ_TESTS_TESTING_HTTP_GET_H_
