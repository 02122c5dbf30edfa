// The NeuralNetwork models in ../shared/models through the NN executor, end
// to end: each runs on synthetic input with finite outputs; the real-weight
// ones behave as a person would expect (EDSR upscales a smooth image, MNIST
// reads digits drawn in code); compressed EDSR forms order by fidelity.
#include <cmath>
#include <cstdio>
#include <map>

#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "execute/compare.h"
#include "execute/loaded_model.h"
#include "execute/nn_executor.h"
#include "execute/output_check.h"
#include "execute/synthetic_inputs.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::execute {
namespace {

std::string Edsr() { return testing::ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel"; }
std::string Mnist() { return testing::ModelsDir() + "/mnist_swiftbrain/MNIST.mlmodel"; }

// Every NeuralNetwork in ../shared/models: runs on its synthetic inputs
// with finite outputs of the described shapes.
TEST(NnModels, EverySharedNeuralNetworkRunsOnSyntheticInput) {
  struct Case {
    std::string path;
    std::map<std::string, Shape> outputs;
  };
  const Case cases[] = {
      {Edsr(), {{"Identity", {1, 1080, 1920, 3}}}},
      {Mnist(), {{"prediction", {10}}}},
      {testing::ModelsDir() + "/tiny_drawing_embedding/TinyDrawingEmbedding.mlmodel", {{"embedding", {128}}}},
      {testing::ModelsDir() + "/posenet_mobilenet075_fp16/PoseNetMobileNet075S16FP16.mlpackage",
       {{"displacementBwd", {32, 33, 33}},
        {"displacementFwd", {32, 33, 33}},
        {"heatmap", {17, 33, 33}},
        {"offsets", {34, 33, 33}}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    auto model = LoadModel(c.path, "");
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(model->executor->function(), "main");
    auto specs = DescribeInputs(model->model(), *model->executor);
    ASSERT_TRUE(specs.ok()) << specs.status();
    RunStats stats;
    auto out = model->executor->Run(SyntheticInputs(*specs, 7, 0), &stats);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_GT(stats.ops_run, 5);
    ASSERT_EQ(out->size(), c.outputs.size());
    for (const auto& [name, shape] : c.outputs) {
      ASSERT_TRUE(out->count(name)) << name;
      const Tensor& t = out->at(name);
      EXPECT_EQ(t.shape(), shape) << name;
      int finite = 0;
      for (float v : t.floats()) finite += std::isfinite(v);
      EXPECT_EQ(finite, t.size()) << name;
    }
  }
}

// A smooth RGB test image, [1, H, W, 3] in [0, 255] (EDSR's input layout).
Tensor SmoothImage(int64_t h, int64_t w) {
  std::vector<float> v(h * w * 3);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        v[(y * w + x) * 3 + c] = 127.5f + 80.f * std::sin(0.011f * x + 1.3f * c) * std::cos(0.017f * y - 0.4f * c);
      }
    }
  }
  return Tensor::Float({1, h, w, 3}, std::move(v));
}

// EDSR (fp32) on the smooth image, run once for the tests below: a run
// takes seconds.
class EdsrTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    image_ = new Tensor(SmoothImage(540, 960));
    auto model = LoadModel(Edsr(), "");
    ASSERT_TRUE(model.ok()) << model.status();
    auto out = model->executor->Run({{"input_1", *image_}});
    ASSERT_TRUE(out.ok()) << out.status();
    output_ = new Tensor(out->at("Identity"));
  }
  static void TearDownTestSuite() {
    delete image_;
    delete output_;
  }
  void SetUp() override { ASSERT_NE(output_, nullptr); }
  static Tensor* image_;
  static Tensor* output_;
};
Tensor* EdsrTest::image_ = nullptr;
Tensor* EdsrTest::output_ = nullptr;

