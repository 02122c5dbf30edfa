// The result cache through a real coremlzd and the real CLI: a repeated call
// is answered from disk byte for byte without a job, a damaged entry is
// detected and recomputed, eviction holds the bound, identical calls in
// flight compress once, and the bypass flag computes.
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/http_get.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

namespace fs = std::filesystem;

std::string Cli() { return BinaryPath("clients/coremlz"); }
std::string Model() { return SourceDir() + "/models/silero_vad/silero-vad-unified-v6.0.0.mlpackage"; }

std::string TreeText(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir).string());
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) absl::StrAppend(&out, f, "\n", ReadFile(dir + "/" + f, 64 << 20).value_or("?"), "\n");
  return out;
}

// The value of one metric line (exact series text) in a /metrics scrape.
double Metric(int port, const std::string& series) {
  const std::string body = HttpGet(port, "/metrics");
  double total = 0;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double v = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) {
        total += v;
        found = true;
      }
    }
  }
  return found ? total : -1;
}

// A counter summed over its labels.
double Total(int port, const std::string& name) {
  const std::string body = HttpGet(port, "/metrics");
  double total = 0;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (!absl::StartsWith(line, name + "{")) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) total += v;
  }
  return total;
}

// Jobs the server actually ran (every technique and outcome).
double Jobs(int port) { return Total(port, "coremlz_jobs_total"); }
// Plans the server actually computed.
double Plans(int port) { return Total(port, "coremlz_plans_total"); }

class ResultCacheServiceTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address",
                                     "127.0.0.1:0", "--cache-dir", scratch_.Join("cache"), "--workers", "2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    daemon_ = std::make_unique<Daemon>(argv, "coremlzd: serving gRPC on port ");
    ASSERT_TRUE(daemon_->ok()) << daemon_->log();
    metrics_ = daemon_->NumberAfter("metrics on port ");
  }
  CommandResult Compress(const std::string& out, std::vector<std::string> technique = {"--palettize", "4"},
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {Cli(), "compress", Model(), "-o", scratch_.Join(out), "--server",
                                     absl::StrCat("127.0.0.1:", daemon_->port()), "--quiet", "--force"};
    argv.insert(argv.end(), technique.begin(), technique.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProgram(argv);
  }
  // The leader stores its result after answering (storing hashes the
  // artifact off the call's path), so a test that reads the cache directory
  // itself waits for the entry to be published.
  void WaitForMetric(const std::string& series, double at_least) {
    for (int i = 0; i < 600 && Metric(metrics_, series) < at_least; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_GE(Metric(metrics_, series), at_least) << series << ": the result was never stored";
  }
  void WaitForEntries(double n) { WaitForMetric("coremlz_cache_entries", n); }
  // `coremlz plan --server` on a small transformer, every output written to `dir`.
  CommandResult Plan(const std::string& dir, const std::string& bits, std::vector<std::string> extra = {}) {
    const std::string out = scratch_.Join(dir);
    EXPECT_TRUE(MakeDirectories(out).ok());
    std::vector<std::string> argv = {
        Cli(), "plan", ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage",
        "--bits", bits, "--candidates", "palettize8,palettize4,keep", "--samples", "1",
        "--config", out + "/plan.yaml", "--report", out + "/plan.json", "--apply", out + "/out.mlpackage",
        "--server", absl::StrCat("127.0.0.1:", daemon_->port()), "--deadline", "600"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProgram(argv, absl::Seconds(900));
  }
  std::string Output(const std::string& dir, const std::string& file) {
    return ReadFile(scratch_.Join(dir) + "/" + file, 64 << 20).value_or("missing");
  }
  double Outcome(const std::string& outcome) {
    return Metric(metrics_, absl::StrCat("coremlz_cache_requests_total{outcome=\"", outcome, "\"}"));
  }

  ScratchDir scratch_;
  std::unique_ptr<Daemon> daemon_;
  int metrics_ = 0;
};

TEST_F(ResultCacheServiceTest, ASecondIdenticalCallIsServedFromTheCacheByteForByte) {
  Start();
  auto first = Compress("a.mlpackage");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const double jobs = Jobs(metrics_);
  EXPECT_EQ(jobs, 1);
  auto second = Compress("b.mlpackage");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(TreeText(scratch_.Join("a.mlpackage")), TreeText(scratch_.Join("b.mlpackage")));
  EXPECT_EQ(Jobs(metrics_), jobs) << "no job ran for the hit";
  EXPECT_EQ(Outcome("hit"), 1);
  EXPECT_EQ(Outcome("miss"), 1);
  // The report comes back too, the same as computed.
  auto report = Compress("c.mlpackage", {"--palettize", "4"}, {"--report", scratch_.Join("r.json")});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(ReadFile(scratch_.Join("r.json"), 1 << 20).value_or("").find("\"weights_compressed\": 7"), std::string::npos);
  // A different config is a different entry; --no-cache computes.
  ASSERT_EQ(Compress("d.mlpackage", {"--palettize", "6"}).exit_code, 0);
  EXPECT_EQ(Jobs(metrics_), jobs + 1);
  ASSERT_EQ(Compress("e.mlpackage", {"--palettize", "4"}, {"--no-cache"}).exit_code, 0);
  EXPECT_EQ(Jobs(metrics_), jobs + 2);
  EXPECT_EQ(Outcome("bypass"), 1);
  EXPECT_EQ(TreeText(scratch_.Join("a.mlpackage")), TreeText(scratch_.Join("e.mlpackage")));
}

TEST_F(ResultCacheServiceTest, ADamagedEntryIsDetectedAndRecomputed) {
  Start();
  ASSERT_EQ(Compress("a.mlpackage").exit_code, 0);
  WaitForEntries(1);
  // Flip one byte of the cached weight file (break any hard link first).
  std::string weight;
  for (const auto& e : fs::recursive_directory_iterator(scratch_.Join("cache")))
    if (e.path().filename() == "weight.bin") weight = e.path().string();
  ASSERT_FALSE(weight.empty());
  std::string bytes = *ReadFile(weight, 64 << 20);
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(RemoveAll(weight).ok());
  ASSERT_TRUE(WriteFileAtomically(weight, bytes).ok());
  const double jobs = Jobs(metrics_);
  auto again = Compress("b.mlpackage");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Outcome("corrupt"), 1);
  EXPECT_EQ(Jobs(metrics_), jobs + 1) << "recomputed";
  EXPECT_EQ(TreeText(scratch_.Join("a.mlpackage")), TreeText(scratch_.Join("b.mlpackage")));
  // ... and the fresh result is cached again.
  ASSERT_EQ(Compress("c.mlpackage").exit_code, 0);
  EXPECT_EQ(Outcome("hit"), 1);
}

TEST_F(ResultCacheServiceTest, EvictionKeepsTheBoundAndAnEvictedEntryIsRecomputed) {
  // Room for one result of this model, not two.
  Start({"--cache-max-bytes", "250K"});
  ASSERT_EQ(Compress("a.mlpackage", {"--palettize", "4"}).exit_code, 0);
  WaitForEntries(1);  // else a late store of a's could evict b's
  ASSERT_EQ(Compress("b.mlpackage", {"--palettize", "2"}).exit_code, 0);
  WaitForMetric("coremlz_cache_evictions_total", 1);
  EXPECT_LE(Metric(metrics_, "coremlz_cache_bytes"), 250 * 1024);
  const double jobs = Jobs(metrics_);
  ASSERT_EQ(Compress("c.mlpackage", {"--palettize", "4"}).exit_code, 0);
  EXPECT_EQ(Jobs(metrics_), jobs + 1) << "the evicted 4-bit result is computed again";
  EXPECT_EQ(TreeText(scratch_.Join("a.mlpackage")), TreeText(scratch_.Join("c.mlpackage")));
}

TEST_F(ResultCacheServiceTest, IdenticalCallsInFlightCompressOnce) {
  // Slow jobs, so the calls overlap for certain.
  Start({"--test-job-delay-ms", "2000"});
  std::vector<CommandResult> results(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { results[i] = Compress(absl::StrCat("p", i, ".mlpackage")); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Jobs(metrics_), 1) << "one job for three identical calls";
  EXPECT_EQ(Outcome("hit"), 2);
  EXPECT_EQ(TreeText(scratch_.Join("p0.mlpackage")), TreeText(scratch_.Join("p2.mlpackage")));
}

TEST_F(ResultCacheServiceTest, EntriesSurviveARestart) {
  Start();
  ASSERT_EQ(Compress("a.mlpackage").exit_code, 0);
  WaitForEntries(1);
  ASSERT_EQ(daemon_->Stop(SIGTERM), 0);
  Start();
  ASSERT_EQ(Compress("b.mlpackage").exit_code, 0);
  EXPECT_EQ(Outcome("hit"), 1);
  EXPECT_EQ(Jobs(metrics_), 0);
}

TEST_F(ResultCacheServiceTest, APlanIsServedFromTheCacheLikeACompression) {
  Start();
  auto first = Plan("p1", "5");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(Plans(metrics_), 1);
  auto second = Plan("p2", "5");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Plans(metrics_), 1) << "no plan ran for the hit";
  EXPECT_EQ(Outcome("hit"), 1);
  // Served, not recomputed: even the report's wall-clock fields are the
  // first call's; the applied model is byte for byte the same.
  EXPECT_EQ(Output("p1", "plan.json"), Output("p2", "plan.json"));
  EXPECT_EQ(Output("p1", "plan.yaml"), Output("p2", "plan.yaml"));
  EXPECT_EQ(TreeText(scratch_.Join("p1/out.mlpackage")), TreeText(scratch_.Join("p2/out.mlpackage")));
  // Another target is another plan; --no-cache plans again, to the same
  // config (the plan is deterministic) and refreshes the entry.
  ASSERT_EQ(Plan("p3", "6").exit_code, 0);
  EXPECT_EQ(Plans(metrics_), 2);
  EXPECT_NE(Output("p1", "plan.yaml"), Output("p3", "plan.yaml"));
  auto bypass = Plan("p4", "5", {"--no-cache"});
  ASSERT_EQ(bypass.exit_code, 0) << bypass.err;
  EXPECT_EQ(Plans(metrics_), 3);
  EXPECT_EQ(Outcome("bypass"), 1);
  EXPECT_EQ(Output("p1", "plan.yaml"), Output("p4", "plan.yaml"));
  // A Compress call never answers a Plan's key, nor the reverse: the hit
  // count is unchanged by a first compression.
  ASSERT_EQ(Compress("c.mlpackage").exit_code, 0);
  EXPECT_EQ(Outcome("hit"), 1);
}

TEST_F(ResultCacheServiceTest, BadFlagsAreRefused) {
  auto r = RunProgram({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--cache-max-bytes", "lots"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--cache-max-bytes"), std::string::npos) << r.err;
  auto no_dir = RunProgram({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--cache-max-bytes", "1G"});
  EXPECT_NE(no_dir.exit_code, 0);
  EXPECT_NE(no_dir.err.find("--cache-dir"), std::string::npos) << no_dir.err;
}

}  // namespace
}  // namespace coremlz::testing
