// Every command line the macOS backend runs, built in one place so that the
// whole contact surface with Xcode's tools is reviewable on one screen and
// testable without a Mac.
//
// What the argument lists rest on (checked against public sources, not run
// here - this machine has no Mac):
//   coremlcompiler  `xcrun coremlcompiler compile <model> <output_dir>` writes
//                   <output_dir>/<model stem>.mlmodelc and reports errors as
//                   "coremlc: error: ..." (scripts and build logs quoting it,
//                   e.g. huggingface.co/lithium0003/coreml-whisper
//                   compile_model.sh). `xcrun coremlcompiler version` prints
//                   the compiler version (third-party scripts; not in Apple's
//                   docs).
//   devicectl       Apple, "Interacting with devices using the command line"
//                   (developer.apple.com/documentation/xcode/interacting-with-
//                   devices-using-the-command-line): `--device <uuid|ecid|udid|
//                   name>`, `device install app --device D <path.app>`,
//                   `device process launch --device D <bundle-id>`, `device
//                   copy to|from --device D --source S --destination T
//                   --domain-type appDataContainer --domain-identifier <bundle
//                   id>`, `--json-output` for machine-readable results ("don't
//                   rely on or parse the Terminal output"), `--user` for
//                   credentials. coremltools' remote_device.py (apple/
//                   coremltools, coremltools/models/ml_program/experimental)
//                   passes `--user mobile` to copy on iPhones and parses
//                   `list devices` JSON the way ParseDevicectlDevices does.
//                   `devicectl help device process launch` (quoted in several
//                   repositories): "USAGE: devicectl device process launch
//                   [<options>] --device <...> <bundle-identifier-or-path>
//                   [<command-line-arguments> ...]", "--console  Attaches the
//                   application to the console and waits for it to exit",
//                   "--terminate-existing  Terminates any already-running
//                   instances of the app prior to launch". App arguments that
//                   start with '-' are taken as devicectl's own options unless
//                   a `--` ends option parsing (Apple feedback FB13259837;
//                   Swift ArgumentParser semantics, relied on by maestro and
//                   agent-device), hence the `--` before the bundle id.
//   Mac facts       `sysctl -n hw.model machdep.cpu.brand_string` (one value
//                   per line), `sw_vers -productVersion`, `scutil --get
//                   ComputerName`.
// Not verified anywhere we could read: whether `device copy to` with a
// directory source creates the destination as that directory or puts the
// source directory inside it (third-party scripts copy directories both
// ways without saying). The harness app accepts either layout; see
// clients/runner/harness/README.md.
#ifndef COREMLZ_WORKERS_RUNNER_MACOS_COMMANDS_H_
#define COREMLZ_WORKERS_RUNNER_MACOS_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "coremlz/v1/validation.pb.h"

namespace coremlz::runner {

// The harness's own flags; the macOS CLI and the iOS app take the same ones
// (clients/runner/harness/README.md). On iOS every path is relative to
// `run_dir`, which is relative to the app's data container.
struct HarnessArgs {
  std::string run_dir;   // iOS only
  std::string model;     // compiled .mlmodelc
  std::string original;  // compiled .mlmodelc to compare with; optional
  std::string inputs;    // JSON inputs file; optional (random inputs)
  std::string output;    // result JSON
  std::string compute_units = "all";
  int iterations = 20;
  int warmup = 3;
  uint64_t seed = 42;
};

// "all", "cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine": MLComputeUnits' case
// names, which the harness parses.
std::string HarnessComputeUnits(v1::ComputeUnits units);

// The flags alone, in a fixed order.
std::vector<std::string> HarnessFlags(const HarnessArgs& args);

struct MacosCommands {
  std::string xcrun = "xcrun";
  // `--user` for devicectl copies on iPhones (coremltools passes "mobile");
  // empty leaves the option out.
  std::string device_user = "mobile";

  std::vector<std::string> CompilerVersion() const;
  std::vector<std::string> Compile(const std::string& model, const std::string& output_dir) const;

  std::vector<std::string> ListDevices(const std::string& json_output) const;
  std::vector<std::string> InstallApp(const std::string& device, const std::string& app) const;
  std::vector<std::string> CopyTo(const std::string& device, const std::string& bundle_id, const std::string& source,
                                  const std::string& destination) const;
  std::vector<std::string> CopyFrom(const std::string& device, const std::string& bundle_id, const std::string& source,
                                    const std::string& destination) const;
  // Waits for the app to exit (--console) after ending any earlier instance.
  std::vector<std::string> Launch(const std::string& device, const std::string& bundle_id,
                                  const HarnessArgs& args) const;

  std::vector<std::string> MacHarness(const std::string& cli, const HarnessArgs& args) const;
  std::vector<std::string> MacHardware() const;  // model identifier, then CPU brand
  std::vector<std::string> MacOsVersion() const;
  std::vector<std::string> MacName() const;
};

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_MACOS_COMMANDS_H_
