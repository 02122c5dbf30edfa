// The Plan RPC through real processes: `coremlz plan --server` against a
// coremlzd gives the same config, report (but for wall-clock times), Pareto
// SVG, table and applied model as the embedded command; the planner's
// INVALID_ARGUMENT reaches the client unchanged; a deadline stops a plan
// promptly; the trials are counted in /metrics.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/http_get.h"
#include "tests/testing/process.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

std::string Cli() { return BinaryPath("clients/coremlz"); }
std::string Transformer() {
  return ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage";
}
constexpr char kCandidates[] = "palettize8,palettize4,palettize2,keep";

std::unique_ptr<Daemon> StartFront(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address",
                                   "127.0.0.1:0", "--workers", "2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto d = std::make_unique<Daemon>(argv, "serving gRPC on port ");
  EXPECT_TRUE(d->ok()) << d->log();
  return d;
}

std::string Slurp(const std::string& path) {
  auto s = ReadFile(path);
  EXPECT_TRUE(s.ok()) << path << ": " << s.status();
  return s.ok() ? *s : "";
}

// The report without its wall-clock fields: "seconds" and "phase_seconds".
std::string WithoutTimes(const std::string& json) {
  std::string out = std::regex_replace(json, std::regex(R"re("phase_seconds":\s*\{[^{}]*\},?)re"), "");
  out = std::regex_replace(out, std::regex(R"re("seconds":\s*[-+0-9.eE]+,?)re"), "");
  return out;
}

// The table's first line ends with the plan's wall time ("..., 2 samples, 3.4 s").
std::string WithoutTableTime(const std::string& out) {
  return std::regex_replace(out, std::regex(R"re(samples, [0-9.]+ s\n)re"), "samples, T s\n");
}

std::vector<std::string> PlanArgs(const std::string& dir, const std::string& target_flag, const std::string& target) {
  return {Cli(),       "plan",          Transformer(),          target_flag,           target,
          "--candidates", kCandidates,  "--samples",            "2",                   "--config",
          dir + "/plan.yaml", "--report", dir + "/plan.json", "--pareto",            dir + "/plan.svg",
          "--apply",   dir + "/out.mlpackage"};
}

TEST(PlanService, ServerGivesTheEmbeddedOutputs) {
  ScratchDir scratch;
  auto front = StartFront();
  ASSERT_TRUE(front->ok());
  const std::string embedded = scratch.Join("embedded"), remote = scratch.Join("remote");
  ASSERT_TRUE(MakeDirectories(embedded).ok());
  ASSERT_TRUE(MakeDirectories(remote).ok());

  auto e = RunProgram(PlanArgs(embedded, "--bits", "5"), absl::Seconds(600));
  ASSERT_EQ(e.exit_code, 0) << e.err;
  std::vector<std::string> argv = PlanArgs(remote, "--bits", "5");
  argv.insert(argv.end(), {"--server", absl::StrCat("127.0.0.1:", front->port())});
  auto r = RunProgram(argv, absl::Seconds(600));
  ASSERT_EQ(r.exit_code, 0) << r.err << front->log();

  const std::string yaml = Slurp(embedded + "/plan.yaml");
  ASSERT_FALSE(yaml.empty());
  EXPECT_EQ(Slurp(remote + "/plan.yaml"), yaml);
  const std::string report = Slurp(embedded + "/plan.json");
  ASSERT_NE(report.find("\"phase_seconds\""), std::string::npos) << "the timing fields the comparison drops";
  EXPECT_NE(WithoutTimes(report), report);
  EXPECT_EQ(WithoutTimes(Slurp(remote + "/plan.json")), WithoutTimes(report));
  EXPECT_NE(report.find("\"measured_gain_db\""), std::string::npos) << "the uniform comparisons travel too";
  EXPECT_EQ(Slurp(remote + "/plan.svg"), Slurp(embedded + "/plan.svg"));
  // The applied models, file for file, and the messages around them.
  const auto tree = ReadTree(embedded + "/out.mlpackage");
  ASSERT_FALSE(tree.empty());
  EXPECT_EQ(ReadTree(remote + "/out.mlpackage"), tree);
  std::string expected_out = WithoutTableTime(e.out);
  expected_out = absl::StrReplaceAll(expected_out, {{embedded, remote}});
  EXPECT_EQ(WithoutTableTime(r.out), expected_out);

  // Every trial the plan ran was counted by the server.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(report, m, std::regex(R"re("trials_run":\s*([0-9]+))re")));
  const int trials = std::stoi(m[1]);
  ASSERT_TRUE(std::regex_search(report, m, std::regex(R"re("trials_pruned":\s*([0-9]+))re")));
  const int pruned = std::stoi(m[1]);
  const std::string scrape = HttpGet(front->NumberAfter("metrics on port "), "/metrics");
  EXPECT_EQ(MetricValue(scrape, "coremlz_plan_trials_total{outcome=\"measured\"}"), trials) << scrape;
  EXPECT_EQ(MetricValue(scrape, "coremlz_plan_trials_total{outcome=\"pruned\"}"), pruned);
  EXPECT_EQ(MetricValue(scrape, "coremlz_plan_trials_total{outcome=\"rerun\"}"), 0);
  EXPECT_EQ(MetricValue(scrape, "coremlz_plans_total{outcome=\"ok\"}"), 1);
  EXPECT_EQ(MetricValue(scrape, "coremlz_plan_seconds_count{outcome=\"ok\"}"), 1);
}

