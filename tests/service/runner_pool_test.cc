// On-device validation through real coremlz-runner processes (host
// backend) on loopback: results arrive with the artifact, selectors pick
// runners, a runner killed mid-job is replaced, busy runners and bad
// responses are handled, cancellation reaches the runner.
#include <signal.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "coremlz/v1/runner.grpc.pb.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "gtest/gtest.h"
#include "service/runner_pool.h"
#include "tests/testing/process.h"
#include "tests/testing/server_fixture.h"
#include "workers/runner/host_backend.h"

namespace coremlz::testing {
namespace {

using v1::CompressResponse;

std::string Golden16() { return GoldenDir() + "/ios16_original.mlpackage"; }
const char kPalettize4[] = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, weight_threshold: 512}\n";

std::unique_ptr<Daemon> StartRunner(std::vector<std::string> extra) {
  std::vector<std::string> argv = {BinaryPath("workers/coremlz-runner"), "--address", "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto d = std::make_unique<Daemon>(argv, "on port ");
  EXPECT_TRUE(d->ok()) << d->log();
  return d;
}

std::string Addr(const Daemon& d) { return absl::StrCat("127.0.0.1:", d.port()); }

std::shared_ptr<service::RunnerPool> Pool(std::vector<std::string> targets) {
  service::RunnerPoolOptions o;
  o.targets = std::move(targets);
  o.probe_interval = absl::Milliseconds(300);
  auto pool = service::RunnerPool::Create(std::move(o), nullptr);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::shared_ptr<service::RunnerPool>(std::move(*pool));
}

std::vector<v1::CompressRequest> UploadWithValidation(const std::string& device, bool compare = true) {
  std::string root;
  std::vector<v1::FileInfo> files;
  std::vector<v1::CompressRequest> msgs = {HeaderFor(Golden16(), kPalettize4, &root, &files)};
  auto* v = msgs[0].mutable_header()->mutable_validation();
  v->set_enabled(true);
  v->mutable_device()->set_model(device);
  v->set_compare_outputs(compare);
  for (auto& c : ChunksFor(root, files)) msgs.push_back(std::move(c));
  return msgs;
}

const v1::ValidationResult* ValidationOf(const CompressOutcome& o) {
  for (const auto& r : o.responses) {
    if (r.has_validation()) return &r.validation();
  }
  return nullptr;
}

int FreeSlots(const std::string& address) {
  auto stub = v1::DeviceRunner::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::RunnerDescription d;
  if (!stub->Describe(&ctx, v1::DescribeRequest(), &d).ok()) return -1;
  return d.free_slots();
}

TEST(RunnerPoolTest, ValidationResultsArriveWithTheArtifact) {
  auto r1 = StartRunner({});
  auto r2 = StartRunner({});
  TestServer server({}, nullptr, Pool({Addr(*r1), Addr(*r2)}));
  auto outcome = RunCompress(server.Stub().get(), UploadWithValidation("any"));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_GT(outcome.Count(CompressResponse::kArtifactChunk), 0);
  EXPECT_EQ(outcome.Count(CompressResponse::kSummary), 1);
  const v1::ValidationResult* v = ValidationOf(outcome);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->backend(), "host");
  EXPECT_FALSE(v->ran_coreml()) << "the host backend must never claim a Core ML run";
  EXPECT_EQ(v->latency().iterations(), 0);
  EXPECT_EQ(v->peak_memory_bytes(), 0u);
  EXPECT_TRUE(v->passed()) << v->DebugString();
  EXPECT_EQ(v->weights_checked(), 2);
  EXPECT_NE(v->notes().find("no Core ML prediction ran"), std::string::npos);
  EXPECT_NE(v->notes().find("2 report claims checked"), std::string::npos) << v->notes();
  EXPECT_TRUE(v->runner() == Addr(*r1) || v->runner() == Addr(*r2)) << v->runner();
  // Output fidelity comes from the reference CPU executor, and says so.
  ASSERT_FALSE(v->fidelity().empty()) << v->notes();
  for (const auto& f : v->fidelity()) {
    EXPECT_NE(f.computed_by().find("reference CPU executor"), std::string::npos) << f.DebugString();
    EXPECT_NE(f.computed_by().find("not Core ML"), std::string::npos) << f.DebugString();
    EXPECT_GT(f.psnr_db(), 10) << f.DebugString();
  }
  // Results come after the summary, before the status.
  EXPECT_TRUE(outcome.responses.back().has_validation());
}

TEST(RunnerPoolTest, ARunnerWithoutAMatchingDeviceIsSkipped) {
  auto host = StartRunner({});
  auto phone = StartRunner({"--device-model", "iPhone15,2", "--device-name", "Test iPhone"});
  TestServer server({}, nullptr, Pool({Addr(*host), Addr(*phone)}));
  auto outcome = RunCompress(server.Stub().get(), UploadWithValidation("iPhone15,2"));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  const v1::ValidationResult* v = ValidationOf(outcome);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->runner(), Addr(*phone));
  EXPECT_EQ(v->device().model(), "iPhone15,2");
  bool skipped = false;
  for (const auto& a : v->attempts()) skipped |= absl::StrContains(a, Addr(*host)) && absl::StrContains(a, "no device matches");
  EXPECT_TRUE(skipped) << v->DebugString();
  // A selector no runner can serve: UNAVAILABLE, saying what was tried.
  auto none = RunCompress(server.Stub().get(), UploadWithValidation("iPad99,9"));
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(none.status.error_message().find("no device matches"), std::string::npos) << none.status.error_message();
}

