// Every distinct blob stored once: weights several functions of a
// multifunction package share are compressed and written once (against
// coremltools' references in ../shared/golden/llm_like, made by compressing
// each function and combining them with save_multifunction), identical
// parameter blobs share one offset (coremltools' const_deduplication), blob
// headers are canonical, and a model nothing changed keeps its version.
#include <algorithm>
#include <map>
#include <set>

#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/decompress.h"
#include "engine/op_spec.h"
#include "format/blob_storage.h"
#include "format/mil_program.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {
namespace mil = CoreML::Specification::MILSpec;

constexpr char kWeights[] = "Data/com.apple.CoreML/weights/weight.bin";

std::string LlmLike(const std::string& stem) { return testing::GoldenDir() + "/llm_like/" + stem + ".mlpackage"; }

std::unique_ptr<format::MlPackage> OpenOrDie(const std::string& path) {
  auto p = format::MlPackage::Open(path);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

uint64_t SizeOf(const std::string& package) {
  auto size = FileSize(package + "/" + kWeights);
  EXPECT_TRUE(size.ok()) << size.status();
  return size.ok() ? *size : 0;
}

const mil::Block& BlockOf(const mil::Function& f) { return f.block_specializations().at(f.opset()); }

// Every blob reference of a block's ops: (op output name, parameter) -> offset.
std::map<std::string, uint64_t> BlobRefs(const mil::Block& block) {
  std::map<std::string, uint64_t> refs;
  for (const mil::Operation& op : block.operations()) {
    const std::string owner = op.outputs_size() ? op.outputs(0).name() : op.type();
    for (const auto& [k, v] : op.attributes()) {
      if (v.has_blobfilevalue()) refs[owner + "." + k] = v.blobfilevalue().offset();
    }
    for (const auto& [k, arg] : op.inputs()) {
      for (const auto& b : arg.arguments()) {
        if (b.has_value() && b.value().has_blobfilevalue()) refs[owner + "." + k] = b.value().blobfilevalue().offset();
      }
    }
  }
  return refs;
}

std::map<std::string, int> OpTypes(const mil::Block& block) {
  std::map<std::string, int> types;
  for (const mil::Operation& op : block.operations()) ++types[op.type()];
  return types;
}

// function -> dense output name -> values, of every final constexpr output.
std::map<std::string, std::map<std::string, std::vector<float>>> Decoded(format::MlPackage* pkg) {
  PackageValueReader reader(pkg);
  auto weights = DecompressProgram(pkg->model().mlprogram(), &reader);
  EXPECT_TRUE(weights.ok()) << weights.status();
  std::map<std::string, std::map<std::string, std::vector<float>>> out;
  if (!weights.ok()) return out;
  for (const DecompressedWeight& w : *weights) {
    if (w.intermediate) continue;
    auto f = format::ToFloats(format::View(w.dense));
    EXPECT_TRUE(f.ok());
    out[w.function][w.name] = *f;
  }
  return out;
}

struct LlmCase {
  std::string reference;
  std::string yaml;
};

class LlmLikeTest : public ::testing::TestWithParam<LlmCase> {
 protected:
  void SetUp() override {
    auto config = ParseCompressionConfig(GetParam().yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    out_ = scratch_.Join("out.mlpackage");
    auto report = CompressModelPath(LlmLike("llm_like_multifunction"), out_, *config, {}, {});
    ASSERT_TRUE(report.ok()) << report.status();
    report_ = *report;
    ours_ = OpenOrDie(out_);
    reference_ = OpenOrDie(LlmLike(GetParam().reference));
    original_ = OpenOrDie(LlmLike("llm_like_multifunction"));
    ASSERT_TRUE(ours_ && reference_ && original_);
  }
  testing::ScratchDir scratch_;
  std::string out_;
  CompressionReport report_;
  std::unique_ptr<format::MlPackage> ours_, reference_, original_;
};

TEST_P(LlmLikeTest, SameOpsInEveryFunctionAsTheReference) {
  const auto& ours = ours_->model().mlprogram().functions();
  const auto& ref = reference_->model().mlprogram().functions();
  ASSERT_EQ(ours.size(), 2u);
  ASSERT_EQ(ours.size(), ref.size());
  for (const auto& [name, f] : ref) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(ours.count(name));
    // The same constexpr ops as the reference; every other op as in the
    // original (coremltools' save re-ran its graph passes on the rest).
    auto ours_types = OpTypes(BlockOf(ours.at(name)));
    auto ref_types = OpTypes(BlockOf(f));
    auto original_types = OpTypes(BlockOf(original_->model().mlprogram().functions().at(name)));
    for (const auto& [type, n] : ref_types) {
      if (format::IsConstexprOp(type)) {
        EXPECT_EQ(ours_types[type], n) << type;
      }
    }
    for (const auto& [type, n] : original_types) {
      if (type != "const") {
        EXPECT_EQ(ours_types[type], n) << type;
      }
    }
    // Inputs, the state among them, unchanged.
    ASSERT_EQ(ours.at(name).inputs_size(), f.inputs_size());
    for (int i = 0; i < f.inputs_size(); ++i) {
      EXPECT_EQ(ours.at(name).inputs(i).SerializeAsString(), f.inputs(i).SerializeAsString());
    }
  }
  EXPECT_EQ(ours_->model().description().defaultfunctionname(), "decode");
  EXPECT_EQ(ours_->model().description().SerializeAsString(), original_->model().description().SerializeAsString());
  EXPECT_EQ(ours_->model().specificationversion(), reference_->model().specificationversion());
}

TEST_P(LlmLikeTest, SameDecodedValuesAsTheReference) {
  auto ours = Decoded(ours_.get());
  auto ref = Decoded(reference_.get());
  ASSERT_EQ(ref.size(), 2u);
  for (const auto& [function, weights] : ref) {
    ASSERT_EQ(ours[function].size(), weights.size()) << function;
    for (const auto& [name, values] : weights) {
      auto it = ours[function].find(name);
      ASSERT_NE(it, ours[function].end()) << function << " " << name;
      EXPECT_EQ(it->second, values) << function << " " << name;
    }
  }
}

TEST_P(LlmLikeTest, EachSharedWeightStoredOnce) {
  const auto& fs = ours_->model().mlprogram().functions();
  const auto decode = BlobRefs(BlockOf(fs.at("decode")));
  const auto prefill = BlobRefs(BlockOf(fs.at("prefill")));
  EXPECT_EQ(decode, prefill) << "both functions read the same blobs";
  std::set<uint64_t> distinct;
  for (const auto& [k, offset] : decode) distinct.insert(offset);
  std::set<uint64_t> ref_distinct;
  for (const auto& [name, f] : reference_->model().mlprogram().functions()) {
    for (const auto& [k, offset] : BlobRefs(BlockOf(f))) ref_distinct.insert(offset);
  }
  EXPECT_EQ(distinct.size(), ref_distinct.size());
  auto weights = ours_->WeightFile("@model_path/weights/weight.bin");
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ((*weights)->header().count, distinct.size()) << "no blob that nothing reads";
  const double ours = SizeOf(out_), ref = SizeOf(LlmLike(GetParam().reference));
  std::printf("%s: weight.bin %.0f bytes, coremltools %.0f bytes\n", GetParam().reference.c_str(), ours, ref);
  EXPECT_LE(ours, ref * 1.03) << "weight.bin " << ours << " bytes vs the reference's " << ref;
  EXPECT_GE(ours, ref * 0.97) << "weight.bin " << ours << " bytes vs the reference's " << ref;
  // Both references are deterministic techniques: the very same bytes.
  auto ours_bytes = ReadFile(out_ + "/" + kWeights);
  auto ref_bytes = ReadFile(LlmLike(GetParam().reference) + "/" + kWeights);
  ASSERT_TRUE(ours_bytes.ok() && ref_bytes.ok());
  EXPECT_TRUE(*ours_bytes == *ref_bytes) << "weight.bin differs from coremltools'";
}

TEST_P(LlmLikeTest, ReportListsEachWeightOnceWithItsFunctions) {
  std::set<std::string> names;
  int compressed = 0;
  for (const WeightReport& w : report_.weights) {
    EXPECT_TRUE(names.insert(w.name).second) << w.name << " listed twice";
    if (w.technique == "none") continue;
    ++compressed;
    EXPECT_EQ(w.functions, (std::vector<std::string>{"decode", "prefill"})) << w.name;
    EXPECT_EQ(w.function, "decode");
  }
  EXPECT_EQ(compressed, 14);
  EXPECT_EQ(report_.weights_compressed, 14);
}

const LlmCase kLlmCases[] = {
    {"llm_like_multifunction_int4_block32",
     "config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric, dtype: int4, granularity: per_block, "
     "block_size: 32}\n"},
    {"llm_like_multifunction_palettize4_grouped16",
     "config_type: OpPalettizerConfig\nglobal_config: {mode: uniform, nbits: 4, granularity: per_grouped_channel, "
     "group_size: 16}\n"},
};

INSTANTIATE_TEST_SUITE_P(References, LlmLikeTest, ::testing::ValuesIn(kLlmCases),
                         [](const ::testing::TestParamInfo<LlmCase>& info) {
                           return info.param.reference.substr(info.param.reference.rfind('_') + 1);
                         });

// MobileNetV2 int8 per-channel (iOS16): every conv's zero point is a vector
// of zeros as long as its output channels. Core ML tools store equal ones of
// 100 or more elements once; shorter ones per op.
TEST(SharedBlobsTest, MobileNetZeroPointsOfEqualShapeShareOneBlob) {
  testing::ScratchDir scratch;
  const std::string in = testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage";
  auto config = ParseCompressionConfig(
      "config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric, dtype: int8, granularity: per_channel}\n");
  ASSERT_TRUE(config.ok());
  const std::string out = scratch.Join("out.mlpackage");
  auto report = CompressModelPath(in, out, *config, {}, {});
  ASSERT_TRUE(report.ok()) << report.status();
  auto pkg = OpenOrDie(out);
  ASSERT_TRUE(pkg);
  auto file = pkg->WeightFile("@model_path/weights/weight.bin");
  ASSERT_TRUE(file.ok()) << file.status();

  // Independently of the writer: what each op's zero point holds, and how
  // many blobs the sharing rule allows.
  int ops = 0;
  std::set<uint64_t> zp_offsets;
  std::set<std::pair<std::string, std::string>> shareable;  // (shape, bytes) of >= 100 elements
  int unshareable = 0;
  for (const mil::Operation& op : BlockOf(pkg->model().mlprogram().functions().at("main")).operations()) {
    if (op.type() != "constexpr_affine_dequantize") continue;
    ++ops;
    const mil::Value& zp = op.attributes().at("zero_point");
    ASSERT_TRUE(zp.has_blobfilevalue()) << format::OpName(op);
    zp_offsets.insert(zp.blobfilevalue().offset());
    auto meta = (*file)->Metadata(zp.blobfilevalue().offset());
    ASSERT_TRUE(meta.ok());
    const std::string bytes((*file)->Data(*meta));
    auto type = format::ReadTensorType(zp.type());
    ASSERT_TRUE(type.ok());
    if (meta->element_count() >= kShareMinElements) {
      shareable.insert({format::ShapeString(type->shape), bytes});
    } else {
      ++unshareable;
    }
  }
  EXPECT_EQ(ops, 43);
  EXPECT_EQ(zp_offsets.size(), shareable.size() + unshareable);
  EXPECT_LT(zp_offsets.size(), 43u);
  std::printf("MobileNetV2 int8 per-channel: %d ops, %zu distinct zero-point blobs, weight.bin %llu bytes\n", ops,
              zp_offsets.size(), static_cast<unsigned long long>((*file)->file_size()));

  // No two blobs in the file hold the same dtype and bytes at 100 elements
  // or more, and the file is exactly its distinct blobs: the duplicates'
  // bytes are gone.
  auto blobs = (*file)->ListBlobs();
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  std::set<std::pair<int, std::string>> seen;
  uint64_t expected_size = format::kBlobHeaderSize;
  for (const format::BlobMetadata& m : *blobs) {
    expected_size = format::AlignUp(expected_size) + format::kBlobMetadataSize + m.size_in_bytes;
    if (m.element_count() < kShareMinElements) continue;
    EXPECT_TRUE(seen.insert({static_cast<int>(m.type), std::string((*file)->Data(m))}).second)
        << "blob at " << m.offset << " repeats an earlier one";
  }
  EXPECT_EQ((*file)->file_size(), expected_size);
}

// Mosaic (iOS15, spec 6) and DTLN carry non-zero reserved fields in their blob
// records; what we write has zeros there.
TEST(SharedBlobsTest, BlobHeadersAreCanonical) {
  for (const std::string& model : {std::string("/mosaic_mlcommons/Mosaic.mlpackage"),
                                   std::string("/dtln_aec_128_part1/DTLN_AEC_128_Part1.mlpackage")}) {
    SCOPED_TRACE(model);
    testing::ScratchDir scratch;
    auto config = ParseCompressionConfig(
        "config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric, dtype: int8, weight_threshold: 100000}\n");
    ASSERT_TRUE(config.ok());
    const std::string out = scratch.Join("out.mlpackage");
    auto report = CompressModelPath(testing::ModelsDir() + model, out, *config, {}, {});
    ASSERT_TRUE(report.ok()) << report.status();
    auto in_pkg = OpenOrDie(testing::ModelsDir() + model);
    auto in_file = in_pkg->WeightFile("@model_path/weights/weight.bin");
    ASSERT_TRUE(in_file.ok());
    auto in_blobs = (*in_file)->ListBlobs();
    ASSERT_TRUE(in_blobs.ok());
    ASSERT_TRUE(std::any_of(in_blobs->begin(), in_blobs->end(),
                            [](const format::BlobMetadata& m) { return m.reserved != std::array<uint64_t, 4>{}; }));
    auto pkg = OpenOrDie(out);
    auto file = pkg->WeightFile("@model_path/weights/weight.bin");
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->header().reserved, (std::array<uint64_t, 7>{}));
    auto blobs = (*file)->ListBlobs();
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    ASSERT_FALSE(blobs->empty());
    for (const format::BlobMetadata& m : *blobs) EXPECT_EQ(m.reserved, (std::array<uint64_t, 4>{})) << m.offset;
  }
}