// EDSR x2 of a smooth image is that image upscaled: compare with the input
// repeated 2x2 (a crude upscale; a smooth image makes it close).
TEST_F(EdsrTest, UpscalesASmoothImage) {
  const Tensor& image = *image_;
  const Tensor& y = *output_;
  ASSERT_EQ(y.shape(), (Shape{1, 1080, 1920, 3}));
  std::vector<float> upscaled(y.size());
  for (int64_t r = 0; r < 1080; ++r) {
    for (int64_t c = 0; c < 1920; ++c) {
      for (int k = 0; k < 3; ++k) upscaled[(r * 1920 + c) * 3 + k] = image.floats()[((r / 2) * 960 + c / 2) * 3 + k];
    }
  }
  auto cmp = CompareOutputs(upscaled, y.floats());
  ASSERT_TRUE(cmp.ok());
  std::printf("EDSR of a smooth image vs the image repeated 2x2: PSNR %.2f dB, cosine %.6f\n", cmp->psnr_db,
              cmp->cosine);
  EXPECT_GT(cmp->psnr_db, 30);
  EXPECT_GT(cmp->cosine, 0.999);
}

// A digit drawn in code, 28x28 gray, white strokes on black as MNIST has
// them: pixels [1, 1, 28, 28].
Tensor Digit(int digit) {
  std::vector<float> v(28 * 28, 0.f);
  auto ink = [&](double y, double x) {
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        const int r = static_cast<int>(std::lround(y)) + dy, c = static_cast<int>(std::lround(x)) + dx;
        if (r >= 0 && r < 28 && c >= 0 && c < 28) v[r * 28 + c] = 255.f;
      }
  };
  if (digit == 1) {
    for (double y = 5; y <= 22; y += 0.25) ink(y, 14);
  } else if (digit == 0) {
    for (double t = 0; t < 6.2832; t += 0.02) ink(14 + 8.5 * std::sin(t), 14 + 5.5 * std::cos(t));
  } else if (digit == 7) {
    for (double x = 8; x <= 20; x += 0.25) ink(6, x);
    for (double t = 0; t <= 1; t += 0.01) ink(6 + 16 * t, 20 - 8 * t);
  }
  return Tensor::Float({1, 1, 28, 28}, std::move(v));
}

TEST(NnModels, MnistReadsDigitsDrawnInCode) {
  auto model = LoadModel(Mnist(), "");
  ASSERT_TRUE(model.ok()) << model.status();
  for (int digit : {0, 1, 7}) {
    auto out = model->executor->Run({{"image", Digit(digit)}});
    ASSERT_TRUE(out.ok()) << out.status();
    const auto p = out->at("prediction").floats();
    ASSERT_EQ(p.size(), 10u);
    int best = 0;
    double sum = 0;
    for (int i = 0; i < 10; ++i) {
      sum += p[i];
      if (p[i] > p[best]) best = i;
    }
    std::printf("MNIST on a drawn %d: class %d (p = %.3f)\n", digit, best, p[best]);
    EXPECT_NEAR(sum, 1.0, 1e-4);  // the network ends in softmax
    EXPECT_EQ(best, digit);
  }
}

// EDSR compressed by our engine to fp16, 8-bit linear and 2-bit palettes:
// the same executor runs them (weights decoded through format/), and output
// fidelity orders as the compression does.
TEST_F(EdsrTest, CompressedFormsOrderByFidelity) {
  testing::ScratchDir scratch;
  struct Case {
    const char* label;
    const char* yaml;
    double psnr_min, psnr_max;
  };
  const Case cases[] = {
      {"fp16", "config_type: Fp16Config\nglobal_config: {weight_threshold: 0}\n", 60, 1e9},
      {"int8", "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n", 40, 1e9},
      {"lut2", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 2}\n", 0, 40},
  };
  const std::map<std::string, Tensor> inputs = {{"input_1", *image_}};
  double previous = INFINITY;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    auto config = engine::ParseCompressionConfig(c.yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    const std::string out = scratch.Join(std::string(c.label) + ".mlmodel");
    auto report = engine::CompressModelPath(Edsr(), out, *config, {}, {});
    ASSERT_TRUE(report.ok()) << report.status();
    auto compressed = LoadModel(out, "");
    ASSERT_TRUE(compressed.ok()) << compressed.status();
    auto got = compressed->executor->Run(inputs);
    ASSERT_TRUE(got.ok()) << got.status();
    auto cmp = CompareOutputs(output_->floats(), got->at("Identity").floats());
    ASSERT_TRUE(cmp.ok());
    std::printf("EDSR %s vs fp32 on a smooth image: PSNR %.2f dB, cosine %.6f\n", c.label, cmp->psnr_db, cmp->cosine);
    EXPECT_GT(cmp->psnr_db, c.psnr_min);
    EXPECT_LT(cmp->psnr_db, c.psnr_max);
    EXPECT_LT(cmp->psnr_db, previous);
    previous = cmp->psnr_db;
  }
}

