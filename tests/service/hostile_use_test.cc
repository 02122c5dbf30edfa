// Hostile and faulty use against real coremlzd / coremlz-worker processes on
// loopback (docs/reliability.md, "Hostile use"): /metrics does not grow with
// what callers send, stalled calls and idle connections give their slot
// back, running out of descriptors does not wedge the listener, reflection
// can require the token, a killed process's job directories are removed by
// the next start, and a front presents its own token to its workers.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/testing/http_get.h"
#include "tests/testing/process.h"
#include "tests/testing/server_fixture.h"

namespace coremlz::testing {
namespace {

std::string Golden16() { return GoldenDir() + "/ios16_original.mlpackage"; }
const char kPalettize4[] = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, weight_threshold: 512}\n";
const char kToken[] = "hostile-use-test-token";

std::unique_ptr<Daemon> Start(const std::string& binary, std::vector<std::string> extra,
                              std::vector<std::string> prefix = {}) {
  std::vector<std::string> argv = std::move(prefix);
  for (const std::string& a : {BinaryPath(binary), std::string("--address"), std::string("127.0.0.1:0")}) argv.push_back(a);
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto d = std::make_unique<Daemon>(argv, "serving gRPC on port ");
  EXPECT_TRUE(d->ok()) << d->log();
  return d;
}

std::string Address(const Daemon& d) { return absl::StrCat("127.0.0.1:", d.port()); }

std::shared_ptr<grpc::Channel> ChannelTo(const Daemon& d) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  // A private connection per channel: tests count on their own connections.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(Address(d), grpc::InsecureChannelCredentials(), args);
}

std::vector<v1::CompressRequest> Upload(const std::string& config = kPalettize4) {
  std::string root;
  std::vector<v1::FileInfo> files;
  std::vector<v1::CompressRequest> msgs = {HeaderFor(Golden16(), config, &root, &files)};
  for (auto& c : ChunksFor(root, files)) msgs.push_back(std::move(c));
  return msgs;
}

