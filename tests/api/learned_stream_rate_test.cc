// The early start's learned compression rate (api/learned_stream_rate.h):
// the prior until a cost has enough jobs, then an upper quantile of that
// cost's recent jobs within a factor of the prior; what cannot teach
// (small jobs, no time, learning off) does not.
#include "api/learned_stream_rate.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace coremlz::api {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr double kPrior = 500e6;

// A job of `bytes` that compressed at `rate` bytes/s.
bool Job(LearnedStreamRate& r, double rate, double cost = 1, uint64_t bytes = 64 * kMiB) {
  return r.Observe(bytes, cost, absl::Seconds(static_cast<double>(bytes) / rate));
}

TEST(LearnedStreamRateTest, ThePriorUntilACostHasEnoughJobs) {
  LearnedStreamRate r(kPrior, true);
  EXPECT_DOUBLE_EQ(r.Rate(1), kPrior);
  EXPECT_DOUBLE_EQ(r.Rate(13), kPrior / 13);
  for (int i = 1; i < LearnedStreamRate::kMinJobs; ++i) {
    ASSERT_TRUE(Job(r, 300e6));
    EXPECT_DOUBLE_EQ(r.Rate(1), kPrior) << i << " jobs";
  }
  ASSERT_TRUE(Job(r, 300e6));
  EXPECT_NEAR(r.Rate(1), 300e6, 1e3);
  EXPECT_DOUBLE_EQ(r.Rate(13), kPrior / 13);  // another cost learned nothing
  EXPECT_EQ(r.observed(), LearnedStreamRate::kMinJobs);
}

TEST(LearnedStreamRateTest, AnUpperQuantileOfTheRecentJobs) {
  LearnedStreamRate r(kPrior, true);
  // Eight jobs at 200..900 MB/s: the 0.75 quantile by nearest rank is the
  // sixth smallest, 700 MB/s.
  for (double mb : {900, 200, 700, 400, 300, 800, 500, 600}) ASSERT_TRUE(Job(r, mb * 1e6, 1.8));
  EXPECT_NEAR(r.Rate(1.8), 700e6, 1e3);
  // The window keeps the last kWindow jobs: a machine that slowed down is
  // learned once they are all slow.
  for (size_t i = 0; i < LearnedStreamRate::kWindow; ++i) ASSERT_TRUE(Job(r, 150e6, 1.8));
  EXPECT_NEAR(r.Rate(1.8), 150e6, 1e3);
}

TEST(LearnedStreamRateTest, StaysWithinAFactorOfThePrior) {
  LearnedStreamRate fast(kPrior, true), slow(kPrior, true);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Job(fast, 1e12));
    ASSERT_TRUE(Job(slow, 1e3, 13));
  }
  EXPECT_DOUBLE_EQ(fast.Rate(1), kPrior * LearnedStreamRate::kMaxFactor);
  EXPECT_DOUBLE_EQ(slow.Rate(13), kPrior / 13 / LearnedStreamRate::kMaxFactor);
}

TEST(LearnedStreamRateTest, WhatCannotTeachIsIgnored) {
  LearnedStreamRate r(kPrior, true);
  EXPECT_FALSE(Job(r, 1e6, 1, LearnedStreamRate::kMinJobBytes - 1));  // fixed costs dominate
  EXPECT_FALSE(r.Observe(64 * kMiB, 1, absl::ZeroDuration()));
  EXPECT_FALSE(r.Observe(64 * kMiB, 1, absl::Seconds(-1)));  // waited longer than it ran
  EXPECT_FALSE(r.Observe(64 * kMiB, 1, absl::InfiniteDuration()));
  EXPECT_FALSE(r.Observe(64 * kMiB, 0.5, absl::Seconds(1)));  // costs are >= 1
  EXPECT_EQ(r.observed(), 0);

  LearnedStreamRate off(kPrior, false);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(Job(off, 100e6));
  EXPECT_DOUBLE_EQ(off.Rate(1), kPrior);

  LearnedStreamRate disabled(0, true);  // no early start at all
  EXPECT_FALSE(Job(disabled, 100e6));
  EXPECT_EQ(disabled.Rate(1), 0);

  LearnedStreamRate small(kPrior, true, /*min_job_bytes=*/0);
  EXPECT_TRUE(Job(small, 100e6, 1, 1));
}

TEST(LearnedStreamRateTest, RemembersABoundedNumberOfCosts) {
  LearnedStreamRate r(kPrior, true);
  // int8 (cost 1) learned first, then taught again after the others.
  for (int i = 0; i < LearnedStreamRate::kMinJobs; ++i) ASSERT_TRUE(Job(r, 300e6, 1));
  for (size_t i = 1; i < LearnedStreamRate::kMaxCosts; ++i) {
    for (int j = 0; j < LearnedStreamRate::kMinJobs; ++j) ASSERT_TRUE(Job(r, 100e6, 1 + static_cast<double>(i)));
  }
  ASSERT_TRUE(Job(r, 300e6, 1));
  EXPECT_NEAR(r.Rate(2), 100e6, 1e3);
  // A new cost beyond the bound evicts the one taught least recently (2),
  // not int8, and starts from the prior.
  EXPECT_TRUE(Job(r, 100e6, 1000));
  EXPECT_DOUBLE_EQ(r.Rate(1000), kPrior / 1000);
  EXPECT_DOUBLE_EQ(r.Rate(2), kPrior / 2);
  EXPECT_NEAR(r.Rate(1), 300e6, 1e3);
}

TEST(LearnedStreamRateTest, ConcurrentJobsAndReaders) {
  LearnedStreamRate r(kPrior, true);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < 200; ++i) {
        Job(r, 100e6 * (1 + t), 1 + t % 2);
        const double rate = r.Rate(1 + t % 2);
        EXPECT_GT(rate, 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.observed(), 800);
  // Each cost's window ends up holding jobs of its threads' rates only.
  EXPECT_GE(r.Rate(1), 100e6);
  EXPECT_LE(r.Rate(1), 300e6 + 1e3);
}

}  // namespace
}  // namespace coremlz::api
