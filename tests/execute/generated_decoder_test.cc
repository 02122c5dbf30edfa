// The decoder packages bench/gen_decoder writes (LLM-scale benchmarks and the
// large test) run in the reference executor: both functions, sharing one
// weight.bin and one KV-cache state through a Session.
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "execute/program_executor.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::execute {
namespace {

constexpr int kLayers = 2, kWidth = 32, kMlp = 64, kVocab = 50, kContext = 8, kPrefill = 4;

bool AllFinite(const Tensor& t) {
  for (float v : t.floats()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

double AbsSum(absl::Span<const float> v) {
  double s = 0;
  for (float x : v) s += std::fabs(x);
  return s;
}

// Keys of layer 0 at one cache position: state [2L, 1, context, width].
absl::Span<const float> KeysAt(const Tensor& cache, int position) {
  return cache.floats().subspan(static_cast<size_t>(position) * kWidth, kWidth);
}

TEST(GeneratedDecoderTest, BothFunctionsRunAndShareTheCache) {
  testing::ScratchDir scratch;
  const std::string dir = scratch.Join("tiny.mlpackage");
  testing::CommandResult gen = testing::RunProgram(
      {testing::BinaryPath("bench/gen_decoder"), "--out", dir, "--layers", absl::StrCat(kLayers), "--width",
       absl::StrCat(kWidth), "--mlp-width", absl::StrCat(kMlp), "--vocab", absl::StrCat(kVocab), "--context",
       absl::StrCat(kContext), "--prefill", absl::StrCat(kPrefill), "--seed", "7"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  auto pkg = format::MlPackage::Open(dir);
  ASSERT_TRUE(pkg.ok()) << pkg.status();
  EXPECT_EQ((*pkg)->model().description().defaultfunctionname(), "decode");

  auto prefill = ProgramExecutor::Load(pkg->get(), "prefill");
  ASSERT_TRUE(prefill.ok()) << prefill.status();
  auto decode = ProgramExecutor::Load(pkg->get(), "decode");
  ASSERT_TRUE(decode.ok()) << decode.status();
  auto by_default = ProgramExecutor::Load(pkg->get());
  ASSERT_TRUE(by_default.ok()) << by_default.status();
  EXPECT_EQ((*by_default)->function(), "decode");
  EXPECT_TRUE((*prefill)->is_stateful());
  EXPECT_TRUE((*decode)->is_stateful());

  Session session;
  auto first = (*prefill)->Run({{"ids", Tensor::Int({1, kPrefill}, {1, 2, 3, 4})}}, &session);
  ASSERT_TRUE(first.ok()) << first.status();
  const Tensor& logits = first->at("logits");
  EXPECT_EQ(logits.shape(), (Shape{1, kPrefill, kVocab}));
  EXPECT_TRUE(AllFinite(logits));
  EXPECT_GT(AbsSum(logits.floats()), 0.0);
  const Tensor* cache = session.state("cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->shape(), (Shape{2 * kLayers, 1, kContext, kWidth}));
  for (int p = 0; p < kPrefill; ++p) EXPECT_GT(AbsSum(KeysAt(*cache, p)), 0.0) << "prefill wrote position " << p;
  EXPECT_EQ(AbsSum(KeysAt(*cache, kPrefill)), 0.0);

  auto next = (*decode)->Run({{"ids", Tensor::Int({1, 1}, {5})}}, &session);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->at("logits").shape(), (Shape{1, 1, kVocab}));
  EXPECT_TRUE(AllFinite(next->at("logits")));
  EXPECT_GT(AbsSum(KeysAt(*session.state("cache"), kPrefill)), 0.0) << "decode writes after the prefill";

  // The cache the prefill left is what decode attends over: a fresh session
  // gives other logits for the same token.
  Session fresh;
  auto alone = (*decode)->Run({{"ids", Tensor::Int({1, 1}, {5})}}, &fresh);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_NE(std::vector<float>(alone->at("logits").floats().begin(), alone->at("logits").floats().end()),
            std::vector<float>(next->at("logits").floats().begin(), next->at("logits").floats().end()));
}

}  // namespace
}  // namespace coremlz::execute
