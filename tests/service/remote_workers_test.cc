// 1 front + 3 workers as real processes on loopback: calls spread across the
// workers, a worker killed mid-load loses no call, the pool recovers when
// workers come back, and SIGTERM drains a front gracefully.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/server_fixture.h"

namespace coremlz::testing {
namespace {

std::string Golden16() { return GoldenDir() + "/ios16_original.mlpackage"; }
const char kPalettize4[] = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, weight_threshold: 512}\n";

std::unique_ptr<Daemon> StartWorker(const std::string& address = "127.0.0.1:0", int delay_ms = 0) {
  std::vector<std::string> argv = {BinaryPath("workers/coremlz-worker"), "--address", address, "--metrics-address",
                                   "127.0.0.1:0", "--workers", "1", "--queue", "8"};
  if (delay_ms) {
    argv.push_back("--test-job-delay-ms");
    argv.push_back(std::to_string(delay_ms));
  }
  auto d = std::make_unique<Daemon>(argv, "serving gRPC on port ");
  EXPECT_TRUE(d->ok()) << d->log();
  return d;
}

std::unique_ptr<Daemon> StartFront(std::vector<std::string> extra) {
  std::vector<std::string> argv = {BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto d = std::make_unique<Daemon>(argv, "serving gRPC on port ");
  EXPECT_TRUE(d->ok()) << d->log();
  return d;
}

std::string Address(const Daemon& d) { return absl::StrCat("127.0.0.1:", d.port()); }

std::unique_ptr<v1::Compressor::Stub> StubFor(const Daemon& d) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  return v1::Compressor::NewStub(grpc::CreateCustomChannel(Address(d), grpc::InsecureChannelCredentials(), args));
}

std::vector<v1::CompressRequest> Upload() {
  std::string root;
  std::vector<v1::FileInfo> files;
  std::vector<v1::CompressRequest> msgs = {HeaderFor(Golden16(), kPalettize4, &root, &files)};
  for (auto& c : ChunksFor(root, files)) msgs.push_back(std::move(c));
  return msgs;
}

double WorkerJobs(const Daemon& worker) {
  // The worker's own /metrics: jobs it ran.
  api::ServerOptions unused;
  (void)unused;
  const int port = worker.NumberAfter("metrics on port ");
  std::string scrape;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
      (void)::write(fd, req.data(), req.size());
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) scrape.append(buf, n);
    }
    ::close(fd);
  }
  return MetricValue(scrape, "coremlz_jobs_total{outcome=\"ok\",technique=\"palettize\"}");
}

// What the in-process engine produces, to compare artifacts with.
std::string LocalWeights() {
  ScratchDir scratch;
  auto config = engine::ParseCompressionConfig(kPalettize4);
  auto r = engine::CompressModelPath(Golden16(), scratch.Join("l.mlpackage"), *config, {}, {});
  EXPECT_TRUE(r.ok()) << r.status();
  return *ReadFile(scratch.Join("l.mlpackage/Data/com.apple.CoreML/weights/weight.bin"));
}

std::string RemoteWeights(const CompressOutcome& o) {
  std::string bin;
  uint32_t index = 99;
  for (const auto& r : o.responses) {
    if (r.has_artifact_file()) index = absl::EndsWith(r.artifact_file().info().path(), "weight.bin") ? r.artifact_file().file_index() : 99;
    if (r.has_artifact_chunk() && r.artifact_chunk().file_index() == index) bin += r.artifact_chunk().data();
  }
  return bin;
}

TEST(RemoteWorkersTest, CallsSpreadAcrossWorkers) {
  std::vector<std::unique_ptr<Daemon>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(StartWorker());
  auto front = StartFront({"--remote-workers", absl::StrCat(Address(*workers[0]), ",", Address(*workers[1]), ",",
                                                            Address(*workers[2])),
                           "--worker-concurrency", "1"});
  const std::string local = LocalWeights();
  auto stub = StubFor(*front);
  for (int i = 0; i < 9; ++i) {
    auto outcome = RunCompress(stub.get(), Upload());
    ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
    EXPECT_EQ(RemoteWeights(outcome), local);
  }
  double total = 0;
  for (auto& w : workers) {
    const double jobs = WorkerJobs(*w);
    EXPECT_GE(jobs, 1) << "round_robin left a worker idle";
    total += jobs;
  }
  EXPECT_EQ(total, 9);
}

