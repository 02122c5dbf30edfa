// docs/ci.md's GitHub Actions and GitLab CI jobs, run step by step as those
// systems would run them (bash, the job's environment, in a checkout), with
// the embedded engine and against a real coremlzd - and with thresholds that
// must make the gates fail with the documented exit code.
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "yaml-cpp/yaml.h"

namespace coremlz::testing {
namespace {

// The YAML block that follows `<!-- ci-recipe: NAME -->` in docs/ci.md.
YAML::Node Recipe(const std::string& name) {
  const std::string doc = ReadFile(SourceDir() + "/docs/ci.md", 1 << 20).value_or("");
  const size_t marker = doc.find("<!-- ci-recipe: " + name + " -->");
  EXPECT_NE(marker, std::string::npos) << name;
  const size_t start = doc.find("```yaml\n", marker);
  const size_t end = doc.find("```", start + 8);
  EXPECT_NE(start, std::string::npos);
  EXPECT_NE(end, std::string::npos);
  return YAML::Load(doc.substr(start + 8, end - start - 8));
}

struct Job {
  std::map<std::string, std::string> env;
  std::vector<std::string> steps;  // shell scripts, in order
};

Job GitHubJob() {
  YAML::Node w = Recipe("github");
  Job job;
  YAML::Node compress = w["jobs"]["compress"];
  for (const auto& kv : compress["env"]) job.env[kv.first.as<std::string>()] = kv.second.as<std::string>();
  for (const auto& step : compress["steps"]) {
    if (step["run"]) job.steps.push_back(step["run"].as<std::string>());
    // `uses:` steps (checkout, artifact upload) are GitHub's own.
  }
  return job;
}

Job GitLabJob() {
  YAML::Node w = Recipe("gitlab");
  Job job;
  YAML::Node compress = w["compress-model"];
  for (const auto& kv : compress["variables"]) job.env[kv.first.as<std::string>()] = kv.second.as<std::string>();
  for (const auto& line : compress["script"]) job.steps.push_back(line.as<std::string>());
  return job;
}

std::string Quote(const std::string& s) { return "'" + absl::StrReplaceAll(s, {{"'", "'\\''"}}) + "'"; }

class CiRecipesTest : public ::testing::Test {
 protected:
  // A checkout: the repository's demo model where the jobs expect it.
  void SetUp() override {
    ASSERT_TRUE(MakeDirectories(checkout_.Join("models/silero_vad")).ok());
    CopyTree(SourceDir() + "/models/silero_vad/silero-vad-unified-v6.0.0.mlpackage",
             checkout_.Join("models/silero_vad/silero-vad-unified-v6.0.0.mlpackage"));
  }

  // Runs the steps in order, as CI does (bash -e, the job's environment with
  // `overrides`, the CLI on PATH); returns the first failing step's result.
  CommandResult RunJob(const Job& job, const std::map<std::string, std::string>& overrides, int* failed_step) {
    std::map<std::string, std::string> env = job.env;
    for (const auto& [k, v] : overrides) env[k] = v;
    std::string prologue = absl::StrCat("cd ", Quote(checkout_.path()), "\nexport PATH=",
                                        Quote(BinaryPath("clients")), ":\"$PATH\"\n");
    for (const auto& [k, v] : env) absl::StrAppend(&prologue, "export ", k, "=", Quote(v), "\n");
    *failed_step = -1;
    CommandResult last;
    for (size_t i = 0; i < job.steps.size(); ++i) {
      last = RunProgram({"/bin/bash", "-eo", "pipefail", "-c", prologue + job.steps[i]});
      if (last.exit_code != 0) {
        *failed_step = static_cast<int>(i);
        return last;
      }
    }
    return last;
  }

  ScratchDir checkout_;
};

TEST_F(CiRecipesTest, TheJobsParseAndHaveTheirSteps) {
  const Job gh = GitHubJob(), gl = GitLabJob();
  EXPECT_EQ(gh.steps.size(), 2u);
  EXPECT_EQ(gl.steps.size(), 3u);
  for (const Job* j : {&gh, &gl}) {
    for (const char* var : {"MODEL", "COREMLZ_SERVER", "MAX_SIZE", "MIN_PSNR"}) EXPECT_TRUE(j->env.count(var)) << var;
  }
}

TEST_F(CiRecipesTest, GitHubJobPassesWithTheEmbeddedEngine) {
  int failed = 0;
  auto r = RunJob(GitHubJob(), {}, &failed);
  ASSERT_EQ(failed, -1) << "step " << failed << " exit " << r.exit_code << ": " << r.err;
  for (const char* f : {"out/model-8bit.mlpackage/Manifest.json", "out/report.json", "out/report.html", "out/compare.json"}) {
    EXPECT_TRUE(PathExists(checkout_.Join(f))) << f;
  }
  EXPECT_NE(ReadFile(checkout_.Join("out/compare.json"), 1 << 20).value_or("").find("\"passed\": true"), std::string::npos);
  // A re-run replaces its own output (--force), and only that.
  auto again = RunJob(GitHubJob(), {}, &failed);
  EXPECT_EQ(failed, -1) << again.err;
}

TEST_F(CiRecipesTest, GitLabJobPassesAgainstACoremlzd) {
  Daemon server({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "", "--workers", "1"},
                "coremlzd: serving gRPC on port ");
  ASSERT_TRUE(server.ok()) << server.log();
  int failed = 0;
  auto r = RunJob(GitLabJob(), {{"COREMLZ_SERVER", absl::StrCat("127.0.0.1:", server.port())}}, &failed);
  ASSERT_EQ(failed, -1) << "step " << failed << " exit " << r.exit_code << ": " << r.err;
  EXPECT_TRUE(PathExists(checkout_.Join("out/report.html")));
}

TEST_F(CiRecipesTest, TheGatesFailWithExitCodeFive) {
  int failed = 0;
  auto too_big = RunJob(GitHubJob(), {{"MAX_SIZE", "10K"}}, &failed);
  EXPECT_EQ(failed, 0) << "the compress step";
  EXPECT_EQ(too_big.exit_code, 5) << too_big.err;
  EXPECT_NE(too_big.err.find("over --max-size"), std::string::npos) << too_big.err;
  EXPECT_TRUE(PathExists(checkout_.Join("out/report.html"))) << "the report is still there to look at";

  auto too_lossy = RunJob(GitLabJob(), {{"MIN_PSNR", "200"}}, &failed);
  EXPECT_EQ(failed, 2) << "the compare step";
  EXPECT_EQ(too_lossy.exit_code, 5) << too_lossy.err;
  EXPECT_NE(too_lossy.err.find("below --min-psnr"), std::string::npos) << too_lossy.err;

  auto unreachable = RunJob(GitHubJob(), {{"COREMLZ_SERVER", "127.0.0.1:1"}}, &failed);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(unreachable.exit_code, 4) << unreachable.err;
}

}  // namespace
}  // namespace coremlz::testing
