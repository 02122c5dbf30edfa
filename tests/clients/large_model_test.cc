// LLM scale in bounded memory (issue 14): a ~1 GB decoder-shaped package
// (bench/gen_decoder: two functions sharing one weight.bin, a KV-cache
// state) compressed by the embedded CLI with int8 per channel must peak
// under 2x its largest tensor's float32 size + 256 MB of resident memory:
// the engine holds one weight at a time, never the model. Label "large";
// the files live under the build tree's Testing/Temporary (TMPDIR) and are
// removed at the end.
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

// ~0.98 GB of fp16: 9 layers of width 2048 (MLP 5632), vocabulary 32000.
constexpr int64_t kLayers = 9, kWidth = 2048, kMlp = 5632, kVocab = 32000;

TEST(LargeModelTest, EmbeddedInt8PeaksUnderTwiceTheLargestTensorPlus256MB) {
  ScratchDir scratch;
  const std::string model = scratch.Join("decoder.mlpackage");
  const std::string out = scratch.Join("decoder-int8.mlpackage");
  CommandResult gen = RunProgram({BinaryPath("bench/gen_decoder"), "--out", model, "--layers", absl::StrCat(kLayers),
                                  "--width", absl::StrCat(kWidth), "--mlp-width", absl::StrCat(kMlp), "--vocab",
                                  absl::StrCat(kVocab)},
                                 absl::Seconds(600));
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const std::string weights = "/Data/com.apple.CoreML/weights/weight.bin";
  auto size = FileSize(model + weights);
  ASSERT_TRUE(size.ok()) << size.status();
  const uint64_t per_layer = 4 * kWidth * kWidth + 2 * kWidth * kMlp;
  const uint64_t elements = 2 * kVocab * kWidth + kLayers * per_layer;
  EXPECT_GE(*size, elements * 2) << "real fp16 data for every weight";
  EXPECT_GT(*size, uint64_t{900} << 20);

  CommandResult run =
      RunProgram({BinaryPath("clients/coremlz"), "compress", model, "-o", out, "--quantize", "int8"}, absl::Seconds(900));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto out_size = FileSize(out + weights);
  ASSERT_TRUE(out_size.ok()) << out_size.status();
  EXPECT_GT(*out_size, 0u);

  // The largest tensors are the embedding and the lm_head: vocab x width.
  const uint64_t largest_f32 = uint64_t{kVocab} * kWidth * 4;
  const uint64_t bound = 2 * largest_f32 + (uint64_t{256} << 20);
  const uint64_t peak = static_cast<uint64_t>(run.max_rss_kb) * 1024;
  ASSERT_GT(run.max_rss_kb, 0);
  EXPECT_LE(peak, bound) << "peak RSS " << (peak >> 20) << " MB for a " << (*size >> 20) << " MB weight file";
  std::printf("weight.bin %llu MB, largest tensor float32 %llu MB, peak RSS %llu MB (bound %llu MB)\n",
              static_cast<unsigned long long>(*size >> 20), static_cast<unsigned long long>(largest_f32 >> 20),
              static_cast<unsigned long long>(peak >> 20), static_cast<unsigned long long>(bound >> 20));
  ASSERT_TRUE(RemoveAll(scratch.path()).ok());
}

}  // namespace
}  // namespace coremlz::testing
