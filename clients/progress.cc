#include "clients/progress.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "clients/render.h"

namespace coremlz::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnSigint(int) {
  // A second Ctrl-C falls through to the default action.
  if (g_interrupted.exchange(true)) std::signal(SIGINT, SIG_DFL);
}

}  // namespace

void ProgressBar::InstallInterruptHandler() { std::signal(SIGINT, OnSigint); }
bool ProgressBar::StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

bool ProgressBar::Cancelled() const { return g_interrupted.load() || JobControl::Cancelled(); }

void ProgressBar::Draw(const std::string& label, double fraction, const std::string& detail) {
  if (!enabled_) return;
  absl::MutexLock lock(&mu_);
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && label == last_label_ && fraction < 1.0 && now - last_ < std::chrono::milliseconds(80)) return;
  last_ = now;
  last_label_ = label;
  std::string text;
  if (fraction < 0) {
    text = absl::StrFormat("\r%-10s %s", label, detail);
  } else {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth + 0.5);
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    text = absl::StrFormat("\r%-10s [%s] %3d%% %s", label, bar, static_cast<int>(fraction * 100), detail);
  }
  if (text.size() > 110) text.resize(110);
  std::fprintf(out_, "%s\033[K", text.c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::OnProgress(const engine::Progress& p) {
  const double f = p.weights_total ? static_cast<double>(p.weights_done) / p.weights_total : 0;
  Draw("compress", f, absl::StrFormat("%d/%d %s", p.weights_done, p.weights_total, p.current));
}

void ProgressBar::Bytes(const std::string& phase, uint64_t done, uint64_t total) {
  const double f = total ? static_cast<double>(done) / total : 1.0;
  Draw(phase, f, absl::StrFormat("%s / %s", HumanBytes(done), HumanBytes(total)));
}

void ProgressBar::Step(const std::string& phase, int64_t done, int64_t total, const std::string& detail) {
  Draw(phase, total > 0 ? static_cast<double>(std::min(done, total)) / total : -1.0, detail);
}

void ProgressBar::Done() {
  absl::MutexLock lock(&mu_);
  if (enabled_ && drawn_) {
    std::fprintf(out_, "\r\033[K");
    std::fflush(out_);
  }
  drawn_ = false;
}

}  // namespace coremlz::cli
