// The macOS backend without a Mac: every command goes to a FakeCommandRunner
// that answers from tests/data/runner and records what was asked. Those
// files are not captures from our own Mac (there is none): they follow the
// schemas of devicectl's JSON as parsed by Apple's coremltools and Flutter's
// tools, Core ML's own message formats, and the harness's documented result
// schema (clients/runner/harness/README.md). MakeSystemCommandRunner is
// tested for real with /bin/sh.
#include "workers/runner/macos_backend.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "workers/runner/command_runner.h"
#include "workers/runner/device_backend.h"
#include "workers/runner/macos_commands.h"

namespace coremlz::runner {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Argv = std::vector<std::string>;

std::string DataFile(const std::string& name) {
  auto text = ReadFile(testing::SourceDir() + "/tests/data/runner/" + name);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : std::string();
}

CommandOutput Ok(std::string out = "", double seconds = 0) {
  CommandOutput o;
  o.stdout_text = std::move(out);
  o.seconds = seconds;
  return o;
}

CommandOutput Failed(int code, std::string err) {
  CommandOutput o;
  o.exit_code = code;
  o.stderr_text = std::move(err);
  return o;
}

// Answers a command from the most recently added rule whose argv starts with
// the rule's prefix; runs the rule's action first (to create the files the
// real tool would). Unknown commands are NOT_FOUND, like a missing binary.
class FakeCommandRunner : public CommandRunner {
 public:
  using Action = std::function<void(const Argv&)>;
  struct Call {
    Argv argv;
    absl::Duration timeout;
  };

  void On(Argv prefix, absl::StatusOr<CommandOutput> output, Action action = nullptr) {
    rules_.push_back({std::move(prefix), std::move(output), std::move(action)});
  }

  absl::StatusOr<CommandOutput> Run(const Argv& argv, absl::Duration timeout) override {
    calls.push_back({argv, timeout});
    for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
      if (argv.size() >= it->prefix.size() && std::equal(it->prefix.begin(), it->prefix.end(), argv.begin())) {
        if (it->action && it->output.ok() && it->output->exit_code == 0) it->action(argv);
        return it->output;
      }
    }
    return absl::NotFoundError(absl::StrCat(argv[0], ": No such file or directory (not found in PATH)"));
  }

  std::vector<Argv> Argvs() const {
    std::vector<Argv> out;
    for (const Call& c : calls) out.push_back(c.argv);
    return out;
  }

  std::vector<Call> calls;

 private:
  struct Rule {
    Argv prefix;
    absl::StatusOr<CommandOutput> output;
    Action action;
  };
  std::vector<Rule> rules_;
};

// The value that follows `flag` in argv.
std::string FlagValue(const Argv& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "";
}

// What `coremlcompiler compile MODEL DIR` leaves behind: DIR/<stem>.mlmodelc.
void MakeCompiledBundle(const Argv& argv) {
  std::string stem = std::filesystem::path(std::string(absl::StripSuffix(argv[3], "/"))).stem().string();
  const std::string bundle = argv[4] + "/" + stem + ".mlmodelc";
  ASSERT_TRUE(MakeDirectories(bundle + "/weights").ok());
  ASSERT_TRUE(WriteFileAtomically(bundle + "/model.mil", "program(1.0)\n").ok());
}

FakeCommandRunner::Action WriteTo(const std::string& flag, std::string contents) {
  return [flag, contents](const Argv& argv) { ASSERT_TRUE(WriteFileAtomically(FlagValue(argv, flag), contents).ok()); };
}

class MacosBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app_ = scratch_.Join("CoremlzHarness.app");
    ASSERT_TRUE(MakeDirectories(app_).ok());
    ASSERT_TRUE(MakeDirectories(scratch_.Join("in/model.mlpackage")).ok());
    ASSERT_TRUE(MakeDirectories(scratch_.Join("in/original.mlpackage")).ok());
    ASSERT_TRUE(MakeDirectories(scratch_.Join("job-7f3a")).ok());
    options_.harness_app_path = app_;
    options_.harness_cli_path = "/usr/local/bin/coremlz-harness";
    options_.scratch_dir = scratch_.Join("tmp");
    options_.devicectl_timeout = absl::Minutes(2);
    iphone_.set_id("00008120-001A2B3C4D5E6F70");
    iphone_.set_name("Bench iPhone 14 Pro");
    iphone_.set_model("iPhone15,2");
    iphone_.set_platform("iOS");
    iphone_.set_os_version("17.5");
    mac_.set_id(kMacDeviceId);
    mac_.set_name("Build Mac");
    mac_.set_platform("macOS");
    input_.compressed_path = scratch_.Join("in/model.mlpackage");
    input_.original_path = scratch_.Join("in/original.mlpackage");
    input_.work_dir = scratch_.Join("job-7f3a");
    input_.request.set_enabled(true);
    input_.request.set_iterations(20);
    input_.request.set_compute_units(v1::CPU_AND_NE);
    input_.request.set_compare_outputs(true);
    input_.request.set_timeout_seconds(120);
  }

  MacosBackend& Backend() {
    if (!backend_) {
      auto fake = std::make_unique<FakeCommandRunner>();
      fake_ = fake.get();
      backend_ = std::make_unique<MacosBackend>(std::move(fake), options_);
      Record();
    }
    return *backend_;
  }

  // A working Mac with one iPhone's worth of recorded answers.
  void Record() {
    fake_->On({"xcrun", "coremlcompiler", "compile"}, Ok("", 1.25), MakeCompiledBundle);
    fake_->On({"xcrun", "devicectl", "list", "devices"}, Ok(),
              WriteTo("--json-output", DataFile("devicectl_list_devices.json")));
    fake_->On({"xcrun", "devicectl", "device", "install", "app"}, Ok("App installed:\n"));
    fake_->On({"xcrun", "devicectl", "device", "copy", "to"}, Ok());
    fake_->On({"xcrun", "devicectl", "device", "process", "launch"}, Ok("Launched application\n"));
    fake_->On({"xcrun", "devicectl", "device", "copy", "from"}, Ok(),
              WriteTo("--destination", DataFile("harness_result.json")));
    fake_->On({"/usr/local/bin/coremlz-harness"}, Ok(), WriteTo("--output", DataFile("harness_result.json")));
    fake_->On({"sysctl", "-n", "hw.model", "machdep.cpu.brand_string"}, Ok("Mac14,3\nApple M2 Pro\n"));
    fake_->On({"sw_vers", "-productVersion"}, Ok("14.5\n"));
    fake_->On({"scutil", "--get", "ComputerName"}, Ok("Build Mac\n"));
  }

  // The first run's staging directory (runs are numbered per backend).
  std::string Stage() const {
    return input_.work_dir + "/macos-00008120-001A2B3C4D5E6F70/stage/job-7f3a-00008120-001A2B3C4D5E6F70-1";
  }

  testing::ScratchDir scratch_;
  std::string app_;
  MacosBackendOptions options_;
  v1::DeviceInfo iphone_, mac_;
  ValidationInput input_;
  FakeCommandRunner* fake_ = nullptr;
  std::unique_ptr<MacosBackend> backend_;
};

// ---- command construction ----

TEST(MacosCommandsTest, EveryCommandLine) {
  MacosCommands c;
  EXPECT_EQ(c.Compile("/w/in/model.mlpackage", "/w/out"),
            (Argv{"xcrun", "coremlcompiler", "compile", "/w/in/model.mlpackage", "/w/out"}));
  EXPECT_EQ(c.CompilerVersion(), (Argv{"xcrun", "coremlcompiler", "version"}));
  EXPECT_EQ(c.ListDevices("/tmp/d.json"),
            (Argv{"xcrun", "devicectl", "list", "devices", "--json-output", "/tmp/d.json"}));
  EXPECT_EQ(c.InstallApp("UDID", "/opt/CoremlzHarness.app"),
            (Argv{"xcrun", "devicectl", "device", "install", "app", "--device", "UDID", "/opt/CoremlzHarness.app"}));
  EXPECT_EQ(c.CopyTo("UDID", "com.coremlz.harness", "/w/stage/run", "Documents/coremlz/run"),
            (Argv{"xcrun", "devicectl", "device", "copy", "to", "--device", "UDID", "--domain-type", "appDataContainer",
                  "--domain-identifier", "com.coremlz.harness", "--user", "mobile", "--source", "/w/stage/run",
                  "--destination", "Documents/coremlz/run"}));
  EXPECT_EQ(c.CopyFrom("UDID", "com.coremlz.harness", "Documents/coremlz/run/result.json", "/w/result.json"),
            (Argv{"xcrun", "devicectl", "device", "copy", "from", "--device", "UDID", "--domain-type",
                  "appDataContainer", "--domain-identifier", "com.coremlz.harness", "--user", "mobile", "--source",
                  "Documents/coremlz/run/result.json", "--destination", "/w/result.json"}));
  HarnessArgs a;
  a.run_dir = "Documents/coremlz/run";
  a.model = "compressed.mlmodelc";
  a.original = "original.mlmodelc";
  a.inputs = "inputs.json";
  a.output = "result.json";
  a.compute_units = "cpuAndNeuralEngine";
  a.iterations = 50;
  a.warmup = 5;
  a.seed = 7;
  // clang-format off
  EXPECT_EQ(c.Launch("UDID", "com.coremlz.harness", a),
            (Argv{"xcrun", "devicectl", "device", "process", "launch", "--device", "UDID", "--terminate-existing",
                  "--console", "--", "com.coremlz.harness", "--run-dir", "Documents/coremlz/run",
                  "--model", "compressed.mlmodelc", "--original", "original.mlmodelc", "--inputs", "inputs.json",
                  "--output", "result.json", "--compute-units", "cpuAndNeuralEngine", "--iterations", "50",
                  "--warmup", "5", "--seed", "7"}));
  // clang-format on
  HarnessArgs m;
  m.model = "/w/c/model.mlmodelc";
  m.output = "/w/result.json";
  EXPECT_EQ(c.MacHarness("/usr/local/bin/coremlz-harness", m),
            (Argv{"/usr/local/bin/coremlz-harness", "--model", "/w/c/model.mlmodelc", "--output", "/w/result.json",
                  "--compute-units", "all", "--iterations", "20", "--warmup", "3", "--seed", "42"}));
  EXPECT_EQ(c.MacHardware(), (Argv{"sysctl", "-n", "hw.model", "machdep.cpu.brand_string"}));
  EXPECT_EQ(c.MacOsVersion(), (Argv{"sw_vers", "-productVersion"}));
  EXPECT_EQ(c.MacName(), (Argv{"scutil", "--get", "ComputerName"}));

  MacosCommands custom;
  custom.xcrun = "/Applications/Xcode-16.app/Contents/Developer/usr/bin/xcrun";
  custom.device_user.clear();
  EXPECT_EQ(custom.CopyTo("U", "b", "s", "d"),
            (Argv{custom.xcrun, "devicectl", "device", "copy", "to", "--device", "U", "--domain-type",
                  "appDataContainer", "--domain-identifier", "b", "--source", "s", "--destination", "d"}));
}