// Nothing compressed (every weight under the threshold): Mosaic stays at
// specification version 6 with its CoreML5 opset; something compressed
// moves it to the first version with constexpr ops (7).
TEST(SharedBlobsTest, SpecificationVersionRisesOnlyForEmittedOps) {
  const std::string in = testing::ModelsDir() + "/mosaic_mlcommons/Mosaic.mlpackage";
  auto original = OpenOrDie(in);
  ASSERT_TRUE(original);
  ASSERT_EQ(original->model().specificationversion(), 6);
  struct Run {
    std::string yaml;
    int version;
    std::string opset;
  };
  const Run runs[] = {
      {"config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric, weight_threshold: 100000000}\n", 6,
       "CoreML5"},
      {"config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric}\n", 7, "CoreML6"},
  };
  for (const Run& run : runs) {
    SCOPED_TRACE(run.yaml);
    testing::ScratchDir scratch;
    auto config = ParseCompressionConfig(run.yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    const std::string out = scratch.Join("out.mlpackage");
    auto report = CompressModelPath(in, out, *config, {}, {});
    ASSERT_TRUE(report.ok()) << report.status();
    auto pkg = OpenOrDie(out);
    ASSERT_TRUE(pkg);
    EXPECT_EQ(pkg->model().specificationversion(), run.version);
    EXPECT_EQ(report->spec_version_before, 6);
    EXPECT_EQ(report->spec_version_after, run.version);
    EXPECT_EQ((report->weights_compressed > 0), run.version == 7);
    for (const auto& [name, f] : pkg->model().mlprogram().functions()) {
      EXPECT_EQ(f.opset(), run.opset);
      EXPECT_TRUE(f.block_specializations().count(run.opset));
    }
  }
}

}  // namespace
}  // namespace coremlz::engine
