// coremlz-runner: serves DeviceRunner on a Mac with attached iPhones (macos
// backend) or anywhere else (host backend: no Core ML, says so).
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "api/credentials.h"
#include "api/server_builder.h"
#include "api/termination_signal.h"
#include "common/arg_parser.h"
#include "workers/runner/runner_config.h"
#include "workers/runner/runner_service.h"

namespace {

constexpr char kUsage[] = R"(coremlz-runner - runs validation jobs for coremlzd on attached devices

usage: coremlz-runner [--config runner.yaml] [options]
  --address HOST:PORT       listen address (default 127.0.0.1:50061)
  --backend macos|host      macos: coremlcompiler + the harness on iPhones/the Mac; host: no Core ML
  --token-file FILE         require "authorization: Bearer <token>"
  --tls-cert/--tls-key FILE serve TLS; --tls-client-ca FILE requires client certificates
  --work-dir DIR            job directories
  --runner-id ID            name in coremlzd's pool (default: hostname)
  --device-name/--device-model   the host backend's device
  --host-delay-ms N         test knob: make every host validation take N ms
The config file (YAML) is described in deploy/macos/runner.yaml.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  auto args = coremlz::Args::Parse(argv_list,
                                        {"config", "address", "backend", "token-file", "tls-cert", "tls-key",
                                         "tls-client-ca", "work-dir", "runner-id", "device-name", "device-model",
                                         "host-delay-ms"},
                                        {"help"});
  if (!args.ok()) {
    std::fprintf(stderr, "coremlz-runner: %s\n%s", std::string(args.status().message()).c_str(), kUsage);
    return 1;
  }
  if (args->Bool("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  coremlz::api::BlockTerminationSignals();

  auto config = coremlz::runner::RunnerConfigFromFlags(*args);
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "coremlz-runner: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  if (!config.ok()) return fail(config.status());
  auto backend = coremlz::runner::MakeBackend(*config);
  if (!backend.ok()) return fail(backend.status());
  std::shared_ptr<coremlz::api::TokenAuth> auth;
  if (!config->token_file.empty()) {
    auto a = coremlz::api::TokenAuth::FromFile(config->token_file);
    if (!a.ok()) return fail(a.status());
    auth = *a;
  }
  auto creds = coremlz::api::ServerCredentials(config->tls);
  if (!creds.ok()) return fail(creds.status());
  coremlz::runner::RunnerOptions options;
  options.runner_id = config->runner_id;
  options.work_dir = config->work_dir;
  coremlz::runner::RunnerService service(std::move(*backend), options, auth);
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  int port = 0;
  auto server = coremlz::api::BuildServer(&builder, config->listen, *creds, true, &port);
  if (!server.ok()) return fail(server.status());
  std::fprintf(stderr, "coremlz-runner: serving DeviceRunner (%s backend) on port %d\n", service.backend()->name().c_str(), port);
  std::fflush(stderr);
  const int sig = coremlz::api::WaitForTerminationSignal();
  std::fprintf(stderr, "coremlz-runner: signal %d, finishing jobs\n", sig);
  (*server)->GetHealthCheckService()->SetServingStatus(false);
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
  (*server)->Wait();
  return 0;
}