TEST(MacosCommandsTest, ComputeUnitNames) {
  EXPECT_EQ(HarnessComputeUnits(v1::COMPUTE_UNITS_UNSPECIFIED), "all");
  EXPECT_EQ(HarnessComputeUnits(v1::ALL), "all");
  EXPECT_EQ(HarnessComputeUnits(v1::CPU_ONLY), "cpuOnly");
  EXPECT_EQ(HarnessComputeUnits(v1::CPU_AND_GPU), "cpuAndGPU");
  EXPECT_EQ(HarnessComputeUnits(v1::CPU_AND_NE), "cpuAndNeuralEngine");
}

// ---- devicectl list devices ----

TEST(DevicectlParseTest, RecordedListing) {
  auto devices = ParseDevicectlDevices(DataFile("devicectl_list_devices.json"), /*harness_ready=*/true);
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 5u);  // the watch is not an iOS device
  const v1::DeviceInfo& phone = (*devices)[0];
  EXPECT_EQ(phone.id(), "00008120-001A2B3C4D5E6F70");  // the UDID, not the CoreDevice identifier
  EXPECT_EQ(phone.name(), "Bench iPhone 14 Pro");
  EXPECT_EQ(phone.model(), "iPhone15,2");
  EXPECT_EQ(phone.platform(), "iOS");
  EXPECT_EQ(phone.os_version(), "17.5");
  EXPECT_EQ(phone.chip(), "A16 Bionic");
  EXPECT_EQ(phone.state(), "available");

  const v1::DeviceInfo& ipad = (*devices)[1];  // tunnel down but on the local network: usable
  EXPECT_EQ(ipad.model(), "iPad14,3");
  EXPECT_EQ(ipad.chip(), "iPad Pro (11-inch) (4th generation)");  // not in the chip table: marketing name
  EXPECT_EQ(ipad.os_version(), "17.6.1");
  EXPECT_EQ(ipad.state(), "available");

  EXPECT_EQ((*devices)[2].name(), "Old iPhone 11");
  EXPECT_EQ((*devices)[2].chip(), "A13 Bionic");
  EXPECT_EQ((*devices)[2].state(), "unavailable");  // tunnel unavailable, no transport
  EXPECT_EQ((*devices)[3].name(), "QA iPhone 15 Pro");
  EXPECT_EQ((*devices)[3].state(), "unavailable");                        // Developer Mode disabled
  EXPECT_EQ((*devices)[4].id(), "5B4C4E0B-1A2B-4C3D-8E9F-00000000A005");  // no UDID yet: identifier
  EXPECT_EQ((*devices)[4].state(), "unavailable");                        // unpaired

  auto no_app = ParseDevicectlDevices(DataFile("devicectl_list_devices.json"), /*harness_ready=*/false);
  ASSERT_TRUE(no_app.ok());
  for (const auto& d : *no_app) EXPECT_EQ(d.state(), "unavailable") << d.name();
}

