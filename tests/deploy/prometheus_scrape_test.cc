// A real Prometheus (the Debian package) scraping a live coremlzd front and a
// coremlz-worker on loopback while real compressions run through them, with
// the project's alert rules loaded: the series the dashboards and alerts
// depend on arrive with the right names, labels and values, and every rule
// evaluates cleanly against them.
#include <signal.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_util.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing::deploy {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int kCompressions = 3;

std::string Golden() { return GoldenDir() + "/ios16_original.mlpackage"; }

uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

class PrometheusScrapeTest : public ::testing::Test {
 protected:
  // GET /api/v1/<path> as a Struct; empty Struct when unavailable.
  Struct Api(const std::string& path) {
    int status = 0;
    const std::string body = HttpGet(prom_port_, "/api/v1/" + path, &status);
    Struct s;
    if (status != 200 || !google::protobuf::util::JsonStringToMessage(body, &s).ok()) return Struct();
    return s;
  }
  // The instant vector of a PromQL query: (labels, value) per series.
  std::vector<std::pair<std::map<std::string, std::string>, double>> Query(const std::string& promql) {
    std::vector<std::pair<std::map<std::string, std::string>, double>> out;
    Struct s = Api("query?query=" + UrlEncode(promql));
    if (s.fields().count("status") == 0 || s.fields().at("status").string_value() != "success") return out;
    for (const Value& r : s.fields().at("data").struct_value().fields().at("result").list_value().values()) {
      std::map<std::string, std::string> labels;
      for (const auto& [k, v] : r.struct_value().fields().at("metric").struct_value().fields()) labels[k] = v.string_value();
      const auto& pair = r.struct_value().fields().at("value").list_value().values();
      out.emplace_back(labels, std::stod(pair[1].string_value()));
    }
    return out;
  }
  // The single value of a query that should return one series (NaN if not).
  double Scalar(const std::string& promql) {
    auto v = Query(promql);
    return v.size() == 1 ? v[0].second : std::nan("");
  }
  // Polls until `promql` returns exactly `want` (bounded), returns the last value.
  double WaitFor(const std::string& promql, double want, absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time end = absl::Now() + timeout;
    double got = std::nan("");
    while (absl::Now() < end) {
      got = Scalar(promql);
      if (got == want) return got;
      absl::SleepFor(absl::Milliseconds(250));
    }
    return got;
  }

  int prom_port_ = 0;
};