TEST(PlanService, PlannerRefusalsPassThrough) {
  auto front = StartFront();
  ASSERT_TRUE(front->ok());
  for (const char* bits : {"40", "0.5"}) {
    auto e = RunProgram({Cli(), "plan", Transformer(), "--bits", bits, "--candidates", kCandidates, "--samples", "1"},
                        absl::Seconds(300));
    auto r = RunProgram({Cli(), "plan", Transformer(), "--bits", bits, "--candidates", kCandidates, "--samples", "1",
                         "--server", absl::StrCat("127.0.0.1:", front->port())},
                        absl::Seconds(300));
    EXPECT_EQ(e.exit_code, 2) << e.err;
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err, e.err) << "INVALID_ARGUMENT's message, unchanged";
  }
  // What only the server checks: the header's own fields, before any upload.
  auto stub = v1::Compressor::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", front->port()), grpc::InsecureChannelCredentials()));
  for (const auto& [kind, candidates, expected] :
       std::vector<std::tuple<v1::PlanTarget::Kind, std::string, std::string>>{
           {v1::PlanTarget::KIND_UNSPECIFIED, "", "target kind"}, {v1::PlanTarget::BITS, "palettize5x", "palettize5x"}}) {
    grpc::ClientContext ctx;
    auto stream = stub->Plan(&ctx);
    v1::PlanRequest header;
    header.mutable_header()->mutable_target()->set_kind(kind);
    header.mutable_header()->mutable_target()->set_value(4);
    header.mutable_header()->set_candidates(candidates);
    ASSERT_TRUE(stream->Write(header));
    stream->WritesDone();
    v1::PlanResponse r;
    while (stream->Read(&r)) {
    }
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find(expected), std::string::npos) << s.error_message();
  }
}