TEST(DevicectlParseTest, Malformed) {
  EXPECT_EQ(ParseDevicectlDevices("not json", true).status().code(), absl::StatusCode::kInvalidArgument);
  auto failed = ParseDevicectlDevices(R"({"info": {"outcome": "failed"}})", true);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(failed.status().message(), HasSubstr("failed"));
  auto empty = ParseDevicectlDevices(R"({"info": {"outcome": "success"}, "result": {"devices": []}})", true);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(DevicectlParseTest, ChipTable) {
  EXPECT_EQ(ChipForProductType("iPhone15,2"), "A16 Bionic");
  EXPECT_EQ(ChipForProductType("iPhone16,1"), "A17 Pro");
  EXPECT_EQ(ChipForProductType("iPhone17,3"), "A18");
  EXPECT_EQ(ChipForProductType("iPad14,3"), "");
}

TEST_F(MacosBackendTest, ListDevicesAddsTheMacAndCleansUp) {
  auto devices = Backend().ListDevices();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 6u);
  const v1::DeviceInfo& mac = devices->back();
  EXPECT_EQ(mac.id(), "mac");
  EXPECT_EQ(mac.name(), "Build Mac");
  EXPECT_EQ(mac.model(), "Mac14,3");
  EXPECT_EQ(mac.chip(), "Apple M2 Pro");
  EXPECT_EQ(mac.platform(), "macOS");
  EXPECT_EQ(mac.os_version(), "14.5");
  EXPECT_EQ(mac.state(), "available");
  // devicectl wrote its JSON into the scratch directory, which is gone again.
  const Argv& list = fake_->calls[0].argv;
  EXPECT_EQ(Argv(list.begin(), list.begin() + 5), (Argv{"xcrun", "devicectl", "list", "devices", "--json-output"}));
  EXPECT_TRUE(absl::StartsWith(list[5], options_.scratch_dir + "/devicectl-")) << list[5];
  EXPECT_FALSE(PathExists(std::filesystem::path(list[5]).parent_path().string()));
  EXPECT_EQ(fake_->calls[0].timeout, options_.list_timeout);

  // The Mac's facts are asked once.
  const size_t calls = fake_->calls.size();
  ASSERT_TRUE(Backend().ListDevices().ok());
  EXPECT_EQ(fake_->calls.size(), calls + 1);
}

TEST_F(MacosBackendTest, ListDevicesAllowlist) {
  options_.devices = {"00008103-000C1D2E3F405162"};
  options_.include_mac = false;
  auto devices = Backend().ListDevices();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].name(), "Studio iPad");
}

TEST_F(MacosBackendTest, ListDevicesMacOnly) {
  options_.list_iphones = false;
  options_.harness_cli_path.clear();
  auto devices = Backend().ListDevices();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].state(), "unavailable");  // no CLI harness to run there
  for (const Argv& argv : fake_->Argvs()) EXPECT_NE(argv[0], "xcrun");
}

