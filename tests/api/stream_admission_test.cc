// The early-start rule against a step-by-step simulation of the upload and
// the worker: admitted exactly when a worker starting now, compressing at
// the estimated rate, never waits for bytes before the upload ends.
#include "api/stream_admission.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"

namespace coremlz::api {
namespace {

// The upload keeps its rate (received / elapsed); the worker starts now
// with `received` bytes there and consumes `compress_rate` bytes a second.
// Whether it ever finds no byte to read before the upload is complete,
// simulated in steps of 1/100000 of the upload's remaining time.
bool WorkerWouldWait(double received, double declared, double elapsed, double compress_rate) {
  const double rate = received / elapsed;
  const double end = (declared - received) / rate;
  const int steps = 100000;
  for (int i = 1; i <= steps; ++i) {
    const double t = end * i / steps;
    if (compress_rate * t > received + rate * t) return true;
  }
  return false;
}

TEST(StreamAdmissionTest, AdmitsExactlyWhenTheWorkerWouldNotCatchUp) {
  int admitted = 0, refused = 0;
  for (double declared : {10e6, 100e6, 1e9}) {
    for (double fraction : {0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99}) {
      for (double rate : {1e6, 10e6, 100e6, 300e6, 450e6, 600e6, 2e9}) {
        const double received = declared * fraction;
        const double elapsed = received / rate;
        const double c = 500e6;
        // Skip cases within 1 % of the boundary, where the simulation's
        // steps decide rather than the rule.
        const double lhs = (declared - received) * (c - rate), rhs = received * rate;
        if (rate < c && std::abs(lhs - rhs) < 0.01 * std::max(lhs, rhs)) continue;
        const bool admit = StartWhileUploading(static_cast<uint64_t>(received), static_cast<uint64_t>(declared),
                                               absl::Seconds(elapsed), c, 0);
        EXPECT_EQ(admit, !WorkerWouldWait(received, declared, elapsed, c))
            << "declared " << declared << " received " << received << " rate " << rate;
        (admit ? admitted : refused)++;
      }
    }
  }
  // Both answers occur in the grid.
  EXPECT_GT(admitted, 10);
  EXPECT_GT(refused, 10);
}

TEST(StreamAdmissionTest, FastUploadStartsAtOnceSlowOneNearlyNever) {
  const uint64_t declared = 100'000'000;
  // 1 GB/s against 500 MB/s: start as soon as the rate is trusted.
  EXPECT_TRUE(StartWhileUploading(8'000'000, declared, absl::Milliseconds(8), 500e6, 4 << 20));
  // 10 MB/s: not with half in (the worker would be through it in 0.1 s
  // and then wait 4.9 s); with 99 % in, yes: the last MB arrives in 0.1 s,
  // before the worker is through the 99 MB (0.2 s).
  EXPECT_FALSE(StartWhileUploading(50'000'000, declared, absl::Seconds(5), 500e6, 4 << 20));
  EXPECT_FALSE(StartWhileUploading(97'000'000, declared, absl::Seconds(9.7), 500e6, 4 << 20));
  EXPECT_TRUE(StartWhileUploading(99'000'000, declared, absl::Seconds(9.9), 500e6, 4 << 20));
}

TEST(StreamAdmissionTest, LimitsAndEdges) {
  // Below the bytes needed to trust the rate.
  EXPECT_FALSE(StartWhileUploading(1 << 20, 100 << 20, absl::Microseconds(1), 500e6, 4 << 20));
  // Complete uploads start the ordinary way.
  EXPECT_FALSE(StartWhileUploading(100, 100, absl::Seconds(1), 500e6, 0));
  // Rate 0 turns the early start off.
  EXPECT_FALSE(StartWhileUploading(50, 100, absl::Seconds(1), 0, 0));
  // No time has passed: as fast as can be.
  EXPECT_TRUE(StartWhileUploading(50, 100, absl::ZeroDuration(), 500e6, 0));
}

}  // namespace
}  // namespace coremlz::api
