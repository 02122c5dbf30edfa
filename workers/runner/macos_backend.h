// The macOS backend: compiles the model with coremlcompiler and measures it
// with the coremlz harness (clients/runner/harness) on attached iPhones,
// driven through devicectl, or on the Mac itself through the harness CLI.
//
// It cannot run on the Linux machines this project is built and tested on,
// so it is kept small, builds every command line in MacosCommands
// (macos_commands.h, where the sources for each command are listed), and is
// unit-tested through an injected CommandRunner replaying recorded outputs
// (tests/workers/macos_backend_test.cc, tests/data/runner/).
//
// Devices come from `xcrun devicectl list devices --json-output FILE`, whose
// schema (result.devices[]: identifier, deviceProperties.{name,
// osVersionNumber, developerModeStatus}, hardwareProperties.{udid,
// productType, marketingName, platform, deviceType, reality},
// connectionProperties.{pairingState, tunnelState, transportType},
// visibilityClass) was taken from Apple's coremltools (remote_device.py),
// Flutter's core_devices.dart and XcodeBuildMCP's list_devices.ts, which
// parse it. A device is "available" when paired, Developer Mode is not
// disabled, and it is reachable (tunnel connected, or a wired/local-network
// transport: XcodeBuildMCP's rule, since the tunnel comes up on demand).
//
// Failures split in two: what Core ML says about the model (coremlcompiler
// errors, load/prediction errors from the harness, an app that died without
// a result) becomes a result with passed=false and the message verbatim in
// `errors`; what breaks the runner (a tool not found, a timeout, devicectl
// failing to install/copy/launch, no harness configured) is a status.
#ifndef COREMLZ_WORKERS_RUNNER_MACOS_BACKEND_H_
#define COREMLZ_WORKERS_RUNNER_MACOS_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "workers/runner/command_runner.h"
#include "workers/runner/device_backend.h"
#include "workers/runner/macos_commands.h"
#include "workers/runner/macos_outputs.h"

namespace coremlz::runner {

struct MacosBackendOptions {
  std::string harness_app_path;  // built, signed iOS .app
  std::string harness_bundle_id = "com.coremlz.harness";
  std::string harness_cli_path;      // macOS coremlz-harness binary
  bool include_mac = true;           // offer the Mac itself as a device
  bool list_iphones = true;          // false: never call devicectl (a Mac-only runner)
  std::vector<std::string> devices;  // UDIDs (or CoreDevice identifiers) to expose; empty = all
  // Every compared output must reach this PSNR for the run to pass.
  double min_psnr_db = 30;
  uint64_t seed = 42;  // random inputs; the same for both models
  absl::Duration list_timeout = absl::Seconds(60);
  absl::Duration compile_timeout = absl::Minutes(10);
  absl::Duration devicectl_timeout = absl::Minutes(5);  // install and copies
  // Added to the request's timeout for the harness run itself (app launch
  // and model load come on top of the predictions).
  absl::Duration harness_slack = absl::Seconds(60);
  std::string scratch_dir;  // for devicectl's JSON output; empty: $TMPDIR
  MacosCommands commands;
};

// Runner-local id of the Mac itself.
inline constexpr char kMacDeviceId[] = "mac";

class MacosBackend : public DeviceBackend {
 public:
  MacosBackend(std::unique_ptr<CommandRunner> runner, MacosBackendOptions options);

  std::string name() const override { return "macos"; }
  absl::StatusOr<std::vector<v1::DeviceInfo>> ListDevices() override;
  absl::StatusOr<v1::ValidationResult> Run(const v1::DeviceInfo& device, const ValidationInput& input,
                                           engine::JobControl* control) override;

  // `xcrun coremlcompiler version`, for the runner's description.
  absl::StatusOr<std::string> CompilerVersion();

 private:
  struct Compiled {
    std::string path;  // the .mlmodelc
    double seconds = 0;
    std::string error;  // coremlcompiler's message when it failed
  };

  absl::StatusOr<v1::DeviceInfo> MacDevice();
  absl::StatusOr<Compiled> Compile(const std::string& model, const std::string& output_dir);
  absl::StatusOr<v1::ValidationResult> RunOnMac(const ValidationInput& input, HarnessArgs args, const std::string& work,
                                                v1::ValidationResult result);
  absl::StatusOr<v1::ValidationResult> RunOnIphone(const v1::DeviceInfo& device, const ValidationInput& input,
                                                   HarnessArgs args, const std::string& work, const std::string& stage,
                                                   v1::ValidationResult result, engine::JobControl* control);
  absl::Duration HarnessTimeout(const v1::ValidationRequest& request) const;

  std::unique_ptr<CommandRunner> runner_;
  MacosBackendOptions options_;
  absl::Mutex mu_;
  std::optional<v1::DeviceInfo> mac_ ABSL_GUARDED_BY(mu_);
  // Devices the harness app was installed on by this process: installed
  // once per runner start, so a new build reaches every phone after a
  // restart.
  std::set<std::string> installed_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> runs_{0};  // numbers the run directories on phones
};

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_MACOS_BACKEND_H_
