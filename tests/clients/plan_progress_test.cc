// `coremlz plan`'s progress line: every phase of the embedded plan and of
// the Plan call is drawn, a new phase at once (not held back by the redraw
// interval), and Done() clears the line.
#include "clients/plan_progress.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace coremlz::cli {
namespace {

// A scratch file that outlives the bar drawing on it (declared first, so
// closed after the bar's destructor has cleared its line).
struct Scratch {
  std::FILE* f = std::tmpfile();
  ~Scratch() {
    if (f != nullptr) std::fclose(f);
  }
};

// What the bar wrote so far.
std::string Written(std::FILE* f) {
  std::fflush(f);
  std::string text;
  std::rewind(f);
  for (int c; (c = std::fgetc(f)) != EOF;) text.push_back(static_cast<char>(c));
  std::fseek(f, 0, SEEK_END);
  return text;
}

// The text of the line after the last carriage return, without the
// erase-to-end sequence.
std::string LastLine(std::FILE* f) {
  std::string text = Written(f);
  text = text.substr(text.rfind('\r') + 1);
  const size_t erase = text.find("\033[K");
  return erase == std::string::npos ? text : text.substr(0, erase);
}

TEST(PlanProgressTest, EveryEmbeddedPhaseIsDrawnAtOnce) {
  Scratch scratch;
  std::FILE* f = scratch.f;
  ASSERT_NE(f, nullptr);
  ProgressBar bar(true, f);
  plan::PlanProgress p;
  p.phase = plan::PlanProgress::Phase::kStudy;
  ShowPlanProgress(p, &bar);
  EXPECT_EQ(LastLine(f).substr(0, 5), "study");
  p.phase = plan::PlanProgress::Phase::kTrials;
  p.trials_total = 40;
  ShowPlanProgress(p, &bar);
  EXPECT_NE(LastLine(f).find("0/40 weights x candidates"), std::string::npos) << LastLine(f);
  p.trials_done = 40;  // the last one is always drawn
  ShowPlanProgress(p, &bar);
  EXPECT_NE(LastLine(f).find("100% 40/40"), std::string::npos) << LastLine(f);
  p.phase = plan::PlanProgress::Phase::kCompare;
  ShowPlanProgress(p, &bar);
  EXPECT_EQ(LastLine(f).substr(0, 7), "compare");
  p.phase = plan::PlanProgress::Phase::kRounds;
  p.round = 2;
  ShowPlanProgress(p, &bar);
  EXPECT_NE(LastLine(f).find("round 2: the plan compressed and measured"), std::string::npos) << LastLine(f);
  EXPECT_EQ(LastLine(f).find('['), std::string::npos) << "no bar for a phase of unknown length";
  p.phase = plan::PlanProgress::Phase::kPareto;
  ShowPlanProgress(p, &bar);
  EXPECT_EQ(LastLine(f).substr(0, 6), "pareto");
  bar.Done();
  EXPECT_EQ(LastLine(f), "") << "cleared";
}

TEST(PlanProgressTest, TheCallsOwnPhasesAreDrawn) {
  Scratch scratch;
  std::FILE* f = scratch.f;
  ASSERT_NE(f, nullptr);
  ProgressBar bar(true, f);
  v1::PlanProgress p;
  p.set_phase(v1::PlanProgress::UPLOAD);
  p.set_bytes_done(512);
  p.set_bytes_total(1024);
  ShowPlanProgress(p, &bar);
  EXPECT_NE(LastLine(f).find(" 50%"), std::string::npos) << LastLine(f);
  p.Clear();
  p.set_phase(v1::PlanProgress::QUEUED);
  p.set_queue_position(3);
  ShowPlanProgress(p, &bar);
  EXPECT_NE(LastLine(f).find("position 3"), std::string::npos) << LastLine(f);
  p.Clear();
  p.set_phase(v1::PlanProgress::TRIALS);
  p.set_trials_done(5);
  p.set_trials_total(5);
  ShowPlanProgress(p, &bar);
  EXPECT_NE(LastLine(f).find("5/5"), std::string::npos) << LastLine(f);
  p.Clear();
  p.set_phase(v1::PlanProgress::COMPARE);
  ShowPlanProgress(p, &bar);
  EXPECT_EQ(LastLine(f).substr(0, 7), "compare");
  p.Clear();
  p.set_phase(v1::PlanProgress::APPLY);
  ShowPlanProgress(p, &bar);
  EXPECT_EQ(LastLine(f).substr(0, 5), "apply");
  p.set_bytes_done(2048);
  p.set_bytes_total(2048);
  ShowPlanProgress(p, &bar);
  EXPECT_EQ(LastLine(f).substr(0, 8), "download");
  // A phase this client does not know leaves the line as it was.
  const std::string before = Written(f);
  p.Clear();
  p.set_phase(static_cast<v1::PlanProgress::Phase>(99));
  ShowPlanProgress(p, &bar);
  EXPECT_EQ(Written(f), before);
}

TEST(PlanProgressTest, ADisabledBarWritesNothing) {
  Scratch scratch;
  std::FILE* f = scratch.f;
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar(false, f);
    plan::PlanProgress p;
    p.phase = plan::PlanProgress::Phase::kTrials;
    p.trials_done = p.trials_total = 3;
    ShowPlanProgress(p, &bar);
  }
  EXPECT_EQ(Written(f), "");
}

}  // namespace
}  // namespace coremlz::cli
