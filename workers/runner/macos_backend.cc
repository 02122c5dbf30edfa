#include "workers/runner/macos_backend.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/json_writer.h"
#include "common/status_macros.h"
#include "workers/runner/macos_factory.h"
#include "workers/runner/runner_config.h"

namespace coremlz::runner {
namespace {

// Where runs live inside the app's data container.
constexpr char kDeviceRunsDir[] = "Documents/coremlz";
// Enough of a dying app's console output to say why, not a whole log.
constexpr size_t kMaxQuotedOutput = 4096;

absl::Status Annotate(const absl::Status& s, absl::string_view what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

// What a failed tool said, as it said it: stderr, else stdout.
std::string Verbatim(const CommandOutput& out, absl::string_view tool) {
  std::string text(absl::StripTrailingAsciiWhitespace(out.stderr_text));
  if (text.empty()) text = std::string(absl::StripTrailingAsciiWhitespace(out.stdout_text));
  if (text.empty()) text = absl::StrCat(tool, " exited with status ", out.exit_code, " and printed nothing");
  return text;
}

std::string Tail(std::string text) {
  text = std::string(absl::StripAsciiWhitespace(text));
  if (text.size() > kMaxQuotedOutput) text = absl::StrCat("...", text.substr(text.size() - kMaxQuotedOutput));
  return text;
}

// For names that end up in paths on the device: [A-Za-z0-9._-] only.
std::string Sanitize(absl::string_view s) {
  std::string out;
  for (char c : s)
    out.push_back(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '_');
  return out.empty() ? std::string("run") : out;
}

std::string Basename(absl::string_view path) {
  path = absl::StripSuffix(path, "/");
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

// model.mlpackage -> model; what coremlcompiler names its output after.
std::string Stem(absl::string_view path) {
  std::string base = Basename(path);
  const size_t dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

absl::Status MovePath(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) return absl::InternalError(absl::StrCat("moving ", from, " to ", to, ": ", ec.message()));
  return absl::OkStatus();
}

std::string InputsJson(const v1::ValidationRequest& request) {
  JsonWriter w(0);
  w.BeginObject().Key("inputs").BeginArray();
  for (const v1::NamedTensor& t : request.inputs()) {
    w.BeginObject().Key("name").String(t.name()).Key("shape").BeginArray();
    for (int64_t d : t.shape()) w.Int(d);
    w.EndArray().Key("values").BeginArray();
    for (float v : t.values()) w.Double(v);
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  return w.str();
}

bool Cancelled(engine::JobControl* control) { return control != nullptr && control->Cancelled(); }

}  // namespace

MacosBackend::MacosBackend(std::unique_ptr<CommandRunner> runner, MacosBackendOptions options)
    : runner_(std::move(runner)), options_(std::move(options)) {}

absl::StatusOr<std::string> MacosBackend::CompilerVersion() {
  absl::StatusOr<CommandOutput> out = runner_->Run(options_.commands.CompilerVersion(), options_.list_timeout);
  if (!out.ok()) return Annotate(out.status(), "coremlcompiler version");
  if (out->exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("coremlcompiler version: ", Verbatim(*out, "coremlcompiler")));
  }
  return std::string(absl::StripAsciiWhitespace(out->stdout_text));
}

absl::StatusOr<v1::DeviceInfo> MacosBackend::MacDevice() {
  std::optional<v1::DeviceInfo> cached;
  {
    absl::MutexLock lock(&mu_);
    cached = mac_;
  }
  // Asked outside the lock: runs must not wait on these commands.
  if (!cached) {
    const MacosCommands& c = options_.commands;
    std::vector<std::string> lines[3];
    const std::vector<std::string> argvs[3] = {c.MacHardware(), c.MacOsVersion(), c.MacName()};
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<CommandOutput> out = runner_->Run(argvs[i], options_.list_timeout);
      if (!out.ok()) return Annotate(out.status(), argvs[i][0]);
      if (out->exit_code != 0) {
        return absl::UnavailableError(
            absl::StrCat("`", absl::StrJoin(argvs[i], " "), "`: ", Verbatim(*out, argvs[i][0])));
      }
      for (absl::string_view line : absl::StrSplit(out->stdout_text, '\n', absl::SkipWhitespace())) {
        lines[i].emplace_back(absl::StripAsciiWhitespace(line));
      }
    }
    v1::DeviceInfo mac;
    mac.set_id(kMacDeviceId);
    mac.set_name(!lines[2].empty() ? lines[2][0] : "This Mac");
    mac.set_model(!lines[0].empty() ? lines[0][0] : "Mac");
    mac.set_chip(lines[0].size() > 1 ? lines[0][1] : "");
    mac.set_platform("macOS");
    mac.set_os_version(!lines[1].empty() ? lines[1][0] : "");
    absl::MutexLock lock(&mu_);
    mac_ = mac;
    cached = mac;
  }
  v1::DeviceInfo mac = *cached;
  mac.set_state(options_.harness_cli_path.empty() ? "unavailable" : "available");
  return mac;
}

absl::StatusOr<std::vector<v1::DeviceInfo>> MacosBackend::ListDevices() {
  std::vector<v1::DeviceInfo> out;
  if (options_.list_iphones) {
    std::string dir;
    if (options_.scratch_dir.empty()) {
      ASSIGN_OR_RETURN(dir, MakeTempDirectory("coremlz-devicectl"));
    } else {
      static std::atomic<int> counter{0};
      dir = JoinPath(options_.scratch_dir, absl::StrCat("devicectl-", ::getpid(), "-", counter++));
      RETURN_IF_ERROR(MakeDirectories(dir));
    }
    const std::string json_path = JoinPath(dir, "devices.json");
    absl::StatusOr<CommandOutput> listed =
        runner_->Run(options_.commands.ListDevices(json_path), options_.list_timeout);
    absl::StatusOr<std::string> json =
        listed.ok() && listed->exit_code == 0 ? ReadFile(json_path, 64 << 20) : absl::StatusOr<std::string>("");
    (void)RemoveAll(dir);
    if (!listed.ok()) return Annotate(listed.status(), "devicectl list devices");
    if (listed->exit_code != 0) {
      return absl::UnavailableError(absl::StrCat("devicectl list devices: ", Verbatim(*listed, "devicectl")));
    }
    if (!json.ok()) return Annotate(json.status(), "devicectl list devices wrote no JSON");
    ASSIGN_OR_RETURN(std::vector<v1::DeviceInfo> phones,
                     ParseDevicectlDevices(*json, !options_.harness_app_path.empty()));
    for (v1::DeviceInfo& phone : phones) {
      if (!options_.devices.empty() &&
          std::find(options_.devices.begin(), options_.devices.end(), phone.id()) == options_.devices.end()) {
        continue;
      }
      out.push_back(std::move(phone));
    }
  }
  if (options_.include_mac) {
    ASSIGN_OR_RETURN(v1::DeviceInfo mac, MacDevice());
    out.push_back(std::move(mac));
  }
  return out;
}

absl::StatusOr<MacosBackend::Compiled> MacosBackend::Compile(const std::string& model, const std::string& output_dir) {
  RETURN_IF_ERROR(MakeDirectories(output_dir));
  absl::StatusOr<CommandOutput> out =
      runner_->Run(options_.commands.Compile(model, output_dir), options_.compile_timeout);
  if (!out.ok()) return Annotate(out.status(), "coremlcompiler");
  Compiled c;
  c.seconds = out->seconds;
  c.path = JoinPath(output_dir, Stem(model) + ".mlmodelc");
  if (out->exit_code != 0) {
    c.error = Verbatim(*out, "coremlcompiler");
  } else if (!IsDirectory(c.path)) {
    // Exit status 0 without the bundle: whatever it printed is the reason.
    const bool silent =
        absl::StripAsciiWhitespace(out->stdout_text).empty() && absl::StripAsciiWhitespace(out->stderr_text).empty();
    c.error = silent ? absl::StrCat("coremlcompiler exited with status 0 but wrote no ", c.path)
                     : Verbatim(*out, "coremlcompiler");
  }
  return c;
}

absl::Duration MacosBackend::HarnessTimeout(const v1::ValidationRequest& request) const {
  const absl::Duration base =
      request.timeout_seconds() > 0 ? absl::Seconds(request.timeout_seconds()) : absl::Seconds(300);
  return base + options_.harness_slack;
}

absl::StatusOr<v1::ValidationResult> MacosBackend::Run(const v1::DeviceInfo& device, const ValidationInput& input,
                                                       engine::JobControl* control) {
  const bool on_mac = device.id() == kMacDeviceId;
  if (!on_mac && device.platform() != "iOS") {
    return absl::InvalidArgumentError(absl::StrCat("the macos backend cannot run on ",
                                                   device.platform().empty() ? "?" : device.platform(), " device ",
                                                   device.id()));
  }
  if (on_mac && options_.harness_cli_path.empty()) {
    return absl::FailedPreconditionError("no macOS harness configured (harness.cli): cannot run on the Mac");
  }
  if (!on_mac && options_.harness_app_path.empty()) {
    return absl::FailedPreconditionError("no iOS harness app configured (harness.app): cannot run on iPhones");
  }
  if (!on_mac && !IsDirectory(options_.harness_app_path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the harness app ", options_.harness_app_path, " does not exist"));
  }
  if (input.work_dir.empty()) return absl::InvalidArgumentError("no work directory for the validation");
  if (Cancelled(control)) return absl::CancelledError("validation cancelled");

  v1::ValidationResult result;
  result.set_backend("macos");
  *result.mutable_device() = device;
  const std::string work = JoinPath(input.work_dir, "macos-" + Sanitize(device.id()));
  RETURN_IF_ERROR(RemoveAll(work));
  RETURN_IF_ERROR(MakeDirectories(work));

  ASSIGN_OR_RETURN(Compiled compressed, Compile(input.compressed_path, JoinPath(work, "compiled")));
  result.set_compile_seconds(compressed.seconds);
  if (!compressed.error.empty()) {
    result.set_passed(false);
    result.add_errors(compressed.error);
    result.set_notes("coremlcompiler could not compile the compressed model; nothing ran");
    return result;
  }
  Compiled original;
  if (!input.original_path.empty()) {
    if (Cancelled(control)) return absl::CancelledError("validation cancelled");
    ASSIGN_OR_RETURN(original, Compile(input.original_path, JoinPath(work, "compiled-original")));
    if (!original.error.empty()) {
      result.set_passed(false);
      result.add_errors(original.error);
      result.set_notes(
          "coremlcompiler could not compile the original model, so outputs could not be compared; nothing ran");
      return result;
    }
  }
  if (Cancelled(control)) return absl::CancelledError("validation cancelled");

  const v1::ValidationRequest& request = input.request;
  HarnessArgs args;
  args.compute_units = HarnessComputeUnits(request.compute_units());
  args.iterations = request.iterations() > 0 ? request.iterations() : 20;
  args.warmup = request.warmup() > 0 ? request.warmup() : 3;
  args.seed = options_.seed;

  if (on_mac) {
    args.model = compressed.path;
    args.original = original.path;
    if (request.inputs_size() > 0) {
      args.inputs = JoinPath(work, "inputs.json");
      RETURN_IF_ERROR(WriteFileAtomically(args.inputs, InputsJson(request)));
    }
    args.output = JoinPath(work, "result.json");
    return RunOnMac(input, std::move(args), work, std::move(result));
  }

  // One directory goes to the phone: the models under fixed names, so that
  // the launch arguments do not depend on the uploaded file names. Its name
  // is new for every run, so a result left by an earlier run can never be
  // mistaken for this one's.
  const std::string run_id = absl::StrCat(Sanitize(Basename(input.work_dir)), "-", Sanitize(device.id()), "-", ++runs_);
  const std::string stage = JoinPath(JoinPath(work, "stage"), run_id);
  RETURN_IF_ERROR(MakeDirectories(stage));
  RETURN_IF_ERROR(MovePath(compressed.path, JoinPath(stage, "compressed.mlmodelc")));
  args.model = "compressed.mlmodelc";
  if (!original.path.empty()) {
    RETURN_IF_ERROR(MovePath(original.path, JoinPath(stage, "original.mlmodelc")));
    args.original = "original.mlmodelc";
  }
  if (request.inputs_size() > 0) {
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(stage, "inputs.json"), InputsJson(request)));
    args.inputs = "inputs.json";
  }
  args.run_dir = absl::StrCat(kDeviceRunsDir, "/", run_id);
  args.output = "result.json";
  return RunOnIphone(device, input, std::move(args), work, stage, std::move(result), control);
}

absl::StatusOr<v1::ValidationResult> MacosBackend::RunOnMac(const ValidationInput& input, HarnessArgs args,
                                                            const std::string& work, v1::ValidationResult result) {
  const std::vector<std::string> argv = options_.commands.MacHarness(options_.harness_cli_path, args);
  absl::StatusOr<CommandOutput> out = runner_->Run(argv, HarnessTimeout(input.request));
  if (!out.ok()) return Annotate(out.status(), "the macOS harness");
  if (!PathExists(args.output)) {
    if (out->exit_code == 64) {  // usage: our command line is wrong, not the model
      return absl::InternalError(
          absl::StrCat("the macOS harness rejected its arguments: ", Verbatim(*out, "coremlz-harness")));
    }
    result.set_passed(false);
    result.add_errors(Verbatim(*out, "coremlz-harness"));
    result.set_notes(absl::StrCat("the harness exited with status ", out->exit_code, " without writing a result"));
    return result;
  }
  ASSIGN_OR_RETURN(std::string json, ReadFile(args.output, 256 << 20));
  absl::Status parsed = ParseHarnessResult(json, options_.min_psnr_db, !args.original.empty(), &result);
  if (!parsed.ok()) return Annotate(parsed, "the macOS harness wrote an unreadable result");
  return result;
}

absl::StatusOr<v1::ValidationResult> MacosBackend::RunOnIphone(const v1::DeviceInfo& device,
                                                               const ValidationInput& input, HarnessArgs args,
                                                               const std::string& work, const std::string& stage,
                                                               v1::ValidationResult result,
                                                               engine::JobControl* control) {
  const MacosCommands& c = options_.commands;
  const std::string& udid = device.id();
  const std::string& bundle = options_.harness_bundle_id;
  const std::string who = device.name().empty() ? udid : absl::StrCat(device.name(), " (", udid, ")");
  bool installed;
  {
    absl::MutexLock lock(&mu_);
    installed = installed_.count(udid) > 0;
  }
  if (!installed) {
    absl::StatusOr<CommandOutput> out =
        runner_->Run(c.InstallApp(udid, options_.harness_app_path), options_.devicectl_timeout);
    if (!out.ok()) return Annotate(out.status(), "devicectl device install app");
    if (out->exit_code != 0) {
      return absl::UnavailableError(
          absl::StrCat("installing the harness app on ", who, " failed: ", Verbatim(*out, "devicectl")));
    }
    absl::MutexLock lock(&mu_);
    installed_.insert(udid);
  }
  if (Cancelled(control)) return absl::CancelledError("validation cancelled");

  absl::StatusOr<CommandOutput> copied =
      runner_->Run(c.CopyTo(udid, bundle, stage, args.run_dir), options_.devicectl_timeout);
  if (!copied.ok()) return Annotate(copied.status(), "devicectl device copy to");
  if (copied->exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("copying the model to ", who, " failed: ", Verbatim(*copied, "devicectl")));
  }
  if (Cancelled(control)) return absl::CancelledError("validation cancelled");

