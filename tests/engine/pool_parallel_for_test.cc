// PoolParallelFor (engine/pool_parallel_for.h) and the grouped palettes it
// splits: every piece runs exactly once, on the pool's idle threads as well
// as the caller's; a pool whose threads are all busy cannot hold a Run up;
// Palettize gives the same result through it as without it, and a
// cancelled check still cancels.
#include "engine/pool_parallel_for.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "compress/palettize.h"
#include "engine/task_pool.h"
#include "gtest/gtest.h"

namespace coremlz::engine {
namespace {

TEST(PoolParallelForTest, EveryPieceOnceOnSeveralThreads) {
  TaskPool pool(3);
  PoolParallelFor parallel(&pool, 3);
  for (int64_t count : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> runs(count);
    absl::Mutex mu;
    std::set<std::thread::id> threads;
    parallel.Run(count, 0, [&](int64_t i) {
      runs[i].fetch_add(1);
      // Long enough that the helpers get pieces too.
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      absl::MutexLock lock(&mu);
      threads.insert(std::this_thread::get_id());
    });
    for (int64_t i = 0; i < count; ++i) EXPECT_EQ(runs[i].load(), 1) << "piece " << i << " of " << count;
    if (count >= 1000) {
      EXPECT_GE(threads.size(), 2u) << "the pool's threads never joined in";
    }
  }
}

// The caller is usually a pool thread itself: with every pool thread busy
// the helpers cannot start, and Run must finish on the caller alone rather
// than wait for them. They start later, find the Run over, and leave.
TEST(PoolParallelForTest, BusyPoolDoesNotHoldARunUp) {
  absl::Notification release, blocked;  // outlive the pool, whose thread waits on them
  TaskPool pool(1);
  pool.Submit([&] {
    blocked.Notify();
    release.WaitForNotification();
  });
  blocked.WaitForNotification();
  PoolParallelFor parallel(&pool, 4);
  std::atomic<int64_t> sum{0};
  std::set<std::thread::id> threads;
  absl::Mutex mu;
  parallel.Run(100, 0, [&](int64_t i) {
    sum += i;
    absl::MutexLock lock(&mu);
    threads.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(sum.load(), 4950);
  EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
  release.Notify();  // the stale helpers now run and must touch nothing
}

constexpr uint64_t kPieceBytes = 12345;

// A gate admitting at most `admit` pieces in all (coremlzd's worker pool
// lends slots this way), counting what it let in.
class CountingGate : public HelperGate {
 public:
  explicit CountingGate(int admit) : left_(admit) {}
  bool Enter(uint64_t bytes) override {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(bytes, kPieceBytes) << "the Run's piece size reaches the gate";
    if (left_ == 0) return false;
    --left_;
    ++inside_;
    ++entered_;
    return true;
  }
  void Leave(uint64_t bytes, bool ran) override {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(bytes, kPieceBytes);
    --inside_;
    if (ran) ++ran_;
  }
  int entered() {
    absl::MutexLock lock(&mu_);
    return entered_;
  }
  int inside() {
    absl::MutexLock lock(&mu_);
    return inside_;
  }
  int ran() {
    absl::MutexLock lock(&mu_);
    return ran_;
  }

 private:
  absl::Mutex mu_;
  int left_ ABSL_GUARDED_BY(mu_);
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  int ran_ ABSL_GUARDED_BY(mu_) = 0;
};

// Helpers take a piece only when the gate lets them, and give every
// admission back; the caller does what they may not.
TEST(PoolParallelForTest, AGateAdmitsHelpersPieceByPiece) {
  TaskPool pool(3);
  for (int admit : {0, 5}) {
    CountingGate gate(admit);
    PoolParallelFor parallel(&pool, 3, &gate);
    constexpr int64_t kCount = 400;
    std::vector<std::atomic<int>> runs(kCount);
    absl::Mutex mu;
    int64_t by_helpers = 0;
    const std::thread::id caller = std::this_thread::get_id();
    absl::Notification helped;
    parallel.Run(kCount, kPieceBytes, [&](int64_t i) {
      runs[i].fetch_add(1);
      if (std::this_thread::get_id() != caller) {
        absl::MutexLock lock(&mu);
        ++by_helpers;
        if (!helped.HasBeenNotified()) helped.Notify();
      } else if (i == 0 && admit > 0) {
        // Hold the caller until a helper got a piece, so that the gate is
        // exercised whatever the scheduling.
        helped.WaitForNotificationWithTimeout(absl::Seconds(30));
      }
    });
    for (int64_t i = 0; i < kCount; ++i) ASSERT_EQ(runs[i].load(), 1) << "piece " << i;
    EXPECT_EQ(gate.inside(), 0) << "every admission was given back";
    absl::MutexLock lock(&mu);
    EXPECT_LE(by_helpers, gate.entered()) << "a helper ran a piece the gate did not admit";
    EXPECT_EQ(by_helpers, gate.ran()) << "Leave tells whether the admitted helper found a piece";
    if (admit == 0) {
      EXPECT_EQ(by_helpers, 0);
    } else {
      EXPECT_GE(by_helpers, 1);
      EXPECT_LE(by_helpers, admit);
    }
  }
}

std::vector<float> Normal(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 0.02f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(PoolParallelForTest, GroupedPalettesAreTheSameSideBySide) {
  TaskPool pool(3);
  PoolParallelFor parallel(&pool, 3);
  struct Case {
    std::vector<int64_t> shape;
    compress::PalettizeOptions options;
  };
  auto options = [](compress::PaletteMode mode, int bits, int axis, int64_t group, int cluster_dim, bool scale) {
    compress::PalettizeOptions o;
    o.mode = mode;
    o.bits = bits;
    o.channel_axis = axis;
    o.group_size = group;
    o.cluster_dim = cluster_dim;
    o.per_channel_scale = scale;
    return o;
  };
  using M = compress::PaletteMode;
  const std::vector<Case> cases = {
      {{256, 96}, options(M::kKMeans, 4, 0, 16, 1, false)},
      {{64, 32, 3, 3}, options(M::kKMeans, 3, 0, 8, 1, false)},
      {{96, 256}, options(M::kKMeans, 4, 1, 32, 1, false)},  // groups not contiguous: gathered per piece
      {{256, 96}, options(M::kKMeans, 2, 0, 16, 2, false)},  // vectors
      {{256, 96}, options(M::kKMeans, 4, 0, 16, 1, true)},   // per-channel scale
      {{256, 96}, options(M::kUniform, 4, 0, 16, 1, false)},
      {{256, 96}, options(M::kUnique, 0, 0, 16, 1, false)},
      {{256, 96}, options(M::kCustom, 4, 0, 16, 1, false)},
  };
  for (Case c : cases) {
    int64_t n = 1;
    for (int64_t d : c.shape) n *= d;
    std::vector<float> w = Normal(n, 7);
    if (c.options.mode == M::kUnique) {
      for (float& x : w) x = std::round(x * 256) / 256;  // a few dozen distinct values
    }
    if (c.options.mode == M::kCustom) {
      for (int e = 0; e < 16; ++e) c.options.custom_palette.push_back(0.005f * (e - 8));
    }
    auto alone = compress::Palettize(w, c.shape, c.options);
    compress::PalettizeOptions with = c.options;
    with.parallel = &parallel;
    auto side_by_side = compress::Palettize(w, c.shape, with);
    ASSERT_TRUE(alone.ok() && side_by_side.ok()) << alone.status() << side_by_side.status();
    EXPECT_EQ(alone->bits, side_by_side->bits);
    EXPECT_EQ(alone->lut, side_by_side->lut);
    EXPECT_EQ(alone->indices, side_by_side->indices);
    EXPECT_EQ(alone->scale, side_by_side->scale);
  }
}

// 4-bit grouped palettization of an n x n normal weight in groups of 16,
// through `parallel`, checked by `check`.
absl::Status PalettizeGrouped(int64_t n, compress::CancelCheck* check, const PoolParallelFor* parallel) {
  const std::vector<float> w = Normal(n * n, 3);
  compress::PalettizeOptions o;
  o.bits = 4;
  o.group_size = 16;
  o.cancel = check;
  o.parallel = parallel;
  return compress::Palettize(w, {n, n}, o).status();
}

TEST(PoolParallelForTest, ACancelledCheckCancelsEveryGroup) {
  TaskPool pool(2);
  PoolParallelFor parallel(&pool, 2);
  // Already stopped: every group's fork stops at its first charge.
  compress::CancelCheck stopped([] { return true; });
  stopped.Poll();
  const absl::Status early = PalettizeGrouped(256, &stopped, &parallel);
  EXPECT_EQ(early.code(), absl::StatusCode::kCancelled) << early;
  // Stopping part way (from the hook's third poll, made by whichever
  // groups' forks get there): the call is CANCELLED and the caller's own
  // check, which the forks never touched, says so too.
  std::atomic<int> polls{0};
  compress::CancelCheck check([&] { return polls.fetch_add(1) >= 2; });
  const absl::Status late = PalettizeGrouped(2048, &check, &parallel);
  EXPECT_EQ(late.code(), absl::StatusCode::kCancelled) << late << " after " << polls.load() << " polls";
  EXPECT_TRUE(check.cancelled()) << "the caller's check must say so too";
}

}  // namespace
}  // namespace coremlz::engine
