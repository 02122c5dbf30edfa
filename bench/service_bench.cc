// End-to-end cost of the service: compresses a generated ~100 MB fp16 ML
// Program in-process (engine::CompressModelPath) and through a coremlzd
// process on loopback (upload, job, artifact download), and reports the
// ratio, the upload rate and the server's peak RSS.
//
//   build/bench/service_bench [--config YAML] [--layers N] [--repeat N] [--workers N]
//                         [--spec-version N]
//
// --spec-version: the model's specification version, 7 (iOS16, default) to
// 9 (iOS18: grouped-channel and vector palettes, per-block int4).
// --workers: coremlzd's worker slots (default 1). With more than one, a lone
// job's grouped palettes are also solved on the idle slots; the in-process
// run then gets as many threads (--threads), for a like-for-like ratio.
//
// Numbers and the machine they came from: docs/performance.md.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "grpcpp/grpcpp.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::bench {
namespace {

using Clock = std::chrono::steady_clock;
using format::ElementType;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Transformer-shaped weights: per layer q, k, v, o (d x d) and the two FFN
// projections (d x 4d, 4d x d) in fp16. d = 1024: 24 MB per layer.
absl::Status WriteModel(const std::string& dir, int layers, int spec_version) {
  testing::ProgramBuilder b(spec_version);
  const int64_t d = 1024, t = 16;
  b.AddInput("x", ElementType::kFloat16, {1, t, d});
  std::string h = "x";
  uint32_t seed = 1;
  for (int l = 0; l < layers; ++l) {
    for (const char* proj : {"q", "k", "v", "o"}) {
      h = b.Linear(absl::StrCat("layer", l, "_", proj), h, d, d, {1, t, d}, ElementType::kFloat16, seed++);
    }
    h = b.Linear(absl::StrCat("layer", l, "_up"), h, d, 4 * d, {1, t, d}, ElementType::kFloat16, seed++);
    h = b.Linear(absl::StrCat("layer", l, "_down"), h, 4 * d, d, {1, t, 4 * d}, ElementType::kFloat16, seed++);
  }
  b.AddOutput(h, ElementType::kFloat16, {1, t, d});
  return b.WritePackage(dir);
}

double PeakRssMb(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  long kb = 0;
  while (std::getline(status, line)) {
    if (std::sscanf(line.c_str(), "VmHWM: %ld kB", &kb) == 1) break;
  }
  return kb / 1024.0;
}

struct RemoteTimes {
  double upload = 0, total = 0;  // upload: the client's last byte written
  double queued = 0;             // the job was queued (before the upload's end when it streams)
  double first_artifact = 0;  // when the artifact started to come back
  bool ok = false;
  std::string error;
};

RemoteTimes CompressRemote(v1::Compressor::Stub* stub, const std::string& model, const std::string& config) {
  RemoteTimes out;
  std::string root;
  auto files = api::DescribeModelFiles(model, &root);
  if (!files.ok()) {
    out.error = std::string(files.status().message());
    return out;
  }
  const auto start = Clock::now();
  grpc::ClientContext ctx;
  auto stream = stub->Compress(&ctx);
  v1::CompressRequest header;
  header.mutable_header()->set_config_yaml(config);
  for (const auto& f : *files) *header.mutable_header()->add_files() = f;
  stream->Write(header);
  // Replies are read on this thread while another writes, as real
  // clients do: a job that starts during the upload reports meanwhile.
  absl::Status sent;
  std::thread writer([&] {
    sent = api::SendFiles(root, *files, 0, [&](v1::FileChunk&& c) {
      v1::CompressRequest r;
      *r.mutable_chunk() = std::move(c);
      return stream->Write(r);
    });
    out.upload = Seconds(start, Clock::now());
    stream->WritesDone();
  });
  v1::CompressResponse r;
  while (stream->Read(&r)) {
    if (r.has_progress() && r.progress().phase() == v1::Progress::QUEUED && out.queued == 0) {
      out.queued = Seconds(start, Clock::now());
    }
    if (r.has_artifact_file() && out.first_artifact == 0) out.first_artifact = Seconds(start, Clock::now());
  }
  writer.join();
  grpc::Status status = stream->Finish();
  out.total = Seconds(start, Clock::now());
  out.ok = status.ok() && sent.ok();
  out.error = status.ok() ? std::string(sent.message()) : status.error_message();
  return out;
}

int Run(int argc, char** argv) {
  std::string config = "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n";
  int layers = 4, repeat = 3, workers = 1, spec_version = 7;
  // Every flag takes a value; anything else (--help included) gets the usage.
  bool usage = argc % 2 == 0;
  for (int i = 1; !usage && i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--config") {
      config = argv[i + 1];
    } else if (flag == "--layers") {
      usage = !absl::SimpleAtoi(argv[i + 1], &layers) || layers < 1;
    } else if (flag == "--repeat") {
      usage = !absl::SimpleAtoi(argv[i + 1], &repeat) || repeat < 1;
    } else if (flag == "--spec-version") {
      usage = !absl::SimpleAtoi(argv[i + 1], &spec_version) || spec_version < 7 || spec_version > 9;
    } else if (flag == "--workers") {
      usage = !absl::SimpleAtoi(argv[i + 1], &workers) || workers < 1 || workers > 256;
    } else {
      usage = true;
    }
  }
  if (usage) {
    std::fprintf(stderr, "usage: service_bench [--config YAML] [--layers N=4] [--repeat N=3] [--workers N=1] [--spec-version 7..9]\n");
    return 2;
  }
  testing::ScratchDir scratch;
  const std::string model = scratch.Join("bench.mlpackage");
  if (absl::Status s = WriteModel(model, layers, spec_version); !s.ok()) {
    std::fprintf(stderr, "service_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::string root;
  auto described = api::DescribeModelFiles(model, &root);
  if (!described.ok()) {
    std::fprintf(stderr, "service_bench: %s\n", std::string(described.status().message()).c_str());
    return 1;
  }
  uint64_t bytes = 0;
  for (const auto& f : *described) bytes += f.size();
  auto parsed = engine::ParseCompressionConfig(config);
  if (!parsed.ok()) {
    std::fprintf(stderr, "service_bench: %s\n", std::string(parsed.status().message()).c_str());
    return 1;
  }
  std::printf("model: %d layers, %.1f MB; %d worker(s) / thread(s); config: %s\n", layers, bytes / 1e6, workers,
              config.c_str());

  double best_local = 1e9;
  for (int r = 0; r < repeat; ++r) {
    const std::string out = scratch.Join(absl::StrCat("local", r, ".mlpackage"));
    const auto start = Clock::now();
    engine::CompressOptions options;
    options.threads = workers;
    auto report = engine::CompressModelPath(model, out, *parsed, options, {});
    const double t = Seconds(start, Clock::now());
    if (!report.ok()) {
      std::fprintf(stderr, "service_bench: %s\n", std::string(report.status().message()).c_str());
      return 1;
    }
    best_local = std::min(best_local, t);
    if (r == 0) {
      std::printf("in-process report: %d weights compressed, %d skipped, %.1f MB -> %.1f MB\n",
                  report->weights_compressed, report->weights_skipped, report->model_bytes_before / 1e6,
                  report->model_bytes_after / 1e6);
    }
    (void)RemoveAll(out);
  }

  grpc::ChannelArguments ch;
  ch.SetMaxReceiveMessageSize(8 << 20);
  // The job after the whole upload (--stream-rate-mb 0, as before) and
  // while it arrives (the default), one server each, same model.
  for (const char* rate : {"0", "500"}) {
    testing::Daemon server({testing::BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address",
                            "", "--work-dir", scratch.path(), "--workers", absl::StrCat(workers), "--stream-rate-mb", rate},
                           "serving gRPC on port ");
    if (!server.ok()) {
      std::fprintf(stderr, "service_bench: coremlzd did not start:\n%s\n", server.log().c_str());
      return 1;
    }
    const double idle_rss = PeakRssMb(server.pid());
    auto stub = v1::Compressor::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server.port()), grpc::InsecureChannelCredentials(), ch));
    RemoteTimes best{1e9, 1e9};
    for (int r = 0; r < repeat; ++r) {
      RemoteTimes t = CompressRemote(stub.get(), model, config);
      if (!t.ok) {
        std::fprintf(stderr, "service_bench: remote call failed: %s\n", t.error.c_str());
        return 1;
      }
      if (t.total < best.total) best = t;
    }
    const double peak_rss = PeakRssMb(server.pid());
    server.Stop(SIGTERM);