  absl::StatusOr<CommandOutput> launched = runner_->Run(c.Launch(udid, bundle, args), HarnessTimeout(input.request));
  if (!launched.ok()) return Annotate(launched.status(), "devicectl device process launch");

  const std::string local = JoinPath(work, "result.json");
  absl::StatusOr<CommandOutput> fetched = runner_->Run(
      c.CopyFrom(udid, bundle, absl::StrCat(args.run_dir, "/", args.output), local), options_.devicectl_timeout);
  if (!fetched.ok()) return Annotate(fetched.status(), "devicectl device copy from");
  if (fetched->exit_code == 0 && PathExists(local)) {
    ASSIGN_OR_RETURN(std::string json, ReadFile(local, 256 << 20));
    absl::Status parsed = ParseHarnessResult(json, options_.min_psnr_db, !args.original.empty(), &result);
    if (!parsed.ok()) return Annotate(parsed, absl::StrCat("the harness on ", who, " wrote an unreadable result"));
    return result;
  }
  if (launched->exit_code != 0) {
    // devicectl could not start the app (locked phone, app gone, trust
    // revoked): the runner's problem. Reinstall next time in case the app
    // was removed.
    absl::MutexLock lock(&mu_);
    installed_.erase(udid);
    return absl::UnavailableError(
        absl::StrCat("launching the harness on ", who, " failed: ", Verbatim(*launched, "devicectl")));
  }
  // The app started and ended without a result: the system killed it (most
  // often for memory) or Core ML crashed it - a verdict on the model.
  result.set_passed(false);
  result.add_errors(
      absl::StrCat("the harness app on ", who,
                   " ended without writing a result (killed by the system, e.g. for memory, or crashed)"));
  const std::string console = Tail(absl::StrCat(launched->stdout_text, "\n", launched->stderr_text));
  if (!console.empty()) result.add_errors(console);
  result.set_notes(absl::StrCat("copying the result back said: ", Verbatim(*fetched, "devicectl")));
  return result;
}

absl::StatusOr<std::unique_ptr<DeviceBackend>> MakeMacosBackend(const RunnerConfig& config) {
  if (config.harness_app.empty() && config.harness_cli.empty()) {
    return absl::InvalidArgumentError(
        "the macos backend needs harness.app (to run on iPhones) and/or harness.cli (to run on the Mac)");
  }
  MacosBackendOptions o;
  o.harness_app_path = config.harness_app;
  o.harness_bundle_id = config.harness_bundle_id.empty() ? "com.coremlz.harness" : config.harness_bundle_id;
  o.harness_cli_path = config.harness_cli;
  o.include_mac = config.include_mac;
  // Without the app no phone can run anything: leave devicectl alone.
  o.list_iphones = !config.harness_app.empty();
  o.devices = config.devices;
  o.scratch_dir = config.work_dir;
  return std::unique_ptr<DeviceBackend>(new MacosBackend(MakeSystemCommandRunner(), std::move(o)));
}

}  // namespace coremlz::runner