TEST_F(PrometheusScrapeTest, ScrapesFrontAndWorkerDuringRealCompressions) {
  const std::string prometheus = FindProgram("prometheus");
  ASSERT_FALSE(prometheus.empty()) << "prometheus not found: run scripts/install-deps.sh (Debian package \"prometheus\")";
  ASSERT_TRUE(PathExists(Golden())) << Golden();
  ScratchDir scratch;

  Daemon worker({BinaryPath("workers/coremlz-worker"), "--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0",
                 "--workers", "2"},
                "coremlz-worker: serving gRPC on port ");
  ASSERT_TRUE(worker.ok()) << worker.log();
  const int worker_metrics = worker.NumberAfter("metrics on port ");
  Daemon front({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0",
                "--remote-workers", absl::StrCat("127.0.0.1:", worker.port())},
               "coremlzd: serving gRPC on port ");
  ASSERT_TRUE(front.ok()) << front.log();
  const int front_metrics = front.NumberAfter("metrics on port ");
  ASSERT_GT(worker_metrics, 0);
  ASSERT_GT(front_metrics, 0);

  // The same job/component labelling as deploy/prometheus/prometheus.yml's
  // static example, scraped every second, with the project's alert rules.
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("alerts.yml"), ReadText(DeployDir() + "/prometheus/alerts.yml")).ok());
  const std::string config = absl::StrCat(R"(global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: coremlz-front
    static_configs:
      - targets: ["127.0.0.1:)", front_metrics, R"("]
        labels: {component: front}
  - job_name: coremlz-worker
    static_configs:
      - targets: ["127.0.0.1:)", worker_metrics, R"("]
        labels: {component: worker}
)");
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("prometheus.yml"), config).ok());
  Daemon prom({prometheus, "--config.file=" + scratch.Join("prometheus.yml"), "--storage.tsdb.path=" + scratch.Join("data"),
               "--web.listen-address=127.0.0.1:0", "--log.level=info"},
              "msg=\"Listening on\" address=127.0.0.1:", absl::Seconds(30));
  ASSERT_TRUE(prom.ok()) << prom.log();
  prom_port_ = prom.port();
  {
    const absl::Time end = absl::Now() + absl::Seconds(30);
    int status = 0;
    while (absl::Now() < end) {
      HttpGet(prom_port_, "/-/ready", &status);
      if (status == 200) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_EQ(status, 200) << "Prometheus never got ready\n" << prom.log();
  }
  // Both targets up before any traffic.
  EXPECT_EQ(WaitFor(R"(sum(up{job=~"coremlz-front|coremlz-worker"}))", 2), 2) << prom.log();

  // Real compressions through the front (which runs them on the worker).
  const std::string server = absl::StrCat("127.0.0.1:", front.port());
  for (int i = 0; i < kCompressions; ++i) {
    auto r = RunProgram({BinaryPath("clients/coremlz"), "compress", Golden(), "-o", scratch.Join(absl::StrCat("out", i, ".mlpackage")),
                         "--palettize", "4", "--weight-threshold", "512", "--server", server},
                        absl::Seconds(60));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << front.log() << worker.log();
  }

  // Series as Prometheus stored them (bounded waits: scraped every second).
  EXPECT_EQ(WaitFor(R"(sum(coremlz_jobs_total{job="coremlz-worker", component="worker", outcome="ok", technique="palettize"}))",
                    kCompressions),
            kCompressions)
      << "the worker's jobs";
  EXPECT_EQ(WaitFor(R"(grpc_server_handled_total{job="coremlz-front", grpc_service="coremlz.v1.Compressor", grpc_method="Compress", grpc_type="bidi_stream", grpc_code="OK"})",
                    kCompressions),
            kCompressions)
      << "the front's calls";
  EXPECT_EQ(WaitFor(R"(grpc_server_handled_total{job="coremlz-worker", grpc_service="coremlz.v1.Worker", grpc_method="Run", grpc_code="OK"})",
                    kCompressions),
            kCompressions)
      << "the front -> worker calls";
  EXPECT_EQ(WaitFor(R"(sum(coremlz_jobs_total{job="coremlz-front", outcome="ok"}))", kCompressions), kCompressions);
  EXPECT_EQ(WaitFor(R"(coremlz_job_seconds_count{job="coremlz-front", technique="palettize"})", kCompressions), kCompressions);
  EXPECT_EQ(WaitFor(R"(grpc_server_started_total{job="coremlz-front", grpc_method="Compress"})", kCompressions), kCompressions);
  const double upload = static_cast<double>(TreeBytes(Golden()));
  EXPECT_EQ(WaitFor(R"(coremlz_upload_bytes_total{job="coremlz-front"})", kCompressions * upload), kCompressions * upload)
      << "every uploaded byte counted once";
  uint64_t artifact = 0;
  for (int i = 0; i < kCompressions; ++i) artifact += TreeBytes(scratch.Join(absl::StrCat("out", i, ".mlpackage")));
  // Every exact-value check waits for a scrape taken after the state settled:
  // a scrape from just before the last call finished (or the worker's busy
  // gauge fell back) is correct for its instant, not for the end state.
  EXPECT_EQ(WaitFor(R"(coremlz_artifact_bytes_total{job="coremlz-front"})", static_cast<double>(artifact)),
            static_cast<double>(artifact));
  EXPECT_EQ(WaitFor(R"(coremlz_compression_ratio_count{job="coremlz-front"})", kCompressions), kCompressions);
  const double ratio = Scalar(R"(coremlz_compression_ratio_sum{job="coremlz-front"} / coremlz_compression_ratio_count{job="coremlz-front"})");
  EXPECT_GT(ratio, 3.5) << "4-bit palettes from fp16 weights";
  EXPECT_LT(ratio, 4.5);
  EXPECT_EQ(WaitFor(R"(coremlz_queue_depth{job="coremlz-front"})", 0), 0);
  EXPECT_EQ(WaitFor(R"(coremlz_workers_busy{job="coremlz-worker"})", 0), 0);
  // The latency histogram answers the alert's quantile query.
  const double p99 = Scalar(R"(histogram_quantile(0.99, sum by (le) (coremlz_job_seconds_bucket{job="coremlz-front"})))");
  EXPECT_GT(p99, 0);
  EXPECT_LT(p99, 60);
  // Nothing failed, so the alert's error selector is empty.
  EXPECT_TRUE(Query(R"(grpc_server_handled_total{job="coremlz-front", grpc_service="coremlz.v1.Compressor", grpc_code!="OK"})").empty());

  // The project's rules all evaluate without error against these series, and
  // none fires (the front is up, jobs succeed, queues are empty).
  {
    const absl::Time end = absl::Now() + absl::Seconds(20);
    std::vector<std::string> problems;
    int rules = 0;
    while (absl::Now() < end) {
      problems.clear();
      rules = 0;
      Struct s = Api("rules");
      if (s.fields().count("data")) {
        for (const Value& g : s.fields().at("data").struct_value().fields().at("groups").list_value().values()) {
          for (const Value& r : g.struct_value().fields().at("rules").list_value().values()) {
            const auto& f = r.struct_value().fields();
            ++rules;
            const std::string health = f.at("health").string_value();
            if (health != "ok") {
              problems.push_back(f.at("name").string_value() + ": " + health +
                                 (f.count("lastError") ? " " + f.at("lastError").string_value() : ""));
            }
            if (f.count("state") && f.at("state").string_value() != "inactive") {
              problems.push_back(f.at("name").string_value() + " is " + f.at("state").string_value());
            }
          }
        }
      }
      if (rules > 0 && problems.empty()) break;
      absl::SleepFor(absl::Milliseconds(250));
    }
    EXPECT_EQ(rules, 7) << prom.log();
    EXPECT_TRUE(problems.empty()) << absl::StrJoin(problems, "\n");
  }

  // Stop everything: the worker first makes its target go down in Prometheus.
  EXPECT_EQ(worker.Stop(SIGTERM), 0) << worker.log();
  EXPECT_EQ(WaitFor(R"(up{job="coremlz-worker"})", 0, absl::Seconds(15)), 0) << "a stopped worker shows as down";
  EXPECT_EQ(front.Stop(SIGTERM), 0) << front.log();
  EXPECT_EQ(prom.Stop(SIGTERM), 0) << prom.log();
}

}  // namespace
}  // namespace coremlz::testing::deploy
