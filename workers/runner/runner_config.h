// coremlz-runner's configuration: a YAML file (deploy/macos/runner.yaml is
// an example) with command-line overrides.
//
//   listen: 0.0.0.0:50061
//   backend: macos            # or host
//   token_file: /usr/local/etc/coremlz/runner.token
//   tls: {cert: server.pem, key: server.key, client_ca: front-ca.pem}
//   work_dir: /var/tmp/coremlz-runner
//   devices: [00008110-001A2B3C4D5E6F70]   # macos: expose only these (default: all paired)
//   include_mac: true                      # macos: also validate on the Mac itself
//   harness:
//     app: /usr/local/share/coremlz/CoremlzHarness.app
//     bundle_id: com.coremlz.harness
//     cli: /usr/local/bin/coremlz-harness
#ifndef COREMLZ_WORKERS_RUNNER_RUNNER_CONFIG_H_
#define COREMLZ_WORKERS_RUNNER_RUNNER_CONFIG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/credentials.h"
#include "common/arg_parser.h"
#include "workers/runner/device_backend.h"

namespace coremlz::runner {

struct RunnerConfig {
  std::string listen = "127.0.0.1:50061";
  std::string backend = "host";
  std::string token_file;
  api::TlsFiles tls;
  std::string work_dir;
  std::string runner_id;
  // macos
  std::vector<std::string> devices;
  bool include_mac = true;
  std::string harness_app;
  std::string harness_bundle_id = "com.coremlz.harness";
  std::string harness_cli;
  // host
  std::string host_device_name = "Linux host";
  std::string host_device_model = "linux-host";
  absl::Duration host_delay = absl::ZeroDuration();  // test knob
};

absl::StatusOr<RunnerConfig> ParseRunnerConfig(const std::string& yaml);
// --config FILE first, then flags on top.
absl::StatusOr<RunnerConfig> RunnerConfigFromFlags(const Args& args);

absl::StatusOr<std::unique_ptr<DeviceBackend>> MakeBackend(const RunnerConfig& config);

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_RUNNER_CONFIG_H_
