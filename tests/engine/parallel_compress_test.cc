// CompressOptions::threads (the CLI's --threads): weights compressed on
// several threads must give the same package, byte for byte, and the same
// report as one thread, and stop when cancelled. coremlzd's worker pool,
// which lends idle worker slots to a running job's groups, likewise.
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"

#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/worker_pool.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

struct Case {
  std::string model;  // relative to ModelsDir(), or "" for the generated fp32 package
  std::string yaml;
};

std::string Transformer() { return testing::ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage"; }
// Two functions reading the same blobs: shared weights are compressed once
// and the second function's copy follows the first in blob order.
std::string LlmLike() { return testing::GoldenDir() + "/llm_like/llm_like_multifunction.mlpackage"; }
std::string Mobilenet() { return testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }

const char* kPal4 = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n";
const char* kGrouped = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, granularity: per_grouped_channel, group_size: 16}\n";
const char* kVector = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, cluster_dim: 2}\n";
// With threads, a weight's groups are also solved side by side
// (engine/pool_parallel_for.h): scalar, vector and scaled palettes.
const char* kGroupedVector =
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 2, cluster_dim: 2, granularity: per_grouped_channel, "
    "group_size: 16}\n";
const char* kGroupedScaled =
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 3, granularity: per_grouped_channel, group_size: 8, "
    "enable_per_channel_scale: true}\n";
const char* kInt8 = "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n";
const char* kInt4Block = "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: per_block, block_size: 32}\n";
const char* kPrune = "config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5}\n";
const char* kJoint =
    "passes:\n  - {config_type: OpMagnitudePrunerConfig, global_config: {target_sparsity: 0.5}}\n"
    "  - {config_type: OpPalettizerConfig, joint_compression: true, global_config: {nbits: 4}}\n";

void ExpectSameFile(const std::string& a, const std::string& b) {
  auto x = ReadFile(a);
  auto y = ReadFile(b);
  ASSERT_TRUE(x.ok() && y.ok()) << a;
  EXPECT_TRUE(*x == *y) << a << " and " << b << " differ (" << x->size() << " vs " << y->size() << " bytes)";
}

TEST(ParallelCompressTest, ThreadsGiveTheSameBytesAndReport) {
  testing::ScratchDir scratch;
  const std::string fp32 = scratch.Join("fp32.mlpackage");
  ASSERT_TRUE(testing::WriteMixedTestPackage(fp32, format::ElementType::kFloat32, 9).ok());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Transformer(), kPal4},   {Transformer(), kGrouped}, {Transformer(), kVector}, {Transformer(), kInt4Block},
      {Transformer(), kJoint},  {Transformer(), kPrune},   {Mobilenet(), kPal4},     {Mobilenet(), kInt8},
      {fp32, kPal4},            {fp32, kInt8},             {fp32, kGrouped},    {LlmLike(), kInt4Block},
      {LlmLike(), kPal4},       {LlmLike(), kGrouped},     {Transformer(), kGroupedVector},
      {Transformer(), kGroupedScaled},
  };
  int n = 0;
  for (const auto& [model, yaml] : cases) {
    SCOPED_TRACE(model + "\n" + yaml);
    auto config = ParseCompressionConfig(yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    std::vector<CompressionReport> reports;
    std::vector<std::string> outs;
    for (int threads : {1, 4, 3}) {
      CompressOptions options;
      options.threads = threads;
      outs.push_back(scratch.Join("out" + std::to_string(n++) + ".mlpackage"));
      auto report = CompressModelPath(model, outs.back(), *config, options, {});
      ASSERT_TRUE(report.ok()) << report.status();
      ASSERT_GT(report->weights_compressed, 0);
      reports.push_back(*report);
    }
    for (size_t i = 1; i < outs.size(); ++i) {
      ExpectSameFile(outs[0] + "/Data/com.apple.CoreML/model.mlmodel", outs[i] + "/Data/com.apple.CoreML/model.mlmodel");
      ExpectSameFile(outs[0] + "/Data/com.apple.CoreML/weights/weight.bin",
                     outs[i] + "/Data/com.apple.CoreML/weights/weight.bin");
      const auto& a = reports[0].weights;
      const auto& b = reports[i].weights;
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(reports[0].weights_compressed, reports[i].weights_compressed);
      EXPECT_EQ(reports[0].weights_skipped, reports[i].weights_skipped);
      for (size_t w = 0; w < a.size(); ++w) {
        EXPECT_EQ(a[w].name, b[w].name);
        EXPECT_EQ(a[w].technique, b[w].technique);
        EXPECT_EQ(a[w].skipped_reason, b[w].skipped_reason);
        EXPECT_EQ(a[w].bytes_after, b[w].bytes_after);
        EXPECT_EQ(a[w].distinct_values, b[w].distinct_values);
        EXPECT_EQ(a[w].sparsity, b[w].sparsity);
        EXPECT_EQ(a[w].error.mse, b[w].error.mse);
      }
    }
  }
}