TEST(RemoteWorkersTest, AWorkerKilledMidLoadLosesNoCall) {
  std::vector<std::unique_ptr<Daemon>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(StartWorker("127.0.0.1:0", /*delay_ms=*/300));
  auto front = StartFront({"--remote-workers", absl::StrCat(Address(*workers[0]), ",", Address(*workers[1]), ",",
                                                            Address(*workers[2])),
                           "--worker-concurrency", "2", "--queue", "16"});
  const std::string local = LocalWeights();
  std::vector<std::thread> calls;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(6);
  std::vector<bool> same(6, false);
  for (int i = 0; i < 6; ++i) {
    calls.emplace_back([&, i] {
      auto stub = StubFor(*front);
      auto outcome = RunCompress(stub.get(), Upload());
      if (outcome.status.ok()) {
        ++ok;
        same[i] = RemoteWeights(outcome) == local;
      } else {
        failures[i] = outcome.status.error_message();
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(400));
  workers[1]->Stop(SIGKILL);
  for (auto& t : calls) t.join();
  EXPECT_EQ(ok.load(), 6);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(failures[i].empty()) << "call " << i << ": " << failures[i];
    EXPECT_TRUE(same[i]) << "call " << i << " returned a different model";
  }
}

TEST(RemoteWorkersTest, PoolRecoversWhenWorkersComeBack) {
  auto w1 = StartWorker();
  const std::string address = Address(*w1);
  auto front = StartFront({"--remote-workers", address});
  auto stub = StubFor(*front);
  ASSERT_TRUE(RunCompress(stub.get(), Upload()).status.ok());
  w1->Stop(SIGKILL);
  auto down = RunCompress(stub.get(), Upload(), absl::Seconds(20));
  EXPECT_EQ(down.status.error_code(), grpc::StatusCode::UNAVAILABLE) << down.status.error_message();
  EXPECT_NE(down.status.error_message().find("no remote worker"), std::string::npos) << down.status.error_message();
  // A worker comes back on the same address; the pool reconnects.
  auto w2 = StartWorker(address);
  ASSERT_TRUE(w2->ok());
  grpc::Status last;
  for (int i = 0; i < 20; ++i) {
    last = RunCompress(stub.get(), Upload(), absl::Seconds(20)).status;
    if (last.ok()) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_TRUE(last.ok()) << last.error_message();
}

TEST(GracefulShutdownTest, SigtermDrainsInFlightCallsAndRefusesNewOnes) {
  auto front = StartFront({"--test-job-delay-ms", "700", "--grace-seconds", "20"});
  auto stub = StubFor(*front);
  CompressOutcome in_flight;
  std::atomic<bool> compressing{false};
  std::thread call([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto stream = stub->Compress(&ctx);
    std::thread writer([&] {
      for (const auto& m : Upload()) stream->Write(m);
      stream->WritesDone();
    });
    v1::CompressResponse r;
    while (stream->Read(&r)) {
      if (r.has_progress() && r.progress().phase() == v1::Progress::COMPRESS) compressing = true;
      in_flight.responses.push_back(r);
    }
    writer.join();
    in_flight.status = stream->Finish();
  });
  for (int i = 0; i < 500 && !compressing.load(); ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(compressing.load());
  const absl::Time signalled = absl::Now();
  ::kill(front->pid(), SIGTERM);
  absl::SleepFor(absl::Milliseconds(200));
  // New calls are refused while the old one drains.
  auto late = RunCompress(StubFor(*front).get(), Upload(), absl::Seconds(5));
  EXPECT_FALSE(late.status.ok());
  call.join();
  EXPECT_TRUE(in_flight.status.ok()) << in_flight.status.error_message();
  EXPECT_EQ(in_flight.Count(v1::CompressResponse::kSummary), 1);
  EXPECT_EQ(front->Stop(0, absl::Seconds(30)), 0) << front->log();  // already exiting: wait for it
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(20));
  EXPECT_NE(front->log().find("draining"), std::string::npos);
}

}  // namespace
}  // namespace coremlz::testing