TEST_F(MacosBackendTest, ListDevicesDevicectlFailure) {
  Backend();
  fake_->On({"xcrun", "devicectl", "list", "devices"},
            Failed(1, "ERROR: CoreDeviceService was unable to locate a device"));
  auto devices = Backend().ListDevices();
  EXPECT_EQ(devices.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(devices.status().message(), HasSubstr("unable to locate"));

  fake_->On({"xcrun", "devicectl", "list", "devices"}, absl::NotFoundError("xcrun: No such file or directory"));
  EXPECT_EQ(Backend().ListDevices().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(MacosBackendTest, SelectorFiltering) {
  auto devices = Backend().ListDevices();
  ASSERT_TRUE(devices.ok()) << devices.status();
  auto matching = [&](const v1::DeviceSelector& s) {
    std::vector<std::string> names;
    for (const auto& d : *devices) {
      if (d.state() == "available" && MatchesSelector(d, s)) names.push_back(d.name());
    }
    return names;
  };
  v1::DeviceSelector by_model;
  by_model.set_model("iPhone15,2");
  EXPECT_THAT(matching(by_model), ElementsAre("Bench iPhone 14 Pro"));
  v1::DeviceSelector by_name;
  by_name.set_model("ipad");
  EXPECT_THAT(matching(by_name), ElementsAre("Studio iPad"));
  v1::DeviceSelector ios_17_6;
  ios_17_6.set_platform("iOS");
  ios_17_6.set_min_os("17.6");
  EXPECT_THAT(matching(ios_17_6), ElementsAre("Studio iPad"));
  v1::DeviceSelector mac;
  mac.set_platform("macOS");
  mac.set_min_os("14.4");
  EXPECT_THAT(matching(mac), ElementsAre("Build Mac"));
  v1::DeviceSelector any;
  EXPECT_THAT(matching(any), ElementsAre("Bench iPhone 14 Pro", "Studio iPad", "Build Mac"));
  v1::DeviceSelector unavailable_model;  // present but not usable
  unavailable_model.set_model("iPhone16,1");
  EXPECT_TRUE(matching(unavailable_model).empty());
}

// ---- runs ----

TEST_F(MacosBackendTest, IphoneRunCommandsAndResult) {
  auto result = Backend().Run(iphone_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string work = input_.work_dir + "/macos-00008120-001A2B3C4D5E6F70";
  const std::string run_dir = "Documents/coremlz/job-7f3a-00008120-001A2B3C4D5E6F70-1";
  const std::string udid = iphone_.id();
  // clang-format off
  EXPECT_THAT(fake_->Argvs(),
              ElementsAre(Argv{"xcrun", "coremlcompiler", "compile", input_.compressed_path, work + "/compiled"},
                          Argv{"xcrun", "coremlcompiler", "compile", input_.original_path, work + "/compiled-original"},
                          Argv{"xcrun", "devicectl", "device", "install", "app", "--device", udid, app_},
                          Argv{"xcrun", "devicectl", "device", "copy", "to", "--device", udid, "--domain-type",
                               "appDataContainer", "--domain-identifier", "com.coremlz.harness", "--user", "mobile",
                               "--source", Stage(), "--destination", run_dir},
                          Argv{"xcrun", "devicectl", "device", "process", "launch", "--device", udid,
                               "--terminate-existing", "--console", "--", "com.coremlz.harness",
                               "--run-dir", run_dir, "--model", "compressed.mlmodelc",
                               "--original", "original.mlmodelc", "--output", "result.json",
                               "--compute-units", "cpuAndNeuralEngine", "--iterations", "20", "--warmup", "3",
                               "--seed", "42"},
                          Argv{"xcrun", "devicectl", "device", "copy", "from", "--device", udid, "--domain-type",
                               "appDataContainer", "--domain-identifier", "com.coremlz.harness", "--user", "mobile",
                               "--source", run_dir + "/result.json", "--destination", work + "/result.json"}));
  // clang-format on
  // Timeouts: compile, devicectl steps, and the request's budget for the run.
  EXPECT_EQ(fake_->calls[0].timeout, options_.compile_timeout);
  EXPECT_EQ(fake_->calls[3].timeout, absl::Minutes(2));
  EXPECT_EQ(fake_->calls[4].timeout, absl::Seconds(120) + options_.harness_slack);
  // What went to the phone: both compiled models under fixed names.
  EXPECT_TRUE(IsDirectory(Stage() + "/compressed.mlmodelc"));
  EXPECT_TRUE(PathExists(Stage() + "/original.mlmodelc/model.mil"));
  EXPECT_FALSE(PathExists(Stage() + "/inputs.json"));

  const v1::ValidationResult& r = *result;
  EXPECT_EQ(r.backend(), "macos");
  EXPECT_EQ(r.device().id(), udid);
  EXPECT_TRUE(r.ran_coreml());
  EXPECT_TRUE(r.passed()) << absl::StrJoin(r.errors(), "\n");
  EXPECT_DOUBLE_EQ(r.compile_seconds(), 1.25);
  EXPECT_DOUBLE_EQ(r.load_seconds(), 0.412);
  EXPECT_EQ(r.latency().iterations(), 20);
  EXPECT_DOUBLE_EQ(r.latency().median_ms(), 3.214);
  EXPECT_DOUBLE_EQ(r.latency().p90_ms(), 3.482);
  EXPECT_DOUBLE_EQ(r.latency().min_ms(), 3.051);
  EXPECT_DOUBLE_EQ(r.latency().max_ms(), 4.902);
  EXPECT_EQ(r.peak_memory_bytes(), 48234496u);
  ASSERT_EQ(r.placement_size(), 5);
  EXPECT_EQ(r.placement(0).op(), "conv_0_cast_fp16");
  EXPECT_EQ(r.placement(0).compute_unit(), "NE");
  EXPECT_DOUBLE_EQ(r.placement(0).estimated_cost(), 0.3125);
  EXPECT_EQ(r.ops_per_compute_unit().at("NE"), 3);
  EXPECT_EQ(r.ops_per_compute_unit().at("GPU"), 1);
  EXPECT_EQ(r.ops_per_compute_unit().at("CPU"), 1);
  ASSERT_EQ(r.fidelity_size(), 2);
  EXPECT_EQ(r.fidelity(0).name(), "logits");
  EXPECT_DOUBLE_EQ(r.fidelity(0).psnr_db(), 41.73);
  EXPECT_DOUBLE_EQ(r.fidelity(0).snr_db(), 28.31);
  EXPECT_DOUBLE_EQ(r.fidelity(0).max_abs_error(), 0.01171875);
  EXPECT_TRUE(std::isinf(r.fidelity(1).psnr_db()));  // exact: "inf" in the JSON
  EXPECT_EQ(r.errors_size(), 0);
  EXPECT_THAT(r.notes(), HasSubstr("harness 0.1.0"));
  EXPECT_THAT(r.notes(), HasSubstr("random float16"));

  // A second run on the same phone does not reinstall the app, and gets a
  // directory of its own on the phone.
  fake_->calls.clear();
  ASSERT_TRUE(Backend().Run(iphone_, input_, nullptr).ok());
  for (const Argv& argv : fake_->Argvs()) EXPECT_NE(argv[3], "install");
  ASSERT_EQ(fake_->calls.size(), 5u);
  EXPECT_EQ(FlagValue(fake_->calls[3].argv, "--run-dir"), "Documents/coremlz/job-7f3a-00008120-001A2B3C4D5E6F70-2");
}

TEST_F(MacosBackendTest, CallerInputsGoWithTheModel) {
  v1::NamedTensor* t = input_.request.add_inputs();
  t->set_name("image");
  t->add_shape(1);
  t->add_shape(2);
  t->add_values(0.5f);
  t->add_values(-1.0f);
  input_.original_path.clear();
  ASSERT_TRUE(Backend().Run(iphone_, input_, nullptr).ok());
  auto json = ReadFile(Stage() + "/inputs.json");
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(*json, R"({"inputs":[{"name":"image","shape":[1,2],"values":[0.5,-1]}]})");
  const Argv& launch = fake_->calls[3].argv;  // compile, install, copy, launch
  EXPECT_EQ(launch[4], "launch");
  EXPECT_EQ(FlagValue(launch, "--inputs"), "inputs.json");
  EXPECT_EQ(FlagValue(launch, "--original"), "");
}

TEST_F(MacosBackendTest, MacRun) {
  auto result = Backend().Run(mac_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string work = input_.work_dir + "/macos-mac";
  ASSERT_EQ(fake_->calls.size(), 3u);
  EXPECT_EQ(fake_->calls[2].argv,
            (Argv{"/usr/local/bin/coremlz-harness", "--model", work + "/compiled/model.mlmodelc", "--original",
                  work + "/compiled-original/original.mlmodelc", "--output", work + "/result.json", "--compute-units",
                  "cpuAndNeuralEngine", "--iterations", "20", "--warmup", "3", "--seed", "42"}));
  EXPECT_TRUE(result->passed());
  EXPECT_TRUE(result->ran_coreml());
  EXPECT_EQ(result->latency().iterations(), 20);
  EXPECT_EQ(result->device().id(), "mac");
}

// ---- failures that are verdicts on the model ----

TEST_F(MacosBackendTest, CompileErrorIsAFailedResultWithTheMessageVerbatim) {
  Backend();
  const std::string message = DataFile("coremlcompiler_error.txt");
  fake_->On({"xcrun", "coremlcompiler", "compile", input_.compressed_path}, Failed(1, message));
  auto result = Backend().Run(iphone_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->passed());
  EXPECT_FALSE(result->ran_coreml());
  ASSERT_EQ(result->errors_size(), 1);
  EXPECT_EQ(result->errors(0), absl::StripTrailingAsciiWhitespace(message));
  EXPECT_THAT(result->notes(), HasSubstr("could not compile the compressed model"));
  EXPECT_EQ(fake_->calls.size(), 1u);  // nothing else ran
}

TEST_F(MacosBackendTest, OriginalCompileError) {
  Backend();
  fake_->On({"xcrun", "coremlcompiler", "compile", input_.original_path},
            Failed(1, "coremlc: error: Model does not exist"));
  auto result = Backend().Run(mac_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->passed());
  EXPECT_THAT(result->errors(), ElementsAre("coremlc: error: Model does not exist"));
  EXPECT_THAT(result->notes(), HasSubstr("original"));
}

TEST_F(MacosBackendTest, CompilerSucceedsWithoutOutput) {
  Backend();
  fake_->On({"xcrun", "coremlcompiler", "compile"}, Ok());  // no bundle written
  auto result = Backend().Run(mac_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->passed());
  EXPECT_THAT(result->errors(0), HasSubstr("wrote no"));
}

TEST_F(MacosBackendTest, LoadFailureFromTheHarness) {
  Backend();
  fake_->On({"xcrun", "devicectl", "device", "copy", "from"}, Ok(),
            WriteTo("--destination", DataFile("harness_result_failed.json")));
  auto result = Backend().Run(iphone_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->passed());
  EXPECT_FALSE(result->ran_coreml());
  ASSERT_EQ(result->errors_size(), 1);
  EXPECT_TRUE(
      absl::StartsWith(result->errors(0), "Failed to build the model execution plan using a model architecture file"));
  EXPECT_THAT(result->errors(0), HasSubstr("with error code: -5."));
  EXPECT_THAT(result->notes(), HasSubstr("Core ML failed at: load"));
  EXPECT_THAT(result->notes(), HasSubstr("compute plan skipped: the model did not load"));
  EXPECT_DOUBLE_EQ(result->load_seconds(), 0.087);
  EXPECT_EQ(result->placement_size(), 0);
}

TEST_F(MacosBackendTest, LowFidelityFails) {
  options_.min_psnr_db = 45;
  auto result = Backend().Run(iphone_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->passed());
  EXPECT_TRUE(result->ran_coreml());
  ASSERT_EQ(result->errors_size(), 1);
  EXPECT_THAT(result->errors(0), HasSubstr("\"logits\": PSNR 41.73 dB"));
  EXPECT_THAT(result->errors(0), HasSubstr("45.0 dB threshold"));
}

TEST_F(MacosBackendTest, AppDiesWithoutAResult) {
  Backend();
  fake_->On({"xcrun", "devicectl", "device", "process", "launch"},
            Ok("Launched application with com.coremlz.harness bundle identifier.\nWaiting for the application to "
               "terminate...\n"));
  fake_->On({"xcrun", "devicectl", "device", "copy", "from"},
            Failed(1, "ERROR: The file \"result.json\" couldn't be opened because there is no such file."));
  auto result = Backend().Run(iphone_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->passed());
  EXPECT_FALSE(result->ran_coreml());
  ASSERT_EQ(result->errors_size(), 2);
  EXPECT_THAT(result->errors(0), HasSubstr("ended without writing a result"));
  EXPECT_THAT(result->errors(1), HasSubstr("Waiting for the application to terminate"));
  EXPECT_THAT(result->notes(), HasSubstr("no such file"));
}

TEST_F(MacosBackendTest, MacHarnessCrashWithoutResult) {
  Backend();
  fake_->On({"/usr/local/bin/coremlz-harness"}, Failed(134, "CoreML: Fatal error: unexpected tensor rank"));
  auto result = Backend().Run(mac_, input_, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->passed());
  EXPECT_THAT(result->errors(), ElementsAre("CoreML: Fatal error: unexpected tensor rank"));
  EXPECT_THAT(result->notes(), HasSubstr("status 134"));
}

// ---- failures of the runner machinery: statuses ----

TEST_F(MacosBackendTest, HarnessCliMissingIsAStatus) {
  options_.harness_cli_path = "/opt/coremlz/bin/coremlz-harness";  // nothing recorded for it: NOT_FOUND
  auto result = Backend().Run(mac_, input_, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(), HasSubstr("macOS harness"));
}

TEST_F(MacosBackendTest, HarnessNotConfiguredIsAStatus) {
  options_.harness_cli_path.clear();
  options_.harness_app_path = scratch_.Join("missing/CoremlzHarness.app");
  EXPECT_EQ(Backend().Run(mac_, input_, nullptr).status().code(), absl::StatusCode::kFailedPrecondition);
  auto phone = Backend().Run(iphone_, input_, nullptr);
  EXPECT_EQ(phone.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(phone.status().message(), HasSubstr("does not exist"));
  EXPECT_TRUE(fake_->calls.empty());
}

TEST_F(MacosBackendTest, UsageErrorFromTheHarnessIsAStatus) {
  Backend();
  fake_->On({"/usr/local/bin/coremlz-harness"}, Failed(64, "coremlz-harness: unknown flag --sed"));
  EXPECT_EQ(Backend().Run(mac_, input_, nullptr).status().code(), absl::StatusCode::kInternal);
}

TEST_F(MacosBackendTest, TimeoutIsAStatus) {
  Backend();
  fake_->On({"xcrun", "devicectl", "device", "process", "launch"},
            absl::DeadlineExceededError(
                "`xcrun devicectl device process launch ...` did not finish within 3m and was killed"));
  auto result = Backend().Run(iphone_, input_, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status().message(), HasSubstr("devicectl device process launch"));

  fake_->On({"xcrun", "coremlcompiler", "compile"}, absl::DeadlineExceededError("killed"));
  EXPECT_EQ(Backend().Run(mac_, input_, nullptr).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(MacosBackendTest, InstallFailureIsAStatus) {
  Backend();
  fake_->On({"xcrun", "devicectl", "device", "install", "app"},
            Failed(1, "ERROR: Failed to install the app on the device. (com.apple.dt.CoreDeviceError error 3002)"));
  auto result = Backend().Run(iphone_, input_, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(result.status().message(), HasSubstr("error 3002"));
  EXPECT_THAT(result.status().message(), HasSubstr("Bench iPhone 14 Pro"));
}

TEST_F(MacosBackendTest, CopyFailureIsAStatus) {
  Backend();
  fake_->On({"xcrun", "devicectl", "device", "copy", "to"}, Failed(1, "ERROR: The device is locked."));
  EXPECT_EQ(Backend().Run(iphone_, input_, nullptr).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(MacosBackendTest, LaunchFailureIsAStatusAndReinstallsNextTime) {
  Backend();
  fake_->On({"xcrun", "devicectl", "device", "process", "launch"},
            Failed(1,
                   "ERROR: The application failed to launch. (com.apple.dt.CoreDeviceError error 10002.) "
                   "BSErrorCodeDescription = RequestDenied"));
  fake_->On({"xcrun", "devicectl", "device", "copy", "from"}, Failed(1, "ERROR: no such file"));
  auto result = Backend().Run(iphone_, input_, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(result.status().message(), HasSubstr("RequestDenied"));

  fake_->calls.clear();
  (void)Backend().Run(iphone_, input_, nullptr);
  bool installed = false;
  for (const Argv& argv : fake_->Argvs()) installed |= argv.size() > 4 && argv[3] == "install";
  EXPECT_TRUE(installed);
}

TEST_F(MacosBackendTest, NotAnIosDevice) {
  v1::DeviceInfo watch = iphone_;
  watch.set_platform("watchOS");
  EXPECT_EQ(Backend().Run(watch, input_, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MacosBackendTest, Cancelled) {
  engine::JobControl control;
  control.Cancel();
  EXPECT_EQ(Backend().Run(iphone_, input_, &control).status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(fake_->calls.empty());
}

// ---- the harness result on its own ----

TEST(HarnessResultTest, RejectsOtherJson) {
  v1::ValidationResult r;
  EXPECT_EQ(ParseHarnessResult(R"({"schema": "something/2"})", 30, false, &r).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHarnessResult("[1, 2]", 30, false, &r).code(), absl::StatusCode::kInvalidArgument);
}

TEST(HarnessResultTest, NanOutputFails) {
  v1::ValidationResult r;
  ASSERT_TRUE(ParseHarnessResult(R"({"schema": "coremlz.harness.result/1",
      "latency_ms": {"iterations": 5, "median": 1, "p90": 1, "min": 1, "max": 1},
      "fidelity": [{"name": "y", "psnr_db": "nan", "snr_db": "nan", "max_abs_error": "nan"}],
      "errors": ["plain string error"]})",
                                 30, true, &r)
                  .ok());
  EXPECT_FALSE(r.passed());
  EXPECT_TRUE(r.ran_coreml());
  ASSERT_EQ(r.errors_size(), 2);
  EXPECT_EQ(r.errors(0), "plain string error");
  EXPECT_THAT(r.errors(1), HasSubstr("\"y\""));
}

TEST(HarnessResultTest, NothingComparedIsANote) {
  v1::ValidationResult r;
  ASSERT_TRUE(ParseHarnessResult(R"({"schema": "coremlz.harness.result/1",
      "latency_ms": {"iterations": 5, "median": 1, "p90": 1, "min": 1, "max": 1}, "fidelity": [], "errors": []})",
                                 30, true, &r)
                  .ok());
  EXPECT_TRUE(r.passed());
  EXPECT_THAT(r.notes(), HasSubstr("none could be"));
}

// ---- the real command runner ----

TEST(SystemCommandRunnerTest, CapturesBothStreamsAndTheExitCode) {
  auto runner = MakeSystemCommandRunner();
  auto out = runner->Run({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(10));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_text, "out\n");
  EXPECT_EQ(out->stderr_text, "err\n");
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_GE(out->seconds, 0);
}

TEST(SystemCommandRunnerTest, PathLookupAndArguments) {
  auto out = MakeSystemCommandRunner()->Run({"printf", "%s|%s", "a b", "c"}, absl::Seconds(10));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_text, "a b|c");
  EXPECT_EQ(out->exit_code, 0);
}

TEST(SystemCommandRunnerTest, LargeOutputOnBothStreams) {
  // Far beyond a pipe's buffer on both at once: needs concurrent draining.
  auto out = MakeSystemCommandRunner()->Run(
      {"/bin/sh", "-c",
       "i=0; while [ $i -lt 20000 ]; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; echo "
       "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy >&2; i=$((i+1)); done"},
      absl::Seconds(60));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_text.size(), 20000u * 51);
  EXPECT_EQ(out->stderr_text.size(), 20000u * 51);
}

TEST(SystemCommandRunnerTest, NotFound) {
  auto out = MakeSystemCommandRunner()->Run({"coremlz-no-such-tool-xyz"}, absl::Seconds(10));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(out.status().message(), HasSubstr("coremlz-no-such-tool-xyz"));
  EXPECT_EQ(MakeSystemCommandRunner()->Run({}, absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SystemCommandRunnerTest, TimeoutKillsTheWholeGroup) {
  testing::ScratchDir dir;
  const std::string marker = dir.Join("survivor");
  const auto start = absl::Now();
  // The grandchild would write the marker after 2 s if it outlived the kill.
  auto out = MakeSystemCommandRunner()->Run(
      {"/bin/sh", "-c", "echo started >&2; (sleep 2; touch " + marker + ") & sleep 30"}, absl::Milliseconds(300));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(out.status().message(), HasSubstr("started"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  absl::SleepFor(absl::Milliseconds(2500));
  EXPECT_FALSE(PathExists(marker));
}

TEST(SystemCommandRunnerTest, ChildThatClosesItsStreamsStillGetsWaitedFor) {
  auto out = MakeSystemCommandRunner()->Run({"/bin/sh", "-c", "exec >&- 2>&-; sleep 0.3; exit 5"}, absl::Seconds(10));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code, 5);
  EXPECT_GE(out->seconds, 0.25);
}

TEST(SystemCommandRunnerTest, KilledBySignal) {
  auto out = MakeSystemCommandRunner()->Run({"/bin/sh", "-c", "kill -9 $$"}, absl::Seconds(10));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code, 128 + 9);
}

}  // namespace
}  // namespace coremlz::runner