// A whole Compress call with optional metadata.
CompressOutcome Compress(const std::shared_ptr<grpc::Channel>& channel, const std::string& token = "",
                         absl::Duration deadline = absl::Seconds(60), const std::string& config = kPalettize4) {
  auto stub = v1::Compressor::NewStub(channel);
  CompressOutcome out;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  if (!token.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  auto stream = stub->Compress(&ctx);
  const std::vector<v1::CompressRequest> requests = Upload(config);
  std::thread writer([&] {
    for (const auto& r : requests) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  });
  v1::CompressResponse response;
  while (stream->Read(&response)) out.responses.push_back(response);
  writer.join();
  out.status = stream->Finish();
  return out;
}

// A unary call to any method with raw bytes; returns the status and fills
// *response.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method, const std::string& bytes,
                     std::string* response = nullptr, const std::string& token = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  if (!token.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), reply;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &reply, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (response != nullptr) {
    response->clear();
    std::vector<grpc::Slice> slices;
    if (reply.Dump(&slices).ok()) {
      for (const auto& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return status;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

// Waits up to `timeout` for `done`.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// ---- Class 2: bounded per caller ----

TEST(HostileUseTest, MetricsDoNotGrowWithWhatCallersSend) {
  auto server = Start("service/coremlzd", {"--metrics-address", "127.0.0.1:0", "--workers", "1"});
  const int metrics_port = server->NumberAfter("metrics on port ");
  ASSERT_GT(metrics_port, 0) << server->log();
  auto channel = ChannelTo(*server);
  std::mt19937_64 rng(7);
  auto random_calls = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const std::string method = absl::StrCat("/evil", rng(), ".Svc", rng(), "/M", rng());
      EXPECT_EQ(RawCall(channel, method, "x").error_code(), grpc::StatusCode::UNIMPLEMENTED) << method;
    }
    // A config whose text is the caller's: an op name of arbitrary text.
    const std::string config = absl::StrCat(kPalettize4, "op_name_configs: {\"evil", rng(), "\": {nbits: 2}}\n");
    const grpc::Status s = Compress(channel, "", absl::Seconds(60), config).status;
    EXPECT_TRUE(s.ok()) << s.error_message();
  };
  random_calls(20);
  const std::string series = "coremlz_jobs_total{outcome=\"ok\",technique=\"palettize\"}";
  std::string before, after;
  ASSERT_TRUE(WaitFor([&] { return MetricValue(before = HttpGet(metrics_port, "/metrics"), series) == 1; },
                      absl::Seconds(10)))
      << before;
  random_calls(200);
  ASSERT_TRUE(WaitFor([&] { return MetricValue(after = HttpGet(metrics_port, "/metrics"), series) == 2; },
                      absl::Seconds(10)))
      << after;
  // Counts get longer (20 -> 220), series do not multiply.
  EXPECT_LT(after.size(), before.size() + 1000) << after;
  EXPECT_FALSE(absl::StrContains(after, "evil")) << after;
  EXPECT_TRUE(absl::StrContains(after, "grpc_method=\"unknown\",grpc_service=\"unknown\"")) << after;
  // Real methods keep their own labels.
  EXPECT_EQ(MetricValue(after, "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Compress\","
                               "grpc_service=\"coremlz.v1.Compressor\",grpc_type=\"bidi_stream\"}"),
            2)
      << after;
  EXPECT_EQ(server->Stop(SIGTERM), 0) << server->log();
}

// Opens a Compress call that sends nothing (a header-less call) or a header
// and one chunk, then stalls; returns its status (read to the end).
grpc::Status StalledCall(const std::shared_ptr<grpc::Channel>& channel, bool send_header) {
  auto stub = v1::Compressor::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto stream = stub->Compress(&ctx);
  if (send_header) {
    const std::vector<v1::CompressRequest> requests = Upload();
    EXPECT_GE(requests.size(), 3u);
    stream->Write(requests[0]);
    stream->Write(requests[1]);
  }
  v1::CompressResponse response;
  while (stream->Read(&response)) {
  }
  return stream->Finish();
}

TEST(HostileUseTest, StalledCallsGiveTheirSlotBack) {
  auto server = Start("service/coremlzd", {"--metrics-address", "127.0.0.1:0", "--max-calls", "2",
                                           "--header-timeout-seconds", "2", "--idle-timeout-seconds", "2", "--workers", "1"});
  const int metrics_port = server->NumberAfter("metrics on port ");
  grpc::Status no_header, stalled_upload;
  const absl::Time start = absl::Now();
  std::thread a([&] { no_header = StalledCall(ChannelTo(*server), false); });
  std::thread b([&] { stalled_upload = StalledCall(ChannelTo(*server), true); });
  // Both slots are taken by calls that make no progress; a real call gets
  // one once the limits end them (RESOURCE_EXHAUSTED until then).
  const std::string started =
      "grpc_server_started_total{grpc_method=\"Compress\",grpc_service=\"coremlz.v1.Compressor\",grpc_type=\"bidi_stream\"}";
  EXPECT_TRUE(WaitFor([&] { return MetricValue(HttpGet(metrics_port, "/metrics"), started) == 2; }, absl::Seconds(10)));
  CompressOutcome real;
  EXPECT_TRUE(WaitFor(
      [&] {
        real = Compress(ChannelTo(*server));
        return real.status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED;
      },
      absl::Seconds(20)));
  EXPECT_TRUE(real.status.ok()) << real.status.error_message();
  a.join();
  b.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(25));
  EXPECT_EQ(no_header.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << no_header.error_message();
  EXPECT_TRUE(absl::StrContains(no_header.error_message(), "--header-timeout-seconds")) << no_header.error_message();
  EXPECT_EQ(stalled_upload.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << stalled_upload.error_message();
  EXPECT_TRUE(absl::StrContains(stalled_upload.error_message(), "--idle-timeout-seconds"))
      << stalled_upload.error_message();
  EXPECT_EQ(server->Stop(SIGTERM), 0) << server->log();
}

TEST(HostileUseTest, StalledInspectCallsEnd) {
  auto server = Start("service/coremlzd", {"--metrics-address", "", "--header-timeout-seconds", "1",
                                           "--idle-timeout-seconds", "1"});
  for (bool send_header : {false, true}) {
    auto stub = v1::Compressor::NewStub(ChannelTo(*server));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::InspectResponse response;
    auto writer = stub->Inspect(&ctx, &response);
    if (send_header) {
      std::string root;
      std::vector<v1::FileInfo> files;
      const v1::CompressRequest compress_header = HeaderFor(Golden16(), "", &root, &files);
      v1::InspectRequest header;
      for (const auto& f : compress_header.header().files()) *header.mutable_header()->add_files() = f;
      EXPECT_TRUE(writer->Write(header));
    }
    const absl::Time start = absl::Now();
    const grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), send_header ? "--idle-timeout-seconds" : "--header-timeout-seconds"))
        << s.error_message();
    EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  }
  EXPECT_EQ(server->Stop(SIGTERM), 0) << server->log();
}

