// Writer fidelity: compressing the golden original with the config recorded
// in ../shared/golden/index.json must give what coremltools gave: the same
// ops, names, dtypes, shapes and attribute/input placement, and for the
// deterministic techniques the same values - byte-identical weight.bin.
#include <cmath>
#include <cstring>
#include <map>

#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/decompress.h"
#include "format/mil_program.h"
#include "format/package.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {
namespace mil = CoreML::Specification::MILSpec;

struct Case {
  std::string package;   // golden package stem
  std::string original;  // golden original stem
  std::string yaml;      // index.json's config in coremltools' from_yaml form
  bool deterministic;    // values must match exactly
};

const Case kCases[] = {
    {"ios16_linear_int8_symmetric_per_channel", "ios16_original",
     "config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric, dtype: int8, granularity: per_channel, weight_threshold: 512}\n",
     true},
    {"ios16_linear_uint8_asymmetric_per_tensor", "ios16_original",
     "config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear, dtype: uint8, granularity: per_tensor, weight_threshold: 512}\n",
     true},
    {"ios16_palettize_4bit_kmeans", "ios16_original",
     "config_type: OpPalettizerConfig\nglobal_config: {mode: kmeans, nbits: 4, weight_threshold: 512}\n", false},
    {"ios16_palettize_2bit_uniform", "ios16_original",
     "config_type: OpPalettizerConfig\nglobal_config: {mode: uniform, nbits: 2, weight_threshold: 512}\n", true},
    {"ios16_prune_magnitude_50", "ios16_original",
     "config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5, weight_threshold: 512}\n", true},
    {"ios16_prune_threshold_0.03", "ios16_original",
     "config_type: OpThresholdPrunerConfig\nglobal_config: {threshold: 0.03, minimum_sparsity_percentile: 0.0, weight_threshold: 512}\n",
     true},
    {"ios18_linear_int4_per_block_32", "ios18_original",
     "config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric, dtype: int4, granularity: per_block, block_size: 32, weight_threshold: 512}\n",
     true},
    {"ios18_palettize_4bit_grouped_channel_16", "ios18_original",
     "config_type: OpPalettizerConfig\nglobal_config: {mode: kmeans, nbits: 4, granularity: per_grouped_channel, group_size: 16, weight_threshold: 512}\n",
     false},
    {"ios18_palettize_3bit_kmeans", "ios18_original",
     "config_type: OpPalettizerConfig\nglobal_config: {mode: kmeans, nbits: 3, weight_threshold: 512}\n", false},
    {"ios18_prune_n_m_2_4", "ios18_original",
     "config_type: OpMagnitudePrunerConfig\nglobal_config: {n_m_ratio: [2, 4], dim: 1, weight_threshold: 512}\n", true},
    {"ios18_joint_prune50_palettize4", "ios18_original",
     "passes:\n"
     "  - config_type: OpMagnitudePrunerConfig\n    global_config: {target_sparsity: 0.5, weight_threshold: 512}\n"
     "  - config_type: OpPalettizerConfig\n    joint_compression: true\n    global_config: {nbits: 4, mode: kmeans, weight_threshold: 512}\n",
     false},
};

std::string Sanitize(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

class GoldenWriterTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Case& c = GetParam();
    auto config = ParseCompressionConfig(c.yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    out_ = scratch_.Join("out.mlpackage");
    auto report = CompressModelPath(testing::GoldenDir() + "/" + c.original + ".mlpackage", out_, *config, {}, {});
    ASSERT_TRUE(report.ok()) << report.status();
    report_ = *report;
    auto ours = format::MlPackage::Open(out_);
    ASSERT_TRUE(ours.ok()) << ours.status();
    ours_ = std::move(*ours);
    auto golden = format::MlPackage::Open(testing::GoldenDir() + "/" + c.package + ".mlpackage");
    ASSERT_TRUE(golden.ok());
    golden_ = std::move(*golden);
  }
  testing::ScratchDir scratch_;
  std::string out_;
  CompressionReport report_;
  std::unique_ptr<format::MlPackage> ours_, golden_;
};

const mil::Block& MainBlock(const format::MlPackage& p) {
  const mil::Function& f = p.model().mlprogram().functions().at("main");
  return f.block_specializations().at(f.opset());
}

TEST_P(GoldenWriterTest, SameOpsNamesTypesAndPlacement) {
  const mil::Block& a = MainBlock(*ours_);
  const mil::Block& b = MainBlock(*golden_);
  ASSERT_EQ(a.operations_size(), b.operations_size());
  EXPECT_EQ(ours_->model().specificationversion(), golden_->model().specificationversion());
  for (int i = 0; i < a.operations_size(); ++i) {
    const mil::Operation& x = a.operations(i);
    const mil::Operation& y = b.operations(i);
    SCOPED_TRACE(y.type() + " " + format::OpName(y));
    EXPECT_EQ(x.type(), y.type());
    EXPECT_EQ(format::OpName(x), format::OpName(y));
    ASSERT_EQ(x.outputs_size(), y.outputs_size());
    for (int o = 0; o < x.outputs_size(); ++o) {
      EXPECT_EQ(x.outputs(o).name(), y.outputs(o).name());
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(x.outputs(o).type(), y.outputs(o).type()));
    }
    // Same parameters, in the same place (attributes vs inputs), with the
    // same types and storage kind (immediate vs blob).
    std::map<std::string, std::string> xa, ya;
    auto describe = [](const mil::Value& v) {
      return v.type().DebugString() + (v.has_blobfilevalue() ? " blob" : " immediate");
    };
    for (const auto& [k, v] : x.attributes()) xa["attr:" + k] = k == "val" || format::IsConstexprOp(x.type()) ? describe(v) : "";
    for (const auto& [k, v] : y.attributes()) ya["attr:" + k] = k == "val" || format::IsConstexprOp(y.type()) ? describe(v) : "";
    for (const auto& [k, arg] : x.inputs())
      for (const auto& bnd : arg.arguments()) xa["in:" + k] += bnd.has_value() ? describe(bnd.value()) : "name:" + bnd.name();
    for (const auto& [k, arg] : y.inputs())
      for (const auto& bnd : arg.arguments()) ya["in:" + k] += bnd.has_value() ? describe(bnd.value()) : "name:" + bnd.name();
    EXPECT_EQ(xa, ya);
  }
}