TEST(RunnerPoolTest, RunnerKilledMidJobIsReplaced) {
  auto r1 = StartRunner({"--host-delay-ms", "2500"});
  auto r2 = StartRunner({"--host-delay-ms", "2500"});
  TestServer server({}, nullptr, Pool({Addr(*r1), Addr(*r2)}));
  std::atomic<bool> done{false};
  CompressOutcome outcome;
  std::thread call([&] {
    outcome = RunCompress(server.Stub().get(), UploadWithValidation("any"));
    done = true;
  });
  // Find the runner that took the job and kill it.
  Daemon* busy = nullptr;
  for (int i = 0; i < 300 && busy == nullptr; ++i) {
    if (FreeSlots(Addr(*r1)) == 0) busy = r1.get();
    else if (FreeSlots(Addr(*r2)) == 0) busy = r2.get();
    else absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_NE(busy, nullptr);
  const std::string killed = Addr(*busy);
  busy->Stop(SIGKILL);
  call.join();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  const v1::ValidationResult* v = ValidationOf(outcome);
  ASSERT_NE(v, nullptr);
  EXPECT_NE(v->runner(), killed);
  EXPECT_TRUE(v->passed());
  bool recorded = false;
  for (const auto& a : v->attempts()) recorded |= absl::StrContains(a, killed);
  EXPECT_TRUE(recorded) << v->DebugString();
}

TEST(RunnerPoolTest, AllRunnersBusyIsAClearStatus) {
  auto r = StartRunner({"--host-delay-ms", "3000"});
  TestServer server({}, nullptr, Pool({Addr(*r)}));
  CompressOutcome first;
  std::thread call([&] { first = RunCompress(server.Stub().get(), UploadWithValidation("any")); });
  for (int i = 0; i < 300 && FreeSlots(Addr(*r)) != 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  auto second = RunCompress(server.Stub().get(), UploadWithValidation("any"));
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(second.status.error_message().find("busy"), std::string::npos) << second.status.error_message();
  call.join();
  EXPECT_TRUE(first.status.ok()) << first.status.error_message();
}

TEST(RunnerPoolTest, CancellationReachesTheRunner) {
  auto r = StartRunner({"--host-delay-ms", "20000"});
  TestServer server({}, nullptr, Pool({Addr(*r)}));
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  auto stream = stub->Compress(&ctx);
  std::thread writer([&] {
    for (const auto& m : UploadWithValidation("any")) {
      if (!stream->Write(m)) break;
    }
    stream->WritesDone();
  });
  for (int i = 0; i < 500 && FreeSlots(Addr(*r)) != 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(FreeSlots(Addr(*r)), 0);
  ctx.TryCancel();
  writer.join();
  CompressResponse resp;
  while (stream->Read(&resp)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The runner's device frees up long before its 20 s job would end.
  int free = 0;
  for (int i = 0; i < 150 && (free = FreeSlots(Addr(*r))) != 1; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(free, 1);
}

TEST(RunnerPoolTest, RunnerUpTracksProbes) {
  auto r1 = StartRunner({});
  auto r2 = StartRunner({});
  auto pool = Pool({Addr(*r1), Addr(*r2)});
  TestServer server({}, nullptr, pool, /*metrics=*/true);
  std::string scrape = server.ScrapeMetrics();
  EXPECT_EQ(MetricValue(scrape, "coremlz_runner_up{runner=\"" + Addr(*r1) + "\"}"), 1) << scrape;
  const std::string gone = Addr(*r2);
  r2->Stop(SIGKILL);
  pool->ProbeAll();
  scrape = server.ScrapeMetrics();
  EXPECT_EQ(MetricValue(scrape, "coremlz_runner_up{runner=\"" + gone + "\"}"), 0) << scrape;
  EXPECT_EQ(MetricValue(scrape, "coremlz_runner_up{runner=\"" + Addr(*r1) + "\"}"), 1);
  // ListRunners shows the same.
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  v1::ListRunnersResponse list;
  ASSERT_TRUE(stub->ListRunners(&ctx, v1::ListRunnersRequest(), &list).ok());
  ASSERT_EQ(list.runners_size(), 2);
  for (const auto& r : list.runners()) {
    EXPECT_EQ(r.up(), r.address() != gone) << r.address();
    if (r.up()) {
      EXPECT_EQ(r.devices_size(), 1);
    }
  }
  auto ok = RunCompress(server.Stub().get(), UploadWithValidation("any"));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  scrape = server.ScrapeMetrics();
  EXPECT_EQ(MetricValue(scrape, "coremlz_validation_jobs_total{device=\"any\",outcome=\"passed\"}"), 1) << scrape;
}

// The pool is shared: a caller may hold it after the server is gone. Its
// probes must then stop reporting to the server's metrics (a use after free,
// found as a rare segfault in CI; a sanitizer build of this test shows it
// every time without the fix).
TEST(RunnerPoolTest, PoolOutlivesTheServer) {
  auto r1 = StartRunner({});
  auto pool = Pool({Addr(*r1)});
  {
    TestServer server({}, nullptr, pool, /*metrics=*/true);
    EXPECT_EQ(MetricValue(server.ScrapeMetrics(), "coremlz_runner_up{runner=\"" + Addr(*r1) + "\"}"), 1);
  }
  // Probes every 300 ms, with the runner up and then gone.
  absl::SleepFor(absl::Milliseconds(700));
  r1->Stop(SIGKILL);
  pool->ProbeAll();
  absl::SleepFor(absl::Milliseconds(700));
  EXPECT_FALSE(pool->Runners().empty());
}

// A runner that answers Describe correctly but sends a broken result.
class BadRunner final : public v1::DeviceRunner::Service {
 public:
  explicit BadRunner(bool error) : error_(error) {}
  grpc::Status Describe(grpc::ServerContext*, const v1::DescribeRequest*, v1::RunnerDescription* d) override {
    d->set_runner_id("bad");
    d->set_backend("host");
    // Two idle devices: more free capacity than the good runner, so the
    // pool tries this one first.
    for (const char* id : {"x", "y"}) {
      auto* dev = d->add_devices();
      dev->set_id(id);
      dev->set_model("linux-host");
      dev->set_state("available");
    }
    d->set_free_slots(2);
    return grpc::Status::OK;
  }
  grpc::Status Validate(grpc::ServerContext*, grpc::ServerReaderWriter<v1::ValidateResponse, v1::ValidateRequest>* stream) override {
    v1::ValidateRequest r;
    while (stream->Read(&r)) {
    }
    ++calls;
    if (error_) return {grpc::StatusCode::INTERNAL, "harness crashed"};
    v1::ValidateResponse resp;
    resp.mutable_result()->set_passed(true);  // no device, no backend
    stream->Write(resp);
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};

 private:
  bool error_;
};

TEST(RunnerPoolTest, BadRunnerResponsesAreHandled) {
  for (bool error : {false, true}) {
    BadRunner bad(error);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&bad);
    auto fake = builder.BuildAndStart();
    const std::string bad_addr = absl::StrCat("127.0.0.1:", port);
    auto good = StartRunner({});
    TestServer server({}, nullptr, Pool({bad_addr, Addr(*good)}));
    // Run until the bad runner has been tried at least once.
    for (int i = 0; i < 4 && bad.calls.load() == 0; ++i) {
      auto outcome = RunCompress(server.Stub().get(), UploadWithValidation("any"));
      ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
      const v1::ValidationResult* v = ValidationOf(outcome);
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(v->runner(), Addr(*good));
      if (bad.calls.load() > 0) {
        bool recorded = false;
        for (const auto& a : v->attempts()) recorded |= absl::StrContains(a, bad_addr);
        EXPECT_TRUE(recorded) << v->DebugString();
      }
    }
    EXPECT_GT(bad.calls.load(), 0);
    fake->Shutdown();
  }
}

// The host backend directly: honest about what it checks.
TEST(HostBackendTest, ValidatesGoldenPackagesAndRejectsBrokenOnes) {
  runner::HostBackend backend({});
  auto devices = backend.ListDevices();
  ASSERT_TRUE(devices.ok());
  runner::ValidationInput in;
  in.compressed_path = GoldenDir() + "/ios18_joint_prune50_palettize4.mlpackage";
  in.original_path = GoldenDir() + "/ios18_original.mlpackage";
  auto r = backend.Run((*devices)[0], in, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->passed()) << r->DebugString();
  EXPECT_FALSE(r->ran_coreml());
  EXPECT_EQ(r->weights_checked(), 2);
  // Two compressed weights and the unchanged bias.
  EXPECT_NE(r->notes().find("3 weights compared"), std::string::npos) << r->notes();
  // A report that overstates the quality is caught.
  v1::WeightReport* claim = in.report.add_weights();
  claim->set_name("conv_weight_0_to_fp16");
  claim->set_snr_db(99.0);
  r = backend.Run((*devices)[0], in, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->passed());
  ASSERT_EQ(r->errors_size(), 1);
  EXPECT_NE(r->errors(0).find("claims SNR 99"), std::string::npos) << r->errors(0);
  // A broken package fails validation with the reader's message.
  ScratchDir scratch;
  CopyTree(GoldenDir() + "/ios18_joint_prune50_palettize4.mlpackage", scratch.Join("broken.mlpackage"));
  {
    std::string bin = *ReadFile(scratch.Join("broken.mlpackage/Data/com.apple.CoreML/weights/weight.bin"));
    bin[64] = 0;  // first blob's sentinel
    ASSERT_TRUE(WriteFileAtomically(scratch.Join("broken.mlpackage/Data/com.apple.CoreML/weights/weight.bin"), bin).ok());
  }
  in.compressed_path = scratch.Join("broken.mlpackage");
  in.report.Clear();
  r = backend.Run((*devices)[0], in, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->passed());
  ASSERT_GE(r->errors_size(), 1);
  EXPECT_NE(r->errors(0).find("sentinel"), std::string::npos) << r->errors(0);
}

// A NeuralNetwork inside an .mlpackage (PoseNet, as Xcode wrapped it) is
// validated like the same spec in an .mlmodel: every layer weight compared,
// the report's claims checked.
TEST(HostBackendTest, ValidatesANeuralNetworkPackage) {
  const std::string posenet = ModelsDir() + "/posenet_mobilenet075_fp16/PoseNetMobileNet075S16FP16.mlpackage";
  ScratchDir scratch;
  auto config = engine::ParseCompressionConfig("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n");
  ASSERT_TRUE(config.ok());
  auto report = engine::CompressModelPath(posenet, scratch.Join("int8.mlpackage"), *config, {}, {});
  ASSERT_TRUE(report.ok()) << report.status();
  runner::HostBackend backend({});
  auto devices = backend.ListDevices();
  ASSERT_TRUE(devices.ok());
  runner::ValidationInput in;
  in.compressed_path = scratch.Join("int8.mlpackage");
  in.original_path = posenet;
  int claims = 0;
  for (const engine::WeightReport& w : report->weights) {
    if (!w.skipped_reason.empty() || !std::isfinite(w.error.snr_db)) continue;
    v1::WeightReport* claim = in.report.add_weights();
    claim->set_name(w.name);
    claim->set_snr_db(w.error.snr_db);
    ++claims;
  }
  ASSERT_GT(claims, 20);
  auto r = backend.Run((*devices)[0], in, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->passed()) << r->DebugString();
  EXPECT_GT(r->weights_checked(), 30);
  EXPECT_NE(r->notes().find(absl::StrCat(claims, " report claims checked")), std::string::npos) << r->notes();
  // An overstated claim is caught.
  in.report.mutable_weights(0)->set_snr_db(199.0);
  r = backend.Run((*devices)[0], in, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->passed());
  ASSERT_EQ(r->errors_size(), 1);
  EXPECT_NE(r->errors(0).find("claims SNR 199"), std::string::npos) << r->errors(0);
}

}  // namespace
}  // namespace coremlz::testing
