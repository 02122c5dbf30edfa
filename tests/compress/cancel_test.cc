// Cancellation inside the kernels: a hook that says stop stops them with
// CANCELLED, polls come at bounded time intervals whatever the tensor's
// size, and a hook that never fires changes no result.
#include "compress/cancel.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "compress/kmeans1d.h"
#include "compress/linear_quantize.h"
#include "compress/palettize.h"
#include "compress/prune.h"
#include "compress/vector_kmeans.h"
#include "gtest/gtest.h"

namespace coremlz::compress {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<float> Normal(size_t n, uint32_t seed, float stddev = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A check whose hook has already said stop: kernels stop at their first charge.
CancelCheck Stopping() {
  CancelCheck c([] { return true; });
  c.Poll();
  return c;
}

TEST(CancelCheckTest, PollsOncePerIntervalAndStaysCancelled) {
  int polls = 0;
  bool answer = false;
  CancelCheck check([&] {
    ++polls;
    return answer;
  });
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(check.Charge(CancelCheck::kPollInterval / 10 - 1));
  EXPECT_EQ(polls, 0);
  EXPECT_FALSE(check.Charge(100));
  EXPECT_EQ(polls, 1);
  answer = true;
  EXPECT_TRUE(check.Charge(CancelCheck::kPollInterval));
  answer = false;  // sticky: once stopped, a kernel stays stopped
  EXPECT_TRUE(check.Poll());
  EXPECT_TRUE(check.cancelled());
  CancelCheck never;
  EXPECT_FALSE(never.Charge(CancelCheck::kPollInterval * 4));
  EXPECT_FALSE(Stopped(nullptr, 1 << 30));
}

// Every kernel, with a hook that stops at once.
TEST(KernelCancelTest, AStoppingHookStopsEveryKernel) {
  const std::vector<int64_t> shape = {512, 512};
  const std::vector<float> w = Normal(512 * 512, 2);
  auto palettize = [&](PalettizeOptions o) {
    CancelCheck stop = Stopping();
    o.cancel = &stop;
    return Palettize(w, shape, o).status();
  };
  PalettizeOptions kmeans;
  kmeans.bits = 4;
  EXPECT_EQ(palettize(kmeans).code(), absl::StatusCode::kCancelled);
  PalettizeOptions grouped = kmeans;
  grouped.group_size = 16;
  EXPECT_EQ(palettize(grouped).code(), absl::StatusCode::kCancelled);
  PalettizeOptions vec = kmeans;
  vec.cluster_dim = 4;
  EXPECT_EQ(palettize(vec).code(), absl::StatusCode::kCancelled);
  PalettizeOptions fp32 = kmeans;
  fp32.precision = Precision::kFloat32;
  EXPECT_EQ(palettize(fp32).code(), absl::StatusCode::kCancelled);
  PalettizeOptions custom;
  custom.mode = PaletteMode::kCustom;
  for (int i = 0; i < 256; ++i) custom.custom_palette.push_back((i - 128) / 1024.f);
  EXPECT_EQ(palettize(custom).code(), absl::StatusCode::kCancelled);
  PalettizeOptions custom_vec = custom;
  custom_vec.cluster_dim = 2;
  custom_vec.custom_palette.resize(512, 0.0f);
  EXPECT_EQ(palettize(custom_vec).code(), absl::StatusCode::kCancelled);

  std::vector<double> values, counts;
  for (int i = 0; i < 20000; ++i) {
    values.push_back(i * 0.001);
    counts.push_back(1 + i % 7);
  }
  CancelCheck stop = Stopping();
  EXPECT_EQ(OptimalKMeans1D(values, counts, 16, &stop).status().code(), absl::StatusCode::kCancelled);
  // Large k takes the bounded path (penalised passes first).
  EXPECT_EQ(OptimalKMeans1D(values, counts, 64, &stop).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(OptimalKMeans1DWithRows(values, counts, 8, KMeans1DRows::kBounded, &stop).status().code(),
            absl::StatusCode::kCancelled);
  VectorKMeansOptions vo;
  vo.cancel = &stop;
  EXPECT_EQ(VectorKMeans(w, 4, 16, vo).status().code(), absl::StatusCode::kCancelled);
  std::vector<float> p = w;
  EXPECT_EQ(NMPrune(absl::MakeSpan(p), shape, 2, 4, 1, &stop).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(MagnitudePrune(absl::MakeSpan(p), 0.5, Precision::kFloat16, &stop).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(p), shape, 4, 0, 0.5, Precision::kFloat16, &stop).code(),
            absl::StatusCode::kCancelled);
  auto grid = BlockGrid::Make(shape, {1, 0});
  ASSERT_TRUE(grid.ok());
  LinearQuantizeOptions qo;
  qo.cancel = &stop;
  EXPECT_EQ(LinearQuantize(w, *grid, qo).status().code(), absl::StatusCode::kCancelled);
}

TEST(KernelCancelTest, AHookThatNeverFiresChangesNothing) {
  const std::vector<int64_t> shape = {256, 256};
  const std::vector<float> w = Normal(256 * 256, 3);
  for (int cd : {1, 2}) {
    for (Precision precision : {Precision::kFloat16, Precision::kFloat32}) {
      PalettizeOptions o;
      o.bits = 3;
      o.group_size = 32;
      o.cluster_dim = cd;
      o.precision = precision;
      auto plain = Palettize(w, shape, o);
      int polls = 0;
      CancelCheck never([&] {
        ++polls;
        return false;
      });
      o.cancel = &never;
      auto polled = Palettize(w, shape, o);
      ASSERT_TRUE(plain.ok() && polled.ok()) << plain.status() << polled.status();
      EXPECT_EQ(plain->lut, polled->lut) << cd;
      EXPECT_EQ(plain->indices, polled->indices) << cd;
    }
  }
  std::vector<float> a = w, b = w;
  CancelCheck never([] { return false; });
  ASSERT_TRUE(NMPrune(absl::MakeSpan(a), shape, 2, 4, 1).ok());
  ASSERT_TRUE(NMPrune(absl::MakeSpan(b), shape, 2, 4, 1, &never).ok());
  EXPECT_EQ(a, b);
}

// CPU time of this thread: unlike the wall clock it does not count the time
// a loaded machine leaves the thread waiting.
double ThreadSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// The longest stretch of a kernel's work (CPU time) between two polls, run
// to completion on a large tensor: bounded, whatever the size. The bound is
// generous; the design target is a few milliseconds.
double LongestGapSeconds(const std::function<absl::Status(CancelCheck*)>& kernel, int* polls, double* total) {
  const double start = ThreadSeconds();
  double last = start;
  double longest = 0;
  *polls = 0;
  CancelCheck check([&] {
    const double now = ThreadSeconds();
    longest = std::max(longest, now - last);
    last = now;
    ++*polls;
    return false;
  });
  EXPECT_TRUE(kernel(&check).ok());
  const double end = ThreadSeconds();
  *total = end - start;
  return std::max(longest, end - last);
}

TEST(KernelCancelTest, PollsComeAtBoundedIntervals) {
  const std::vector<int64_t> shape = {1024, 1024};
  const std::vector<float> w = Normal(1024 * 1024, 4);
  struct Case {
    const char* name;
    std::function<absl::Status(CancelCheck*)> run;
  };
  auto palettize = [&](PalettizeOptions o) {
    return [&, o](CancelCheck* c) mutable {
      o.cancel = c;
      return Palettize(w, shape, o).status();
    };
  };
  PalettizeOptions grouped;
  grouped.bits = 4;
  grouped.group_size = 64;
  PalettizeOptions vec;
  vec.bits = 4;
  vec.cluster_dim = 4;
  PalettizeOptions fp32;
  fp32.bits = 4;
  fp32.precision = Precision::kFloat32;
  PalettizeOptions custom;
  custom.mode = PaletteMode::kCustom;
  for (int i = 0; i < 256; ++i) custom.custom_palette.push_back((i - 128) / 1024.f);
  const std::vector<Case> cases = {
      {"grouped k-means", palettize(grouped)},
      {"vector k-means", palettize(vec)},
      {"fp32 k-means (sort, DP, Lloyd)", palettize(fp32)},
      {"256-entry custom palette", palettize(custom)},
      {"n:m pruning, m = 256", [&](CancelCheck* c) {
         std::vector<float> p = w;
         return NMPrune(absl::MakeSpan(p), shape, 128, 256, 1, c);
       }},
  };
  for (const Case& c : cases) {
    int polls = 0;
    double total = 0;
    const double gap = LongestGapSeconds(c.run, &polls, &total);
    EXPECT_LT(gap, 0.1) << c.name;
    EXPECT_GT(polls, 0) << c.name;
    std::printf("%-32s %6.0f ms CPU, %5d polls, longest gap between polls %5.1f ms\n", c.name, total * 1e3, polls,
                gap * 1e3);
  }
}

TEST(KernelCancelTest, CancellingAHugeGroupedPalettizationReturnsPromptly) {
  // 4096x4096, groups of 16 channels: seconds of k-means (docs/performance.md).
  const std::vector<int64_t> shape = {4096, 4096};
  const std::vector<float> w = Normal(4096 * 4096, 5);
  std::atomic<bool> stop{false};
  CancelCheck check([&] { return stop.load(); });
  PalettizeOptions o;
  o.bits = 4;
  o.group_size = 16;
  o.cancel = &check;
  auto job = std::async(std::launch::async, [&] { return Palettize(w, shape, o).status(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  const Clock::time_point stopped = Clock::now();
  const absl::Status s = job.get();
  const double seconds = std::chrono::duration<double>(Clock::now() - stopped).count();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_LT(seconds, 3.0);
  std::printf("the kernel returned %.3f s after the hook said stop\n", seconds);
}

}  // namespace
}  // namespace coremlz::compress