TEST(HostileUseTest, ClientThatStopsReadingGivesItsSlotBack) {
  auto server = Start("service/coremlzd", {"--metrics-address", "", "--max-calls", "1", "--idle-timeout-seconds", "2",
                                           "--workers", "1"});
  // A client with a small receive window that uploads and never reads: the
  // server's writes stop after the first 64 KiB of the response.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 65535);
  args.SetMaxReceiveMessageSize(8 << 20);
  auto slow = grpc::CreateCustomChannel(Address(*server), grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Compressor::NewStub(slow);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  auto stream = stub->Compress(&ctx);
  for (const auto& r : Upload()) ASSERT_TRUE(stream->Write(r));
  stream->WritesDone();
  // Its slot comes free once the response has waited for the idle limit.
  CompressOutcome real;
  EXPECT_TRUE(WaitFor(
      [&] {
        real = Compress(ChannelTo(*server), "", absl::Seconds(30));
        return real.status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED;
      },
      absl::Seconds(10)));
  EXPECT_TRUE(real.status.ok()) << real.status.error_message();
  ctx.TryCancel();
  v1::CompressResponse response;
  while (stream->Read(&response)) {
  }
  (void)stream->Finish();
  EXPECT_EQ(server->Stop(SIGTERM), 0) << server->log();
}

// A TCP connection to `port`, or -1.
int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(HostileUseTest, IdleConnectionsAreClosed) {
  auto server = Start("service/coremlzd", {"--metrics-address", "", "--header-timeout-seconds", "1",
                                           "--connection-idle-seconds", "1"});
  // A connection that never says anything is closed after the handshake limit.
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  bool closed = false;
  const absl::Time end = absl::Now() + absl::Seconds(15);
  while (!closed && absl::Now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 500) != 1) continue;
    char buf[256];
    closed = ::read(fd, buf, sizeof(buf)) <= 0;  // the server's settings come first, then the close
  }
  EXPECT_TRUE(closed) << "the server kept a silent connection open";
  ::close(fd);
  // A gRPC connection whose calls are over is sent away (GOAWAY: the
  // channel goes idle) after the idle limit.
  auto channel = ChannelTo(*server);
  EXPECT_EQ(RawCall(channel, "/grpc.health.v1.Health/Check", "").error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  EXPECT_TRUE(WaitFor([&] { return channel->GetState(false) == GRPC_CHANNEL_IDLE; }, absl::Seconds(15)));
  EXPECT_EQ(server->Stop(SIGTERM), 0) << server->log();
}

TEST(HostileUseTest, RunningOutOfDescriptorsDoesNotWedgeTheServer) {
  // Soft and hard limit 256: the server cannot raise it.
  auto server = Start("service/coremlzd", {"--metrics-address", "", "--max-calls", "4", "--workers", "1"},
                      {"/usr/bin/prlimit", "--nofile=256:256", "--"});
  ASSERT_TRUE(server->ok());
  std::vector<int> held;
  for (int i = 0; i < 600; ++i) {
    const int fd = Connect(server->port());
    if (fd >= 0) held.push_back(fd);
  }
  absl::SleepFor(absl::Seconds(1));
  for (int fd : held) ::close(fd);
  // Connections beyond the limit were refused, the listener lives on: a
  // real call succeeds once the flood is gone.
  CompressOutcome real;
  EXPECT_TRUE(WaitFor(
      [&] {
        real = Compress(ChannelTo(*server), "", absl::Seconds(5));
        return real.status.ok();
      },
      absl::Seconds(30)))
      << real.status.error_message() << "\n" << server->log();
  EXPECT_FALSE(absl::StrContains(server->log(), "Failed accept4")) << server->log();
  EXPECT_EQ(server->Stop(SIGTERM), 0) << server->log();
}

