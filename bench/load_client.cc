// coremlz-load: drives a running coremlzd with many concurrent Compress
// streams for a bounded time and reports throughput, latency, errors and -
// when given the server's pid on this machine - its memory, open files and
// threads before, during and after the load.
//
//   coremlz-load --server 127.0.0.1:50051 --pid 1234 --streams 64 --seconds 60
//       --model ../shared/models/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage --json out.json
//
// Every call uploads the whole model, waits for the artifact and checks it
// (OK status, one summary, artifact bytes as announced). --cancel-every N
// cancels every Nth call of each stream, alternately during the upload and
// while the job runs, to exercise the cleanup paths. scripts/load.sh starts a
// server and runs this; tests/service/load_smoke_test.cc runs a short version.
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/transfer.h"
#include "common/arg_parser.h"
#include "common/json_writer.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::load {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kUsage[] = R"(usage: coremlz-load --server HOST:PORT [options]
  --model PATH         .mlpackage or .mlmodel to upload (required)
  --config YAML        compression config (default: int8 linear quantization)
  --streams N          concurrent Compress streams (default 64)
  --seconds S          how long to keep starting calls (default 60)
  --max-calls N        stop after N calls in all (default: no limit)
  --channels N         client connections the streams share (default 8)
  --cancel-every N     cancel every Nth call of each stream (default 0: never)
  --pid PID            the server's process id, to sample RSS, fds and threads
  --settle-seconds S   idle time before the final sample (default 3)
  --json PATH          also write the results as JSON
)";

// One sample of the server process from /proc.
struct ProcSample {
  double rss_mb = 0, hwm_mb = 0;
  int threads = 0, fds = 0;
};

bool SampleProc(int pid, ProcSample* out) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  if (!status) return false;
  std::string line;
  while (std::getline(status, line)) {
    long value = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %ld kB", &value) == 1) out->rss_mb = value / 1024.0;
    if (std::sscanf(line.c_str(), "VmHWM: %ld kB", &value) == 1) out->hwm_mb = value / 1024.0;
    if (std::sscanf(line.c_str(), "Threads: %ld", &value) == 1) out->threads = static_cast<int>(value);
  }
  out->fds = 0;
  if (DIR* d = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    while (dirent* e = ::readdir(d)) out->fds += e->d_name[0] != '.';
    ::closedir(d);
  }
  return true;
}

struct Upload {
  std::vector<v1::CompressRequest> messages;
  uint64_t bytes = 0;
};

absl::StatusOr<Upload> PrepareUpload(const std::string& model, const std::string& config) {
  std::string root;
  auto files = api::DescribeModelFiles(model, &root);
  if (!files.ok()) return files.status();
  Upload u;
  v1::CompressRequest header;
  header.mutable_header()->set_config_yaml(config);
  for (const auto& f : *files) {
    *header.mutable_header()->add_files() = f;
    u.bytes += f.size();
  }
  u.messages.push_back(std::move(header));
  absl::Status s = api::SendFiles(root, *files, 0, [&](v1::FileChunk&& c) {
    v1::CompressRequest r;
    *r.mutable_chunk() = std::move(c);
    u.messages.push_back(std::move(r));
    return true;
  });
  if (!s.ok()) return s;
  return u;
}

enum class CancelAt { kNever, kUpload, kJob };

struct CallResult {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  double seconds = 0;
  bool cancelled_on_purpose = false;
};

