#include "workers/runner/macos_commands.h"

#include <utility>

namespace coremlz::runner {

std::string HarnessComputeUnits(v1::ComputeUnits units) {
  switch (units) {
    case v1::CPU_ONLY:
      return "cpuOnly";
    case v1::CPU_AND_GPU:
      return "cpuAndGPU";
    case v1::CPU_AND_NE:
      return "cpuAndNeuralEngine";
    default:
      return "all";
  }
}

std::vector<std::string> HarnessFlags(const HarnessArgs& a) {
  std::vector<std::string> argv;
  if (!a.run_dir.empty()) argv.insert(argv.end(), {"--run-dir", a.run_dir});
  argv.insert(argv.end(), {"--model", a.model});
  if (!a.original.empty()) argv.insert(argv.end(), {"--original", a.original});
  if (!a.inputs.empty()) argv.insert(argv.end(), {"--inputs", a.inputs});
  argv.insert(argv.end(),
              {"--output", a.output, "--compute-units", a.compute_units, "--iterations", std::to_string(a.iterations),
               "--warmup", std::to_string(a.warmup), "--seed", std::to_string(a.seed)});
  return argv;
}

std::vector<std::string> MacosCommands::CompilerVersion() const { return {xcrun, "coremlcompiler", "version"}; }

std::vector<std::string> MacosCommands::Compile(const std::string& model, const std::string& output_dir) const {
  return {xcrun, "coremlcompiler", "compile", model, output_dir};
}

std::vector<std::string> MacosCommands::ListDevices(const std::string& json_output) const {
  return {xcrun, "devicectl", "list", "devices", "--json-output", json_output};
}

std::vector<std::string> MacosCommands::InstallApp(const std::string& device, const std::string& app) const {
  return {xcrun, "devicectl", "device", "install", "app", "--device", device, app};
}

namespace {

std::vector<std::string> Copy(const MacosCommands& c, const char* direction, const std::string& device,
                              const std::string& bundle_id, const std::string& source, const std::string& destination) {
  // clang-format off
  std::vector<std::string> argv = {c.xcrun, "devicectl", "device", "copy", direction, "--device", device,
                                   "--domain-type", "appDataContainer", "--domain-identifier", bundle_id};
  // clang-format on
  if (!c.device_user.empty()) argv.insert(argv.end(), {"--user", c.device_user});
  argv.insert(argv.end(), {"--source", source, "--destination", destination});
  return argv;
}

}  // namespace

std::vector<std::string> MacosCommands::CopyTo(const std::string& device, const std::string& bundle_id,
                                               const std::string& source, const std::string& destination) const {
  return Copy(*this, "to", device, bundle_id, source, destination);
}

std::vector<std::string> MacosCommands::CopyFrom(const std::string& device, const std::string& bundle_id,
                                                 const std::string& source, const std::string& destination) const {
  return Copy(*this, "from", device, bundle_id, source, destination);
}

std::vector<std::string> MacosCommands::Launch(const std::string& device, const std::string& bundle_id,
                                               const HarnessArgs& args) const {
  // `--` ends devicectl's options: the app's own flags follow the bundle id.
  // clang-format off
  std::vector<std::string> argv = {xcrun, "devicectl", "device", "process", "launch", "--device", device,
                                   "--terminate-existing", "--console", "--", bundle_id};
  // clang-format on
  for (std::string& flag : HarnessFlags(args)) argv.push_back(std::move(flag));
  return argv;
}

std::vector<std::string> MacosCommands::MacHarness(const std::string& cli, const HarnessArgs& args) const {
  std::vector<std::string> argv = {cli};
  for (std::string& flag : HarnessFlags(args)) argv.push_back(std::move(flag));
  return argv;
}

std::vector<std::string> MacosCommands::MacHardware() const {
  return {"sysctl", "-n", "hw.model", "machdep.cpu.brand_string"};
}

std::vector<std::string> MacosCommands::MacOsVersion() const { return {"sw_vers", "-productVersion"}; }

std::vector<std::string> MacosCommands::MacName() const { return {"scutil", "--get", "ComputerName"}; }

}  // namespace coremlz::runner
