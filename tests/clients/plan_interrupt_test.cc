// Ctrl-C during an embedded `coremlz plan`: a real process gets SIGINT while
// its study is being built; it stops within seconds with the interrupted exit
// code (130, as `coremlz compress`), leaves no work directory and writes none
// of its outputs, and the files that were there before are untouched.
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

std::string Transformer() {
  return ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage";
}

// Entries of `dir` whose names start with `prefix`.
std::vector<std::string> Entries(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, prefix)) out.push_back(name);
  }
  return out;
}

TEST(PlanInterrupt, CtrlCStopsThePlanAndCleansUp) {
  ScratchDir scratch;
  const std::string tmp = scratch.Join("tmp"), out = scratch.Join("out");
  ASSERT_TRUE(MakeDirectories(tmp).ok());
  ASSERT_TRUE(MakeDirectories(out).ok());
  // A file of the user's where the report goes: replaced only by a finished plan.
  ASSERT_TRUE(WriteFileAtomically(out + "/plan.json", "before").ok());
  // The child makes its work directory under TMPDIR, where it can be watched.
  ASSERT_EQ(setenv("TMPDIR", tmp.c_str(), 1), 0);
  // Many samples: the plan would run for minutes.
  Daemon plan({BinaryPath("clients/coremlz"), "plan", Transformer(), "--bits", "5", "--samples", "300", "--config",
               out + "/plan.yaml", "--report", out + "/plan.json", "--pareto", out + "/plan.svg", "--apply",
               out + "/model.mlpackage"},
              "a marker never printed ", absl::ZeroDuration());
  ASSERT_GT(plan.pid(), 0);
  // Wait until the plan's work directory exists (the study is under way).
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    started = !Entries(tmp, "coremlz-plan").empty();
    if (!started) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(started) << plan.log();
  absl::SleepFor(absl::Milliseconds(500));
  const auto sent = std::chrono::steady_clock::now();
  const int code = plan.Stop(SIGINT, absl::Seconds(60));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  EXPECT_EQ(code, 130) << plan.log();
  EXPECT_LT(seconds, 15) << "stops within a weight or a sample, not at the end of the plan";
  EXPECT_TRUE(absl::StrContains(plan.log(), "interrupted")) << plan.log();
  EXPECT_TRUE(Entries(tmp, "coremlz-plan").empty()) << "the work directory is removed";
  EXPECT_FALSE(PathExists(out + "/plan.yaml"));
  EXPECT_FALSE(PathExists(out + "/plan.svg"));
  EXPECT_FALSE(PathExists(out + "/model.mlpackage"));
  EXPECT_EQ(ReadFile(out + "/plan.json").value_or(""), "before") << "a file it did not create stays";
}

}  // namespace
}  // namespace coremlz::testing