CallResult RunOne(v1::Compressor::Stub* stub, const Upload& upload, CancelAt cancel) {
  CallResult out;
  const auto start = Clock::now();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  auto stream = stub->Compress(&ctx);
  const size_t half = upload.messages.size() / 2;
  for (size_t i = 0; i < upload.messages.size(); ++i) {
    if (cancel == CancelAt::kUpload && i == half) {
      ctx.TryCancel();
      out.cancelled_on_purpose = true;
      break;
    }
    if (!stream->Write(upload.messages[i])) break;
  }
  if (!out.cancelled_on_purpose) stream->WritesDone();
  v1::CompressResponse r;
  int summaries = 0;
  std::map<uint32_t, uint64_t> announced, received;
  while (stream->Read(&r)) {
    if (cancel == CancelAt::kJob && r.has_progress() && r.progress().phase() == v1::Progress::COMPRESS) {
      ctx.TryCancel();
      out.cancelled_on_purpose = true;
    }
    if (r.has_summary()) ++summaries;
    if (r.has_artifact_file()) announced[r.artifact_file().file_index()] = r.artifact_file().info().size();
    if (r.has_artifact_chunk()) received[r.artifact_chunk().file_index()] += r.artifact_chunk().data().size();
  }
  grpc::Status status = stream->Finish();
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  out.code = status.error_code();
  out.message = status.error_message();
  if (status.ok() && (summaries != 1 || announced.empty() || announced != received)) {
    out.code = grpc::StatusCode::DATA_LOSS;
    out.message = absl::StrCat("call returned OK with ", summaries, " summaries and an incomplete artifact");
  }
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

int Run(const Args& args) {
  auto server = args.Value("server");
  auto model = args.Value("model");
  if (!server || !model) {
    std::fprintf(stderr, "coremlz-load: --server and --model are required\n%s", kUsage);
    return 2;
  }
  auto get_int = [&](const char* flag, int64_t def) -> int64_t {
    auto v = args.Int(flag);
    return v.ok() && v->has_value() ? **v : def;
  };
  const int streams = static_cast<int>(get_int("streams", 64));
  const double seconds = args.Double("seconds").value_or(std::nullopt).value_or(60);
  const int64_t max_calls = get_int("max-calls", 0);
  const int channels = static_cast<int>(std::max<int64_t>(1, get_int("channels", 8)));
  const int64_t cancel_every = get_int("cancel-every", 0);
  const int pid = static_cast<int>(get_int("pid", 0));
  const double settle = args.Double("settle-seconds").value_or(std::nullopt).value_or(3);
  const std::string config = args.Value("config").value_or("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n");

  auto upload = PrepareUpload(*model, config);
  if (!upload.ok()) {
    std::fprintf(stderr, "coremlz-load: %s\n", std::string(upload.status().message()).c_str());
    return 1;
  }
  std::vector<std::unique_ptr<v1::Compressor::Stub>> stubs;
  for (int c = 0; c < channels; ++c) {
    grpc::ChannelArguments ch;
    ch.SetMaxReceiveMessageSize(8 << 20);
    ch.SetMaxSendMessageSize(8 << 20);
    ch.SetInt("coremlz.load.channel", c);  // distinct args: a connection of its own
    stubs.push_back(v1::Compressor::NewStub(
        grpc::CreateCustomChannel(*server, grpc::InsecureChannelCredentials(), ch)));
  }

  ProcSample before, after;
  std::vector<ProcSample> during;
  if (pid > 0 && !SampleProc(pid, &before)) {
    std::fprintf(stderr, "coremlz-load: cannot read /proc/%d\n", pid);
    return 1;
  }

  std::mutex mu;
  std::vector<double> latencies;
  std::map<std::string, int64_t> errors;  // "CODE: message" -> count
  int64_t ok = 0, cancelled = 0;
  std::atomic<int64_t> started{0};
  std::atomic<bool> stop{false};
  const auto begin = Clock::now();
  const auto end = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));

  std::vector<std::thread> threads;
  for (int t = 0; t < streams; ++t) {
    threads.emplace_back([&, t] {
      v1::Compressor::Stub* stub = stubs[t % channels].get();
      for (int64_t n = 1; !stop.load() && Clock::now() < end; ++n) {
        if (max_calls > 0 && started.fetch_add(1) >= max_calls) break;
        CancelAt cancel = CancelAt::kNever;
        if (cancel_every > 0 && n % cancel_every == 0) cancel = (n / cancel_every) % 2 ? CancelAt::kUpload : CancelAt::kJob;
        CallResult r = RunOne(stub, *upload, cancel);
        std::lock_guard<std::mutex> lock(mu);
        if (r.code == grpc::StatusCode::OK) {
          ++ok;
          latencies.push_back(r.seconds);
        } else if (r.cancelled_on_purpose && r.code == grpc::StatusCode::CANCELLED) {
          ++cancelled;
        } else {
          ++errors[absl::StrCat(static_cast<int>(r.code), ": ", r.message.substr(0, 200))];
        }
      }
    });
  }
  // Sample the server once a second while the load runs.
  std::thread sampler([&] {
    while (!stop.load()) {
      ProcSample s;
      if (pid > 0 && SampleProc(pid, &s)) {
        std::lock_guard<std::mutex> lock(mu);
        during.push_back(s);
      }
      for (int i = 0; i < 10 && !stop.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  stop = true;
  sampler.join();
  stubs.clear();  // close the connections before the idle sample
  if (pid > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(settle));
    SampleProc(pid, &after);
  }

  int64_t error_count = 0;
  for (const auto& [_, n] : errors) error_count += n;
  ProcSample peak;
  for (const ProcSample& s : during) {
    peak.rss_mb = std::max(peak.rss_mb, s.rss_mb);
    peak.threads = std::max(peak.threads, s.threads);
    peak.fds = std::max(peak.fds, s.fds);
  }
  // RSS after the first tenth of the run: allocator pools and gRPC buffers
  // are warm by then; a leak shows as growth from there to the end.
  const double warm_rss = during.empty() ? 0 : during[during.size() / 10].rss_mb;
  const double last_rss = during.empty() ? 0 : during.back().rss_mb;

  std::printf("calls: %lld ok, %lld cancelled on purpose, %lld errors in %.1f s (%d streams)\n",
              static_cast<long long>(ok), static_cast<long long>(cancelled), static_cast<long long>(error_count), elapsed,
              streams);
  std::printf("throughput: %.2f calls/s, upload %.1f MB/s\n", ok / elapsed,
              (ok + cancelled) * upload->bytes / 1e6 / elapsed);
  std::printf("latency: p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms\n", 1000 * Percentile(latencies, 0.5),
              1000 * Percentile(latencies, 0.9), 1000 * Percentile(latencies, 0.99), 1000 * Percentile(latencies, 1.0));
  for (const auto& [what, n] : errors) std::printf("error x%lld: %s\n", static_cast<long long>(n), what.c_str());
  if (pid > 0) {
    std::printf("server RSS: %.1f MB idle before, %.1f MB warm, %.1f MB at the end of the load, %.1f MB peak (VmHWM %.1f MB), %.1f MB idle after\n",
                before.rss_mb, warm_rss, last_rss, peak.rss_mb, after.hwm_mb, after.rss_mb);
    std::printf("server fds: %d before, %d peak, %d after; threads: %d before, %d peak, %d after\n", before.fds,
                peak.fds, after.fds, before.threads, peak.threads, after.threads);
  }

  if (auto path = args.Value("json")) {
    JsonWriter j;
    j.BeginObject();
    j.Key("streams").Int(streams);
    j.Key("seconds").Double(elapsed);
    j.Key("model_bytes").Int(static_cast<int64_t>(upload->bytes));
    j.Key("calls_ok").Int(ok);
    j.Key("calls_cancelled").Int(cancelled);
    j.Key("errors").Int(error_count);
    j.Key("calls_per_second").Double(ok / elapsed);
    j.Key("latency_ms").BeginObject();
    j.Key("p50").Double(1000 * Percentile(latencies, 0.5));
    j.Key("p90").Double(1000 * Percentile(latencies, 0.9));
    j.Key("p99").Double(1000 * Percentile(latencies, 0.99));
    j.Key("max").Double(1000 * Percentile(latencies, 1.0));
    j.EndObject();
    if (pid > 0) {
      j.Key("server").BeginObject();
      j.Key("rss_mb_before").Double(before.rss_mb);
      j.Key("rss_mb_warm").Double(warm_rss);
      j.Key("rss_mb_end_of_load").Double(last_rss);
      j.Key("rss_mb_peak").Double(peak.rss_mb);
      j.Key("vmhwm_mb").Double(after.hwm_mb);
      j.Key("rss_mb_after").Double(after.rss_mb);
      j.Key("fds_before").Int(before.fds);
      j.Key("fds_peak").Int(peak.fds);
      j.Key("fds_after").Int(after.fds);
      j.Key("threads_before").Int(before.threads);
      j.Key("threads_peak").Int(peak.threads);
      j.Key("threads_after").Int(after.threads);
      j.EndObject();
    }
    j.EndObject();
    std::ofstream(*path) << j.str() << "\n";
  }
  return error_count == 0 ? 0 : 1;
}

}  // namespace
}  // namespace coremlz::load

int main(int argc, char** argv) {
  std::vector<std::string> argv_strings(argv + 1, argv + argc);
  auto args = coremlz::Args::Parse(argv_strings,
                                        {"server", "model", "config", "streams", "seconds", "max-calls", "channels",
                                         "cancel-every", "pid", "settle-seconds", "json"},
                                        {"help"});
  if (!args.ok()) {
    std::fprintf(stderr, "coremlz-load: %s\n%s", std::string(args.status().message()).c_str(), coremlz::load::kUsage);
    return 2;
  }
  if (args->Bool("help")) {
    std::fputs(coremlz::load::kUsage, stdout);
    return 0;
  }
  return coremlz::load::Run(*args);
}
