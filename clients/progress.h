// A one-line progress bar on stderr when it is a terminal; silent otherwise
// (CI logs stay clean). Also carries Ctrl-C into job cancellation.
#ifndef COREMLZ_CLIENTS_PROGRESS_H_
#define COREMLZ_CLIENTS_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "engine/job_control.h"

namespace coremlz::cli {

class ProgressBar : public engine::JobControl {
 public:
  // `enabled` false: never draws (--quiet, or stderr is not a TTY). `out`:
  // where it draws (tests pass a file).
  explicit ProgressBar(bool enabled, std::FILE* out = stderr) : enabled_(enabled), out_(out) {}
  ~ProgressBar() override { Done(); }

  bool Cancelled() const override;
  void OnProgress(const engine::Progress& p) override;
  // Generic phases (upload/download) in bytes.
  void Bytes(const std::string& phase, uint64_t done, uint64_t total);
  // A phase counted in steps; with total 0 only its label and detail (a
  // phase whose length is not known).
  void Step(const std::string& phase, int64_t done, int64_t total, const std::string& detail);
  // Clears the line.
  void Done();

  // Installs a SIGINT handler that makes Cancelled() true.
  static void InstallInterruptHandler();
  static bool StderrIsTerminal();

 private:
  // fraction < 0: no bar. A new label is drawn at once; updates of the same
  // one at most every 80 ms (and at 100 %).
  void Draw(const std::string& label, double fraction, const std::string& detail);
  const bool enabled_;
  std::FILE* const out_;
  absl::Mutex mu_;
  bool drawn_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_ ABSL_GUARDED_BY(mu_) = {};
  std::string last_label_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_PROGRESS_H_
