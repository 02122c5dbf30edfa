#include "workers/runner/runner_config.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "workers/runner/host_backend.h"
#include "workers/runner/macos_factory.h"
#include "yaml-cpp/yaml.h"

namespace coremlz::runner {

absl::StatusOr<RunnerConfig> ParseRunnerConfig(const std::string& text) {
  RunnerConfig c;
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return absl::InvalidArgumentError("runner config must be a mapping");
    static const std::set<std::string> kKeys = {"listen", "backend", "token_file", "tls", "work_dir", "runner_id", "devices",
                                                "include_mac", "harness", "host"};
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (!kKeys.count(key)) return absl::InvalidArgumentError(absl::StrCat("runner config: unknown key \"", key, "\""));
    }
    if (root["listen"]) c.listen = root["listen"].as<std::string>();
    if (root["backend"]) c.backend = root["backend"].as<std::string>();
    if (root["token_file"]) c.token_file = root["token_file"].as<std::string>();
    if (root["work_dir"]) c.work_dir = root["work_dir"].as<std::string>();
    if (root["runner_id"]) c.runner_id = root["runner_id"].as<std::string>();
    if (const YAML::Node& tls = root["tls"]) {
      if (tls["cert"]) c.tls.cert = tls["cert"].as<std::string>();
      if (tls["key"]) c.tls.key = tls["key"].as<std::string>();
      if (tls["client_ca"]) c.tls.client_ca = tls["client_ca"].as<std::string>();
    }
    if (const YAML::Node& d = root["devices"]) {
      for (size_t i = 0; i < d.size(); ++i) c.devices.push_back(d[i].as<std::string>());
    }
    if (root["include_mac"]) c.include_mac = root["include_mac"].as<bool>();
    if (const YAML::Node& h = root["harness"]) {
      if (h["app"]) c.harness_app = h["app"].as<std::string>();
      if (h["bundle_id"]) c.harness_bundle_id = h["bundle_id"].as<std::string>();
      if (h["cli"]) c.harness_cli = h["cli"].as<std::string>();
    }
    if (const YAML::Node& h = root["host"]) {
      if (h["device_name"]) c.host_device_name = h["device_name"].as<std::string>();
      if (h["device_model"]) c.host_device_model = h["device_model"].as<std::string>();
      if (h["delay_ms"]) c.host_delay = absl::Milliseconds(h["delay_ms"].as<int>());
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("runner config: ", e.what()));
  }
  if (c.backend != "host" && c.backend != "macos") {
    return absl::InvalidArgumentError(absl::StrCat("runner config: backend must be \"macos\" or \"host\", not \"", c.backend, "\""));
  }
  return c;
}

absl::StatusOr<RunnerConfig> RunnerConfigFromFlags(const Args& args) {
  RunnerConfig c;
  if (auto path = args.Value("config")) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(*path, 1 << 20));
    auto parsed = ParseRunnerConfig(text);
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(*path, ": ", parsed.status().message()));
    c = *parsed;
  }
  if (auto v = args.Value("address")) c.listen = *v;
  if (auto v = args.Value("backend")) c.backend = *v;
  if (auto v = args.Value("token-file")) c.token_file = *v;
  if (auto v = args.Value("tls-cert")) c.tls.cert = *v;
  if (auto v = args.Value("tls-key")) c.tls.key = *v;
  if (auto v = args.Value("tls-client-ca")) c.tls.client_ca = *v;
  if (auto v = args.Value("work-dir")) c.work_dir = *v;
  if (auto v = args.Value("runner-id")) c.runner_id = *v;
  if (auto v = args.Value("device-name")) c.host_device_name = *v;
  if (auto v = args.Value("device-model")) c.host_device_model = *v;
  ASSIGN_OR_RETURN(std::optional<int64_t> delay, args.Int("host-delay-ms"));
  if (delay) c.host_delay = absl::Milliseconds(*delay);
  if (c.backend != "host" && c.backend != "macos") {
    return absl::InvalidArgumentError(absl::StrCat("--backend must be macos or host, not \"", c.backend, "\""));
  }
  return c;
}

absl::StatusOr<std::unique_ptr<DeviceBackend>> MakeBackend(const RunnerConfig& config) {
  if (config.backend == "host") {
    HostBackendOptions o;
    o.device_name = config.host_device_name;
    o.device_model = config.host_device_model;
    o.delay = config.host_delay;
    return std::unique_ptr<DeviceBackend>(new HostBackend(o));
  }
  return MakeMacosBackend(config);
}

}  // namespace coremlz::runner