TEST_P(GoldenWriterTest, DeterministicTechniquesGiveIdenticalBytes) {
  if (!GetParam().deterministic) GTEST_SKIP() << "k-means palettes are compared by quality";
  auto ours = ReadFile(out_ + "/Data/com.apple.CoreML/weights/weight.bin");
  auto golden = ReadFile(testing::GoldenDir() + "/" + GetParam().package + ".mlpackage/Data/com.apple.CoreML/weights/weight.bin");
  ASSERT_TRUE(ours.ok() && golden.ok());
  EXPECT_EQ(ours->size(), golden->size());
  EXPECT_TRUE(*ours == *golden) << "weight.bin differs";
  // And the programs are the same message, map order aside; Core ML tools'
  // re-export drops the buildInfo attribute that we keep.
  CoreML::Specification::Model a = ours_->model(), b = golden_->model();
  a.mutable_mlprogram()->clear_attributes();
  b.mutable_mlprogram()->clear_attributes();
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  EXPECT_TRUE(diff.Compare(a, b)) << report;
}

// Weighted squared error of a package's decompressed weights vs the original.
double SquaredError(format::MlPackage* pkg, format::MlPackage* original) {
  PackageValueReader reader(pkg);
  auto weights = DecompressProgram(pkg->model().mlprogram(), &reader);
  EXPECT_TRUE(weights.ok()) << weights.status();
  PackageValueReader oreader(original);
  double sse = 0;
  for (const auto& w : *weights) {
    if (w.intermediate) continue;
    // The original const has the name before the suffix.
    std::string base = w.name.substr(0, w.name.rfind('_'));
    auto origs = format::ListProgramWeights(original->model().mlprogram(), [&](const format::BlobRef& r) -> absl::StatusOr<format::BlobMetadata> {
      auto f = original->WeightFile(r.file_name);
      if (!f.ok()) return f.status();
      return (*f)->Metadata(r.offset);
    });
    const mil::Block& blk = MainBlock(*original);
    for (const auto& op : blk.operations()) {
      if (op.type() == "const" && op.outputs(0).name() == base) {
        auto t = oreader.Read(op.attributes().at("val"));
        auto a = format::ToFloats(format::View(*t));
        auto b = format::ToFloats(format::View(w.dense));
        for (size_t i = 0; i < a->size(); ++i) sse += ((*a)[i] - (*b)[i]) * double((*a)[i] - (*b)[i]);
      }
    }
  }
  return sse;
}

TEST_P(GoldenWriterTest, KMeansIsAtLeastAsAccurate) {
  if (GetParam().deterministic) GTEST_SKIP() << "compared byte for byte";
  auto original = format::MlPackage::Open(testing::GoldenDir() + "/" + GetParam().original + ".mlpackage");
  ASSERT_TRUE(original.ok());
  const double ours = SquaredError(ours_.get(), original->get());
  const double theirs = SquaredError(golden_.get(), original->get());
  EXPECT_GT(theirs, 0);
  // The exact 1-D k-means is optimal before fp16 rounding of the palette;
  // allow a hair for that rounding.
  EXPECT_LE(ours, theirs * 1.0001) << "ours " << ours << " coremltools " << theirs;
}

TEST_P(GoldenWriterTest, ReportMatchesTheBytes) {
  ASSERT_EQ(report_.weights_compressed, 2);
  // Independent check: decompress what we wrote and compare with the SNR we claim.
  PackageValueReader reader(ours_.get());
  auto weights = DecompressProgram(ours_->model().mlprogram(), &reader);
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto original = format::MlPackage::Open(testing::GoldenDir() + "/" + GetParam().original + ".mlpackage");
  PackageValueReader oreader(original->get());
  for (const WeightReport& row : report_.weights) {
    if (row.technique == "none") continue;
    const DecompressedWeight* dw = nullptr;
    for (const auto& w : *weights) {
      if (!w.intermediate && w.name.rfind(row.name, 0) == 0) dw = &w;
    }
    ASSERT_NE(dw, nullptr) << row.name;
    for (const auto& op : MainBlock(**original).operations()) {
      if (op.type() != "const" || op.outputs(0).name() != row.name) continue;
      auto t = oreader.Read(op.attributes().at("val"));
      auto a = format::ToFloats(format::View(*t));
      auto b = format::ToFloats(format::View(dw->dense));
      compress::ErrorMetrics m = compress::CompareTensors(*a, *b);
      EXPECT_NEAR(m.snr_db, row.error.snr_db, 1e-9) << row.name;
      EXPECT_EQ(m.max_abs_error, row.error.max_abs_error) << row.name;
      EXPECT_EQ(compress::Sparsity(*b), row.sparsity);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllGolden, GoldenWriterTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return Sanitize(info.param.package); });

}  // namespace
}  // namespace coremlz::engine
