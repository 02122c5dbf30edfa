// Whole-model compression of the real models in ../shared/models with every
// technique. Each result is checked through the independent read path: the
// package must open and validate, every constexpr op must decompress, the
// report's SNR must be what the bytes decode to, and sizes must land where
// the technique says they should.
#include <cmath>
#include <map>

#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/decompress.h"
#include "engine/inventory.h"
#include "format/mil_program.h"
#include "format/neural_network_weights.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {
namespace mil = CoreML::Specification::MILSpec;

std::string Mobilenet() { return testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }
std::string Transformer() { return testing::ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage"; }

struct Technique {
  std::string name;
  std::string yaml;
  bool needs_ios18;
  double min_ratio, max_ratio;  // on the compressed weights' bytes
  double min_snr_db;
};

const Technique kTechniques[] = {
    {"palettize4", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n", false, 3.8, 4.0, 15},
    {"palettize2_uniform", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 2, mode: uniform}\n", false, 7.5, 8.0, -3},
    {"palettize6", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 6}\n", false, 2.5, 2.67, 25},
    {"palettize8", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 8}\n", false, 1.8, 2.0, 35},
    {"palettize1", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 1}\n", false, 15, 16, 0},
    {"quantize_int8", "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n", false, 1.9, 2.0, 30},
    {"quantize_uint8_linear_per_tensor", "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint8, mode: linear, granularity: per_tensor}\n", false, 1.99, 2.0, 25},
    {"prune50", "config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5}\n", false, 1.7, 1.9, 2},
    {"prune_threshold", "config_type: OpThresholdPrunerConfig\nglobal_config: {threshold: 0.01, minimum_sparsity_percentile: 0.0}\n", false, 0.9, 16, 0},
    {"palettize3", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 3}\n", true, 5.0, 5.34, 9},
    {"palettize4_grouped", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, granularity: per_grouped_channel, group_size: 16}\n", true, 3.0, 4.0, 15},
    {"palettize_vector", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, cluster_dim: 2}\n", true, 7.0, 8.0, 5},
    {"palettize_pcs", "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, enable_per_channel_scale: true}\n", true, 1.0, 4.0, 15},
    {"quantize_int4_block", "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: per_block, block_size: 32}\n", true, 3.5, 4.0, 15},
    {"quantize_uint4", "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint4, mode: linear}\n", true, 3.8, 4.0, 12},
    {"prune_2_4", "config_type: OpMagnitudePrunerConfig\nglobal_config: {n_m_ratio: [2, 4]}\n", false, 1.7, 1.8, 2},
    {"joint_prune_palettize", "passes:\n  - {config_type: OpMagnitudePrunerConfig, global_config: {target_sparsity: 0.5}}\n  - {config_type: OpPalettizerConfig, joint_compression: true, global_config: {nbits: 4}}\n", true, 5.0, 6.5, 2},
    {"joint_prune_quantize", "passes:\n  - {config_type: OpMagnitudePrunerConfig, global_config: {target_sparsity: 0.5}}\n  - {config_type: OpLinearQuantizerConfig, joint_compression: true, global_config: {dtype: int8}}\n", true, 2.9, 3.3, 2},
};

struct ModelCase {
  std::string label;
  std::string path;
  bool ios18;
};

class RealModelTest : public ::testing::TestWithParam<std::tuple<ModelCase, Technique>> {};

// Dense values of every original const by name.
std::map<std::string, std::vector<float>> OriginalWeights(const std::string& path) {
  auto pkg = format::MlPackage::Open(path);
  EXPECT_TRUE(pkg.ok());
  PackageValueReader reader(pkg->get());
  std::map<std::string, std::vector<float>> out;
  for (const auto& [fname, f] : (*pkg)->model().mlprogram().functions()) {
    for (const auto& op : f.block_specializations().at(f.opset()).operations()) {
      if (op.type() != "const") continue;
      const mil::Value& v = op.attributes().at("val");
      if (!v.has_blobfilevalue()) continue;
      auto t = reader.Read(v);
      out[op.outputs(0).name()] = *format::ToFloats(format::View(*t));
    }
  }
  return out;
}

TEST_P(RealModelTest, CompressesAndDecompressesConsistently) {
  const auto& [model, tech] = GetParam();
  auto config = ParseCompressionConfig(tech.yaml);
  ASSERT_TRUE(config.ok()) << config.status();
  testing::ScratchDir scratch;
  const std::string out = scratch.Join("out.mlpackage");
  auto report = CompressModelPath(model.path, out, *config, {}, {});
  if (tech.needs_ios18 && !model.ios18) {
    ASSERT_FALSE(report.ok()) << "an iOS16 model cannot take " << tech.name;
    EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition) << report.status();
    EXPECT_NE(report.status().message().find("iOS18"), std::string::npos) << report.status();
    EXPECT_FALSE(PathExists(out)) << "nothing may be written on failure";
    return;
  }
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_GT(report->weights_compressed, 0);

  auto pkg = format::MlPackage::Open(out);
  ASSERT_TRUE(pkg.ok()) << pkg.status();
  // The format layer's own validation: every blob reference resolves and
  // agrees with its declared type, nothing overlaps.
  format::MlPackage* p = pkg->get();
  auto listed = format::ListProgramWeights(p->model().mlprogram(), [p](const format::BlobRef& r) -> absl::StatusOr<format::BlobMetadata> {
    auto f = p->WeightFile(r.file_name);
    if (!f.ok()) return f.status();
    return (*f)->Metadata(r.offset);
  });
  ASSERT_TRUE(listed.ok()) << listed.status();
  // Independent decompression.
  PackageValueReader reader(p);
  auto dense = DecompressProgram(p->model().mlprogram(), &reader);
  ASSERT_TRUE(dense.ok()) << dense.status();
  std::map<std::string, const DecompressedWeight*> by_name;
  for (const auto& d : *dense) by_name[d.name] = &d;
  const auto originals = OriginalWeights(model.path);

  uint64_t before = 0, after = 0;
  for (const WeightReport& row : report->weights) {
    if (row.technique == "none") continue;
    // The final op of this weight: consumers read <name>_<suffix>.
    const DecompressedWeight* d = nullptr;
    for (const auto& [n, w] : by_name) {
      if (!w->intermediate && n.rfind(row.name + "_", 0) == 0 && n.find('_', row.name.size() + 1) == std::string::npos) d = w;
      if (!w->intermediate && (n == row.name + "_sparsified" || n == row.name + "_palettized_pcs")) d = w;
    }
    ASSERT_NE(d, nullptr) << "no decompressed output for " << row.name;
    auto values = format::ToFloats(format::View(d->dense));
    ASSERT_TRUE(values.ok());
    const auto& orig = originals.at(row.name);
    ASSERT_EQ(values->size(), orig.size());
    const compress::ErrorMetrics m = compress::CompareTensors(orig, *values);
    EXPECT_NEAR(m.snr_db, row.error.snr_db, 1e-9) << row.name;
    EXPECT_EQ(m.max_abs_error, row.error.max_abs_error) << row.name;
    EXPECT_GE(row.error.snr_db, tech.min_snr_db) << row.name;
    if (tech.name.rfind("prune", 0) == 0 && tech.name != "prune_threshold") {
      EXPECT_NEAR(compress::Sparsity(*values), 0.5, 0.02) << row.name;
    }
    before += row.bytes_before;
    after += row.bytes_after;
  }
  const double ratio = static_cast<double>(before) / after;
  EXPECT_GE(ratio, tech.min_ratio) << tech.name;
  EXPECT_LE(ratio, tech.max_ratio) << tech.name;
  // The report's totals are the files' sizes.
  auto weight_file = FileSize(out + "/Data/com.apple.CoreML/weights/weight.bin");
  ASSERT_TRUE(weight_file.ok());
  EXPECT_EQ(report->weight_bytes_after, *weight_file);
  // Manifest untouched.
  EXPECT_EQ(*ReadFile(out + "/Manifest.json"), *ReadFile(model.path + "/Manifest.json"));
}

INSTANTIATE_TEST_SUITE_P(
    Shared, RealModelTest,
    ::testing::Combine(::testing::Values(ModelCase{"mobilenet", Mobilenet(), false}, ModelCase{"transformer", Transformer(), true}),
                       ::testing::ValuesIn(kTechniques)),
    [](const auto& info) { return std::get<0>(info.param).label + "_" + std::get<1>(info.param).name; });

TEST(RealModelTest, NeuralNetworkModelInEveryLegacyForm) {
  const std::string edsr = testing::ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel";
  struct Case {
    std::string yaml;
    format::WeightStorage storage;
    double ratio_min;
    double snr_min;
    int spec_min;
  } cases[] = {
      {"config_type: Fp16Config\nglobal_config: {weight_threshold: 0}\n", format::WeightStorage::kFloat16, 1.99, 60, 4},
      {"config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint8, mode: linear}\n", format::WeightStorage::kLinearQuantized, 3.9, 35, 4},
      {"config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n", format::WeightStorage::kLinearQuantized, 3.9, 35, 4},
      {"config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n", format::WeightStorage::kLookupTable, 7.5, 15, 4},
      {"config_type: OpPalettizerConfig\nglobal_config: {nbits: 6, mode: uniform}\n", format::WeightStorage::kLookupTable, 5.0, 15, 4},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    testing::ScratchDir scratch;
    auto config = ParseCompressionConfig(c.yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    auto report = CompressModelPath(edsr, scratch.Join("out.mlmodel"), *config, {}, {});
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_GE(report->weights_compressed, 11);
    auto bytes = ReadFile(scratch.Join("out.mlmodel"));
    auto model = format::ParseModelSpec(*bytes, "out");
    ASSERT_TRUE(model.ok());
    EXPECT_GE(model->specificationversion(), c.spec_min);
    auto weights = format::ListNeuralNetworkWeights(&*model);
    ASSERT_TRUE(weights.ok()) << weights.status();
    for (const WeightReport& row : report->weights) {
      if (row.technique == "none") continue;
      EXPECT_GE(static_cast<double>(row.bytes_before) / row.bytes_after, c.ratio_min) << row.name;
      EXPECT_GE(row.error.snr_db, c.snr_min) << row.name;
    }
    int converted = 0;
    for (const auto& w : *weights) converted += w.storage == c.storage;
    EXPECT_EQ(converted, report->weights_compressed);
  }
  // Pruning has no NeuralNetwork form.
  testing::ScratchDir scratch;
  auto prune = ParseCompressionConfig("config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5}\n");
  auto r = CompressModelPath(edsr, scratch.Join("p.mlmodel"), *prune, {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ML Program"), std::string::npos);
}

TEST(RealModelTest, Fp32ProgramsGetFp16Storage) {
  testing::ScratchDir scratch;
  const std::string in = scratch.Join("fp32.mlpackage");
  ASSERT_TRUE(testing::WriteMixedTestPackage(in, format::ElementType::kFloat32, 7).ok());
  auto config = ParseCompressionConfig("config_type: Fp16Config\nglobal_config: {weight_threshold: 512}\n");
  auto report = CompressModelPath(in, scratch.Join("out.mlpackage"), *config, {}, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->weights_compressed, 3);
  for (const auto& row : report->weights) {
    if (row.technique != "fp16") continue;
    EXPECT_EQ(row.op_type, "constexpr_cast");
    EXPECT_EQ(row.bytes_after * 2, row.bytes_before);
    EXPECT_GT(row.error.snr_db, 60);
  }
  // And fp32 programs palettize with fp32 palettes.
  auto pal = ParseCompressionConfig("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, weight_threshold: 512}\n");
  auto r2 = CompressModelPath(in, scratch.Join("pal.mlpackage"), *pal, {}, {});
  ASSERT_TRUE(r2.ok()) << r2.status();
  auto inv = InspectModel(scratch.Join("pal.mlpackage"));
  ASSERT_TRUE(inv.ok()) << inv.status();
  bool saw = false;
  for (const auto& e : inv->weights) {
    if (e.op_type == "constexpr_lut_to_dense") {
      saw = true;
      EXPECT_EQ(e.dtype, "fp32");
      EXPECT_NE(e.storage.find("lut:fp32"), std::string::npos) << e.storage;
    }
  }
  EXPECT_TRUE(saw);
}

}  // namespace
}  // namespace coremlz::engine