    std::printf("--stream-rate-mb %s:\n", rate);
    std::printf("  in-process  : %.3f s (%.0f MB/s)\n", best_local, bytes / 1e6 / best_local);
    std::printf("  via coremlzd: %.3f s (%.2fx in-process); upload %.3f s (%.0f MB/s), job queued at %.3f s, "
                "done at %.3f s, artifact back %.3f s later\n",
                best.total, best.total / best_local, best.upload, bytes / 1e6 / best.upload, best.queued,
                best.first_artifact, best.total - best.first_artifact);
    std::printf("  coremlzd peak RSS: %.0f MB (idle %.0f MB) for a %.0f MB model\n", peak_rss, idle_rss, bytes / 1e6);
  }

  // The result cache: the first call computes and stores, the next ones are
  // answered from disk (verified by digest) without a job.
  testing::Daemon cached({testing::BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "",
                          "--work-dir", scratch.path(), "--workers", "1", "--cache-dir", scratch.Join("cache")},
                         "serving gRPC on port ");
  if (!cached.ok()) {
    std::fprintf(stderr, "service_bench: coremlzd --cache-dir did not start:\n%s\n", cached.log().c_str());
    return 1;
  }
  auto cached_stub = v1::Compressor::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", cached.port()), grpc::InsecureChannelCredentials(), ch));
  RemoteTimes miss = CompressRemote(cached_stub.get(), model, config);
  RemoteTimes hit{1e9, 1e9};
  for (int r = 0; r < repeat && miss.ok; ++r) {
    RemoteTimes t = CompressRemote(cached_stub.get(), model, config);
    if (!t.ok) {
      std::fprintf(stderr, "service_bench: cached call failed: %s\n", t.error.c_str());
      return 1;
    }
    if (t.total < hit.total) hit = t;
  }
  cached.Stop(SIGTERM);
  if (!miss.ok) {
    std::fprintf(stderr, "service_bench: first cached call failed: %s\n", miss.error.c_str());
    return 1;
  }
  std::printf("result cache: miss %.3f s (computed and stored), hit %.3f s (%.1fx faster; the hit still uploads and "
              "verifies every byte)\n",
              miss.total, hit.total, miss.total / hit.total);
  return 0;
}

}  // namespace
}  // namespace coremlz::bench

int main(int argc, char** argv) { return coremlz::bench::Run(argc, argv); }