TEST(HostileUseTest, ReflectionCanRequireTheToken) {
  ScratchDir scratch;
  const std::string tokens = scratch.Join("tokens");
  ASSERT_TRUE(WriteFileAtomically(tokens, absl::StrCat(kToken, "\n")).ok());
  const std::string method = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  const std::string list_services("\x3a\x00", 2);  // ServerReflectionRequest{list_services: ""}
  std::string reply;
  {
    // Default: reflection is open, like health (documented).
    auto open = Start("service/coremlzd", {"--metrics-address", "", "--token-file", tokens});
    ASSERT_TRUE(RawCall(ChannelTo(*open), method, list_services, &reply).ok());
    EXPECT_TRUE(absl::StrContains(reply, "coremlz.v1.Compressor"));
  }
  auto guarded = Start("service/coremlzd", {"--metrics-address", "", "--token-file", tokens, "--reflection-requires-token"});
  auto channel = ChannelTo(*guarded);
  ASSERT_TRUE(RawCall(channel, method, list_services, &reply).ok());
  EXPECT_FALSE(absl::StrContains(reply, "coremlz")) << reply;
  ASSERT_FALSE(reply.empty());
  EXPECT_EQ(reply[0], '\x3a') << "expected an error_response";  // field 7
  EXPECT_TRUE(absl::StrContains(reply, "--reflection-requires-token")) << reply;
  ASSERT_TRUE(RawCall(channel, method, list_services, &reply, "wrong").ok());
  EXPECT_FALSE(absl::StrContains(reply, "coremlz.v1")) << reply;
  ASSERT_TRUE(RawCall(channel, method, list_services, &reply, kToken).ok());
  EXPECT_TRUE(absl::StrContains(reply, "coremlz.v1.Compressor")) << reply;
  // Health stays open (load balancers and kubelets probe it without a token).
  EXPECT_TRUE(RawCall(channel, "/grpc.health.v1.Health/Check", "").ok());
  // Refused without a token file.
  CommandResult bad = RunProgram({BinaryPath("service/coremlzd"), "--reflection-requires-token"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad.err, "--token-file")) << bad.err;
}

// ---- Class 6: faults leave nothing behind ----

void KilledMidJobThenRestarted(const std::string& binary) {
  ScratchDir work;
  const std::vector<std::string> flags = {"--metrics-address", "", "--work-dir", work.path(), "--workers", "1",
                                          "--test-job-delay-ms", "3000"};
  auto first = Start(binary, flags);
  std::thread call([&] { (void)Compress(ChannelTo(*first), "", absl::Seconds(60)); });
  ASSERT_TRUE(WaitFor([&] { return !Entries(work.path()).empty(); }, absl::Seconds(20)));
  absl::SleepFor(absl::Milliseconds(500));  // the upload lands in it
  // A second server sharing the directory leaves a live job alone.
  {
    auto neighbour = Start(binary, flags);
    EXPECT_EQ(Entries(work.path()).size(), 1u);
    EXPECT_FALSE(absl::StrContains(neighbour->log(), "removed")) << neighbour->log();
  }
  EXPECT_EQ(first->Stop(SIGKILL), 128 + SIGKILL);
  call.join();
  const std::vector<std::string> left = Entries(work.path());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(left[0], "coremlz-job-")) << left[0];
  auto second = Start(binary, flags);
  EXPECT_TRUE(Entries(work.path()).empty()) << left[0];
  EXPECT_TRUE(absl::StrContains(second->log(), "removed 1 job directories")) << second->log();
  // And it works.
  EXPECT_TRUE(Compress(ChannelTo(*second), "", absl::Seconds(120)).status.ok());
  // (The directory goes when the call's last reference does, just after
  // the client has its status.)
  EXPECT_TRUE(WaitFor([&] { return Entries(work.path()).empty(); }, absl::Seconds(10)));
}

TEST(HostileUseTest, FrontKilledMidJobLeavesNothingAfterRestart) { KilledMidJobThenRestarted("service/coremlzd"); }

TEST(HostileUseTest, WorkerKilledMidJobLeavesNothingAfterRestart) { KilledMidJobThenRestarted("workers/coremlz-worker"); }

TEST(HostileUseTest, FrontPresentsItsOwnTokenToWorkers) {
  ScratchDir scratch;
  const std::string tokens = scratch.Join("tokens");
  ASSERT_TRUE(WriteFileAtomically(tokens, absl::StrCat(kToken, "\n")).ok());
  auto worker = Start("workers/coremlz-worker", {"--metrics-address", "", "--token-file", tokens, "--workers", "1"});
  auto front = Start("service/coremlzd", {"--metrics-address", "", "--token-file", tokens, "--remote-workers",
                                          Address(*worker)});
  CompressOutcome outcome = Compress(ChannelTo(*front), kToken);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.Count(v1::CompressResponse::kSummary), 1);
  // The front still wants the token itself.
  EXPECT_EQ(Compress(ChannelTo(*front)).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace coremlz::testing