// The output check (compress --check) takes .mlmodel files too.
TEST(NnModels, OutputCheckComparesNeuralNetworkFiles) {
  testing::ScratchDir scratch;
  const std::string tiny = testing::ModelsDir() + "/tiny_drawing_embedding/TinyDrawingEmbedding.mlmodel";
  auto config = engine::ParseCompressionConfig("config_type: Fp16Config\nglobal_config: {weight_threshold: 0}\n");
  ASSERT_TRUE(config.ok());
  const std::string out = scratch.Join("tiny_fp16.mlmodel");
  ASSERT_TRUE(engine::CompressModelPath(tiny, out, *config, {}, {}).ok());
  OutputCheckOptions options;
  options.samples = 2;
  auto checks = CheckOutputs(tiny, out, options);
  ASSERT_TRUE(checks.ok()) << checks.status();
  ASSERT_EQ(checks->size(), 1u);
  EXPECT_EQ(checks->at(0).name, "embedding");
  EXPECT_GT(checks->at(0).psnr_db, 50);
  EXPECT_GT(checks->at(0).cosine, 0.9999);
}

// compress --check on a NeuralNetwork inside an .mlpackage (PoseNet, as Xcode
// wrapped it): the compressed package runs, and the outputs' fidelity orders
// with the bits.
TEST(NnModels, OutputCheckComparesNeuralNetworkPackages) {
  testing::ScratchDir scratch;
  const std::string posenet =
      testing::ModelsDir() + "/posenet_mobilenet075_fp16/PoseNetMobileNet075S16FP16.mlpackage";
  std::map<std::string, double> worst_psnr;
  for (const char* label : {"int8", "lut1"}) {
    SCOPED_TRACE(label);
    auto config = engine::ParseCompressionConfig(
        std::string(label) == "int8" ? "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n"
                                     : "config_type: OpPalettizerConfig\nglobal_config: {nbits: 1}\n");
    ASSERT_TRUE(config.ok());
    const std::string out = scratch.Join(std::string(label) + ".mlpackage");
    auto report = engine::CompressModelPath(posenet, out, *config, {}, {});
    ASSERT_TRUE(report.ok()) << report.status();
    ASSERT_GT(report->weights_compressed, 20);
    OutputCheckOptions options;
    options.samples = 1;
    AddOutputCheck(posenet, out, options, &*report);
    EXPECT_EQ(report->check_error, "");
    ASSERT_EQ(report->output_checks.size(), 4u);
    double worst = INFINITY;
    for (const engine::OutputCheck& c : report->output_checks) worst = std::min(worst, c.psnr_db);
    std::printf("PoseNet package %s: worst output PSNR %.2f dB\n", label, worst);
    EXPECT_TRUE(std::isfinite(worst)) << "compressed weights change the outputs";
    worst_psnr[label] = worst;
  }
  EXPECT_GT(worst_psnr["int8"], 25);
  EXPECT_GT(worst_psnr["int8"], worst_psnr["lut1"] + 10);
}

TEST(NnModels, NeuralNetworkHasOnlyTheMainFunction) {
  auto model = LoadModel(Mnist(), "decode");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
}

}  // namespace
}  // namespace coremlz::execute