// The header's numeric fields are checked before any upload, and the
// messages say exactly what is allowed and what was given.
TEST(PlanService, HeaderRangeErrorsSayWhatIsAllowed) {
  auto front = StartFront();
  ASSERT_TRUE(front->ok());
  auto stub = v1::Compressor::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", front->port()), grpc::InsecureChannelCredentials()));
  struct Case {
    int samples;
    std::optional<int64_t> weight_threshold;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{{5000, std::nullopt, "samples must be 1..1000 (0: 4), not 5000"},
                                         {-1, std::nullopt, "samples must be 1..1000 (0: 4), not -1"},
                                         {2, -5, "weight_threshold must be >= 0, not -5"}}) {
    grpc::ClientContext ctx;
    auto stream = stub->Plan(&ctx);
    v1::PlanRequest header;
    header.mutable_header()->mutable_target()->set_kind(v1::PlanTarget::BITS);
    header.mutable_header()->mutable_target()->set_value(4);
    header.mutable_header()->set_samples(c.samples);
    if (c.weight_threshold) header.mutable_header()->set_weight_threshold(*c.weight_threshold);
    ASSERT_TRUE(stream->Write(header));
    stream->WritesDone();
    v1::PlanResponse r;
    bool accepted = false;
    while (stream->Read(&r)) accepted = accepted || r.has_accepted();
    grpc::Status s = stream->Finish();
    EXPECT_FALSE(accepted) << "refused before a job is made";
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_EQ(s.error_message(), c.message);
  }
}

TEST(PlanService, DeadlineStopsThePlan) {
  auto front = StartFront();
  ASSERT_TRUE(front->ok());
  // Many samples: the plan would take far longer than the deadline.
  const auto start = std::chrono::steady_clock::now();
  auto r = RunProgram({Cli(), "plan", Transformer(), "--bits", "4", "--samples", "200", "--deadline", "3", "--server",
                       absl::StrCat("127.0.0.1:", front->port())},
                      absl::Seconds(120));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_LT(seconds, 15) << "the client gives up at its deadline";
  // The server stopped the plan too: its slot is free and its job ended (the
  // next call is answered at once, and the plan counts as ended by its deadline).
  std::string scrape;
  for (int i = 0; i < 100; ++i) {
    scrape = HttpGet(front->NumberAfter("metrics on port "), "/metrics");
    if (MetricValue(scrape, "coremlz_plans_total{outcome=\"cancelled\"}") >= 1) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(MetricValue(scrape, "coremlz_plans_total{outcome=\"cancelled\"}"), 1) << scrape;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20)
      << "the job stopped within seconds of the deadline";
}

// Ctrl-C in `coremlz plan --server`: the client cancels its call and exits
// 130 without writing anything (its staged --apply output is gone, a file
// of the user's is untouched), and the server stops the plan.
TEST(PlanService, CtrlCCancelsTheServersPlan) {
  auto front = StartFront();
  ASSERT_TRUE(front->ok());
  ScratchDir scratch;
  const std::string out = scratch.Join("out");
  ASSERT_TRUE(MakeDirectories(out).ok());
  ASSERT_TRUE(WriteFileAtomically(out + "/plan.json", "before").ok());
  // Many samples: the plan would run for minutes.
  Daemon plan({Cli(), "plan", Transformer(), "--bits", "4", "--samples", "300", "--report", out + "/plan.json",
               "--apply", out + "/model.mlpackage", "--server", absl::StrCat("127.0.0.1:", front->port())},
              "a marker never printed ", absl::ZeroDuration());
  ASSERT_GT(plan.pid(), 0);
  // Let the upload end and the study begin (300 samples take far longer).
  absl::SleepFor(absl::Seconds(3));
  std::string scrape;
  EXPECT_EQ(plan.Stop(SIGINT, absl::Seconds(30)), 130) << plan.log();
  EXPECT_NE(plan.log().find("interrupted"), std::string::npos) << plan.log();
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(out)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"plan.json"}) << "no --apply output or staging directory is left";
  EXPECT_EQ(ReadFile(out + "/plan.json").value_or(""), "before");
  for (int i = 0; i < 200; ++i) {
    scrape = HttpGet(front->NumberAfter("metrics on port "), "/metrics");
    if (MetricValue(scrape, "coremlz_plans_total{outcome=\"cancelled\"}") >= 1) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(MetricValue(scrape, "coremlz_plans_total{outcome=\"cancelled\"}"), 1) << scrape;
}

}  // namespace
}  // namespace coremlz::testing
