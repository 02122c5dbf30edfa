#include "format/neural_network_weights.h"

#include "common/file_util.h"
#include "format/nn_bit_packing.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::format {
namespace {
namespace spec = CoreML::Specification;

spec::Model LoadEdsr() {
  auto bytes = ReadFile(testing::ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel");
  EXPECT_TRUE(bytes.ok());
  auto model = ParseModelSpec(*bytes, "edsr");
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

TEST(NeuralNetworkWeightsTest, ListsEdsrConvolutions) {
  spec::Model model = LoadEdsr();
  EXPECT_EQ(model.specificationversion(), 4);
  ASSERT_TRUE(HasNeuralNetwork(model));
  auto weights = ListNeuralNetworkWeights(&model);
  ASSERT_TRUE(weights.ok()) << weights.status();
  int conv_weights = 0;
  uint64_t total = 0;
  for (const auto& w : *weights) {
    total += w.stored_bytes;
    if (w.layer_type == "convolution" && w.field == "weights") {
      ++conv_weights;
      EXPECT_EQ(w.storage, WeightStorage::kFloat32);
      EXPECT_EQ(w.shape.size(), 4u);
      auto values = DecodeWeightParams(w);
      ASSERT_TRUE(values.ok());
      EXPECT_EQ(values->size(), w.element_count);
    }
  }
  EXPECT_EQ(conv_weights, 13);
  // Nearly the whole 430 kB file is weights.
  EXPECT_GT(total, 400000u);
  EXPECT_LT(total, 429645u);
}

TEST(NeuralNetworkWeightsTest, BuilderModelsInBothPrecisions) {
  for (bool fp16 : {false, true}) {
    spec::Model model = testing::BuildNeuralNetworkModel(fp16, 3);
    auto weights = ListNeuralNetworkWeights(&model);
    ASSERT_TRUE(weights.ok()) << weights.status();
    ASSERT_EQ(weights->size(), 8u);
    EXPECT_EQ((*weights)[0].shape, (Shape{32, 16, 3, 3}));
    EXPECT_EQ((*weights)[0].storage, fp16 ? WeightStorage::kFloat16 : WeightStorage::kFloat32);
    EXPECT_EQ((*weights)[6].shape, (Shape{64, 2048}));
  }
}

TEST(NeuralNetworkWeightsTest, DecodesQuantizedStorage) {
  spec::Model model = testing::BuildNeuralNetworkModel(false, 3);
  spec::WeightParams* wp = model.mutable_neuralnetwork()->mutable_layers(0)->mutable_convolution()->mutable_weights();
  wp->clear_floatvalue();
  const uint64_t n = 32 * 16 * 9;
  std::vector<uint8_t> codes(n);
  for (uint64_t i = 0; i < n; ++i) codes[i] = static_cast<uint8_t>(i % 16);
  wp->set_rawvalue(PackNeuralNetworkCodes(codes, 4));
  wp->mutable_quantization()->set_numberofbits(4);
  auto* lq = wp->mutable_quantization()->mutable_linearquantization();
  for (int c = 0; c < 32; ++c) {
    lq->add_scale(0.5f * (c + 1));
    lq->add_bias(-1.0f);
  }
  auto weights = ListNeuralNetworkWeights(&model);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const NeuralNetworkWeight& w = (*weights)[0];
  EXPECT_EQ(w.storage, WeightStorage::kLinearQuantized);
  EXPECT_EQ(w.stored_bytes, n / 2);
  auto values = DecodeWeightParams(w);
  ASSERT_TRUE(values.ok());
  for (uint64_t i = 0; i < n; i += 97) {
    const int c = static_cast<int>(i / (16 * 9));
    EXPECT_FLOAT_EQ((*values)[i], 0.5f * (c + 1) * static_cast<float>(i % 16) - 1.0f);
  }

  // Lookup table form.
  wp->mutable_quantization()->clear_linearquantization();
  auto* lut = wp->mutable_quantization()->mutable_lookuptablequantization();
  for (int i = 0; i < 16; ++i) lut->add_floatvalue(static_cast<float>(i) * 10);
  weights = ListNeuralNetworkWeights(&model);
  ASSERT_TRUE(weights.ok());
  values = DecodeWeightParams((*weights)[0]);
  EXPECT_EQ((*values)[5], 50.f);
}

TEST(NeuralNetworkWeightsTest, RejectsInconsistentStorage) {
  spec::Model model = testing::BuildNeuralNetworkModel(false, 3);
  auto* conv = model.mutable_neuralnetwork()->mutable_layers(0)->mutable_convolution();
  conv->mutable_weights()->add_floatvalue(1.0f);  // one value too many
  auto weights = ListNeuralNetworkWeights(&model);
  ASSERT_FALSE(weights.ok());
  EXPECT_NE(weights.status().message().find("conv1"), std::string::npos) << weights.status();
  EXPECT_NE(weights.status().message().find("4609"), std::string::npos) << weights.status();

  model = testing::BuildNeuralNetworkModel(false, 3);
  auto* wp = model.mutable_neuralnetwork()->mutable_layers(0)->mutable_convolution()->mutable_weights();
  wp->clear_floatvalue();
  wp->set_rawvalue(std::string(10, '\0'));
  wp->mutable_quantization()->set_numberofbits(4);
  wp->mutable_quantization()->mutable_linearquantization()->add_scale(1);
  weights = ListNeuralNetworkWeights(&model);
  ASSERT_FALSE(weights.ok());
  EXPECT_NE(weights.status().message().find("need 2304"), std::string::npos) << weights.status();

  wp->set_rawvalue(std::string(2304, '\0'));
  wp->mutable_quantization()->set_numberofbits(12);
  EXPECT_NE(ListNeuralNetworkWeights(&model).status().message().find("numberOfBits 12"), std::string::npos);

  wp->mutable_quantization()->set_numberofbits(4);
  wp->mutable_quantization()->mutable_linearquantization()->add_scale(1);  // 2 scales for 32 channels
  EXPECT_NE(ListNeuralNetworkWeights(&model).status().message().find("2 scales"), std::string::npos);

  wp->set_float16value("abc");
  EXPECT_NE(ListNeuralNetworkWeights(&model).status().message().find("more than one"), std::string::npos);
}

TEST(NeuralNetworkWeightsTest, NotANeuralNetwork) {
  spec::Model model;
  model.mutable_mlprogram();
  EXPECT_FALSE(ListNeuralNetworkWeights(&model).ok());
}

}  // namespace
}  // namespace coremlz::format