// Cancelled from the progress callback (on the caller's thread) while
// weights are in flight on the pool: CANCELLED, nothing written.
class CancelAfter : public JobControl {
 public:
  explicit CancelAfter(int calls) : left_(calls) {}
  void OnProgress(const Progress&) override {
    if (--left_ == 0) Cancel();
  }

 private:
  int left_;
};

TEST(ParallelCompressTest, CancelStopsAndWritesNothing) {
  auto config = ParseCompressionConfig(kGrouped);
  ASSERT_TRUE(config.ok());
  testing::ScratchDir scratch;
  CompressOptions options;
  options.threads = 4;
  CancelAfter control(3);
  const std::string out = scratch.Join("out.mlpackage");
  auto report = CompressModelPath(Transformer(), out, *config, options, {}, &control);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kCancelled) << report.status();
  EXPECT_FALSE(PathExists(out));
}

// coremlzd's local pool runs each job on one thread, and lends the worker
// slots no job is using to the running jobs' groups: one job alone on a
// 3-slot pool gets help; jobs side by side still write exactly the bytes of
// a one-thread compression, whoever solved which group.
TEST(ParallelCompressTest, WorkerPoolLendsIdleSlotsWithTheSameBytes) {
  testing::ScratchDir scratch;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Transformer(), kGrouped}, {LlmLike(), kGrouped}, {Transformer(), kGroupedVector}};
  std::vector<std::string> expected;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto config = ParseCompressionConfig(cases[i].second);
    ASSERT_TRUE(config.ok()) << config.status();
    expected.push_back(scratch.Join("expected" + std::to_string(i) + ".mlpackage"));
    ASSERT_TRUE(CompressModelPath(cases[i].first, expected.back(), *config, CompressOptions{}, {}).ok());
  }
  LocalWorkerPoolOptions po;
  po.threads = 3;
  std::unique_ptr<WorkerPool> pool = MakeLocalWorkerPool(po);
  // Alone first (so that slots are idle), then all three at once. Every
  // job is waited for before anything is asserted: the callbacks write into
  // this frame.
  for (const std::vector<size_t>& batch : std::vector<std::vector<size_t>>{{0}, {0, 1, 2}}) {
    std::vector<std::string> outs(batch.size());
    std::vector<absl::Status> results(batch.size());
    std::vector<std::unique_ptr<absl::Notification>> done(batch.size());
    for (size_t b = 0; b < batch.size(); ++b) {
      outs[b] = scratch.Join("pool" + std::to_string(batch.size()) + "-" + std::to_string(b) + ".mlpackage");
      done[b] = std::make_unique<absl::Notification>();
      auto config = ParseCompressionConfig(cases[batch[b]].second);
      CompressJob job;
      job.input_path = cases[batch[b]].first;
      job.output_path = outs[b];
      if (config.ok()) job.config = *config;
      job.control = std::make_shared<JobControl>();
      job.done = [&results, &done, b](absl::StatusOr<CompressionReport> r) {
        results[b] = r.status();
        done[b]->Notify();
      };
      const absl::Status submitted = config.ok() ? pool->Submit(std::move(job)) : config.status();
      if (!submitted.ok()) {  // never started: `done` will not be called
        results[b] = submitted;
        done[b]->Notify();
      }
    }
    for (size_t b = 0; b < batch.size(); ++b) done[b]->WaitForNotification();
    for (size_t b = 0; b < batch.size(); ++b) {
      SCOPED_TRACE(cases[batch[b]].first + "\n" + cases[batch[b]].second);
      ASSERT_TRUE(results[b].ok()) << results[b];
      ExpectSameFile(expected[batch[b]] + "/Data/com.apple.CoreML/model.mlmodel",
                     outs[b] + "/Data/com.apple.CoreML/model.mlmodel");
      ExpectSameFile(expected[batch[b]] + "/Data/com.apple.CoreML/weights/weight.bin",
                     outs[b] + "/Data/com.apple.CoreML/weights/weight.bin");
    }
    // A job alone has two idle slots for each of its grouped weights.
    if (batch.size() == 1) {
      EXPECT_GT(pool->slots_lent(), 0) << "no idle slot helped the job";
    }
  }
  pool->Shutdown(absl::ZeroDuration());
}

}  // namespace
}  // namespace coremlz::engine
