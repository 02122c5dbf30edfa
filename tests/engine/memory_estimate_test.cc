// EstimateJobMemory sizes a job before any weight is read, from declared
// shapes; it must not let a declared shape that the uploaded files cannot
// hold pass for a merely large model, must see weights in every block
// (nested loop bodies included), and must be an upper bound, but not an
// absurd one, for what a job really costs - measured here as the peak RSS
// of running it in this process.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/memory_release.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/inventory.h"
#include "engine/worker_pool.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

namespace mil = CoreML::Specification::MILSpec;

// Copies the iOS16 golden package and sets fc_weight's declared shape.
std::string PackageWithFcShape(const testing::ScratchDir& scratch, const std::vector<uint64_t>& dims) {
  const std::string dir = scratch.Join("m.mlpackage");
  testing::CopyTree(testing::GoldenDir() + "/ios16_original.mlpackage", dir);
  const std::string spec_path = dir + "/Data/com.apple.CoreML/model.mlmodel";
  CoreML::Specification::Model model;
  EXPECT_TRUE(model.ParseFromString(*ReadFile(spec_path)));
  for (auto& [_, fn] : *model.mutable_mlprogram()->mutable_functions()) {
    for (auto& [_, block] : *fn.mutable_block_specializations()) {
      for (auto& op : *block.mutable_operations()) {
        if (op.type() != "const" || op.outputs(0).name() != "fc_weight_0_to_fp16") continue;
        for (mil::TensorType* t : {op.mutable_outputs(0)->mutable_type()->mutable_tensortype(),
                                   (*op.mutable_attributes())["val"].mutable_type()->mutable_tensortype()}) {
          t->clear_dimensions();
          t->set_rank(static_cast<int64_t>(dims.size()));
          for (uint64_t d : dims) t->add_dimensions()->mutable_constant()->set_size(d);
        }
      }
    }
  }
  EXPECT_TRUE(WriteFileAtomically(spec_path, model.SerializeAsString()).ok());
  return dir;
}

TEST(EstimateJobMemory, GrowsWithTheLargestWeight) {
  auto golden = EstimateJobMemory(testing::GoldenDir() + "/ios16_original.mlpackage");
  ASSERT_TRUE(golden.ok()) << golden.status();
  // 131072 fc elements at ~20 bytes each, plus fixed slack.
  EXPECT_GE(*golden, 131072u * 20);
  EXPECT_LT(*golden, uint64_t{64} << 20);
}

TEST(EstimateJobMemory, RefusesShapesLargerThanTheirFile) {
  testing::ScratchDir scratch;
  auto estimate = EstimateJobMemory(PackageWithFcShape(scratch, {uint64_t{1} << 40, 512}));
  ASSERT_FALSE(estimate.ok());
  EXPECT_EQ(estimate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(estimate.status().message(), "fc_weight_0_to_fp16")) << estimate.status();
}

TEST(EstimateJobMemory, RefusesShapesThatOverflow) {
  testing::ScratchDir scratch;
  auto estimate = EstimateJobMemory(PackageWithFcShape(scratch, {uint64_t{1} << 32, uint64_t{1} << 32, 2}));
  ASSERT_FALSE(estimate.ok());
  EXPECT_EQ(estimate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(estimate.status().message(), "fc_weight_0_to_fp16")) << estimate.status();
}

// --- every block -------------------------------------------------------------

using format::ElementType;

// A package whose one large weight (2048 x 2048 fp16) sits in the body of a
// while_loop, with only a tiny weight at the top level.
std::string PackageWithNestedWeight(const testing::ScratchDir& scratch) {
  const std::string dir = scratch.Join("nested.mlpackage");
  testing::ProgramBuilder b(7);
  b.AddInput("x", ElementType::kFloat16, {1, 2048});
  b.Const("small", testing::FloatTensor(ElementType::kFloat16, {16}, testing::RandomWeights(16, 1)));
  b.Const("big", testing::FloatTensor(ElementType::kFloat16, {2048, 2048}, testing::RandomWeights(2048 * 2048, 2)));
  b.Op("linear", {{"x", "x"}, {"weight", "big"}}, "y", ElementType::kFloat16, {1, 2048});
  b.AddOutput("y", ElementType::kFloat16, {1, 2048});
  EXPECT_TRUE(b.WritePackage(dir).ok());
  // Move "big" and its reader into a while_loop's body block.
  const std::string spec_path = dir + "/Data/com.apple.CoreML/model.mlmodel";
  CoreML::Specification::Model model;
  EXPECT_TRUE(model.ParseFromString(*ReadFile(spec_path)));
  auto& block = (*model.mutable_mlprogram()->mutable_functions())["main"].mutable_block_specializations()->begin()->second;
  mil::Operation loop;
  loop.set_type("while_loop");
  loop.add_outputs()->set_name("y");
  *loop.mutable_outputs(0)->mutable_type() = format::MakeTensorType(ElementType::kFloat16, {1, 2048});
  loop.add_blocks();  // cond
  mil::Block* body = loop.add_blocks();
  google::protobuf::RepeatedPtrField<mil::Operation> kept;
  for (auto& op : *block.mutable_operations()) {
    if (op.outputs(0).name() == "big" || op.outputs(0).name() == "y") *body->add_operations() = op;
    else *kept.Add() = op;
  }
  body->add_outputs("y");
  block.mutable_operations()->Swap(&kept);
  *block.add_operations() = loop;
  EXPECT_TRUE(WriteFileAtomically(spec_path, format::SerializeModelSpec(model)).ok());
  return dir;
}

TEST(EstimateJobMemory, CountsWeightsInNestedBlocks) {
  testing::ScratchDir scratch;
  auto estimate = EstimateJobMemory(PackageWithNestedWeight(scratch));
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_GE(*estimate, uint64_t{2048} * 2048 * kBytesPerElement) << "the while_loop body's weight was not counted";
}

TEST(EstimateJobMemory, UploadEstimateUsesDeclaredSizes) {
  // During an upload the weight file is not there yet: its declared size
  // stands in, and the estimate is the finished upload's.
  testing::ScratchDir scratch;
  const std::string dir = PackageWithNestedWeight(scratch);
  auto complete = EstimateJobMemory(dir);
  ASSERT_TRUE(complete.ok()) << complete.status();
  const std::string weights = "Data/com.apple.CoreML/weights/weight.bin";
  const uint64_t size = *FileSize(dir + "/" + weights);
  ASSERT_TRUE(RemoveAll(dir + "/Data/com.apple.CoreML/weights").ok());
  auto early = EstimateUploadMemory(dir, [&](const std::string& rel) -> absl::StatusOr<uint64_t> {
    if (rel == weights) return size;
    return absl::NotFoundError(rel);
  });
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(*early, *complete);
}

// --- honest, not absurd -------------------------------------------------------

// Peak RSS of `fn` above the RSS before it, from /proc/self/status after
// resetting the high-water mark (clear_refs 5).
uint64_t StatusKb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, key + ":")) return std::stoull(line.substr(key.size() + 1));
  }
  return 0;
}

template <typename Fn>
absl::StatusOr<uint64_t> PeakRssGrowth(Fn fn) {
  ReleaseFreeMemory();
  {
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5";
  }
  const uint64_t before = StatusKb("VmRSS");
  if (StatusKb("VmHWM") > before + 4096) return absl::UnavailableError("cannot reset VmHWM here");
  fn();
  const uint64_t peak = StatusKb("VmHWM");
  return (peak > before ? peak - before : 0) * 1024;
}

TEST(EstimateJobMemory, ManyTinyOpsAreEstimatedNearTheirCost) {
  // The parsed program, not the weights, is what such a model costs: a few
  // kilobytes of protobuf objects per op, held by the package and by the
  // compressor. An estimate from the spec's bytes alone misses most of it.
  // The cost is linear in the ops; 300k keep the test to ~30 s (1e6 ops:
  // 83 MiB of spec, compress +4.1 GiB, inspect +2.0 GiB, measured the same
  // way).
  testing::ScratchDir scratch;
  const std::string dir = scratch.Join("ops.mlpackage");
  constexpr int kOps = 300000;
  {
    testing::ProgramBuilder b(7);
    b.AddInput("x", ElementType::kFloat16, {1, 64});
    std::string h = b.Linear("fc", "x", 64, 64, {1, 64}, ElementType::kFloat16, 1);
    for (int i = 0; i < kOps; ++i) h = b.Op("relu", {{"x", h}}, absl::StrCat("r", i), ElementType::kFloat16, {1, 64});
    b.AddOutput(h, ElementType::kFloat16, {1, 64});
    ASSERT_TRUE(b.WritePackage(dir).ok());
  }
  auto estimate = EstimateJobMemory(dir);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  auto config = ParseCompressionConfig("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n");
  ASSERT_TRUE(config.ok());
  absl::Status result;
  auto compress = PeakRssGrowth([&] {
    result = CompressModelPath(dir, scratch.Join("out.mlpackage"), *config, {}, {}).status();
  });
  if (!compress.ok()) GTEST_SKIP() << compress.status();
  ASSERT_TRUE(result.ok()) << result;
  auto inspect = PeakRssGrowth([&] { result = InspectModel(dir).status(); });
  ASSERT_TRUE(inspect.ok());
  ASSERT_TRUE(result.ok()) << result;
  const uint64_t spec_bytes = *FileSize(dir + "/Data/com.apple.CoreML/model.mlmodel");
  std::printf("%d ops, spec %llu MiB: compress peak +%llu MiB, inspect peak +%llu MiB, estimate %llu MiB\n", kOps,
              static_cast<unsigned long long>(spec_bytes >> 20), static_cast<unsigned long long>(*compress >> 20),
              static_cast<unsigned long long>(*inspect >> 20), static_cast<unsigned long long>(*estimate >> 20));
  EXPECT_GE(*estimate, *compress);
  EXPECT_GE(*estimate, *inspect);
  EXPECT_LE(*estimate, 3 * std::max(*compress, *inspect)) << "an estimate this far above the cost refuses models that fit";
}

// --- Inspect decodes a shared weight once --------------------------------------

TEST(InspectMemory, ALutWeightWithManyReadersIsDecodedOnce) {
  // An 8 MiB package: one 4096 x 4096 weight palettized to 4 bits (8 MiB of
  // indices) that 32 constexpr_lut_to_dense ops read, each feeding a linear.
  // Each op's dense output is 32 MiB of fp16; decoding it once per op, and
  // keeping them all, took gigabytes.
  testing::ScratchDir scratch;
  const std::string original = scratch.Join("original.mlpackage");
  {
    testing::ProgramBuilder b(7);
    b.AddInput("x", ElementType::kFloat16, {1, 4096});
    b.Const("w", testing::FloatTensor(ElementType::kFloat16, {4096, 4096}, testing::RandomWeights(4096 * 4096, 3)));
    b.Op("linear", {{"x", "x"}, {"weight", "w"}}, "y", ElementType::kFloat16, {1, 4096});
    b.AddOutput("y", ElementType::kFloat16, {1, 4096});
    ASSERT_TRUE(b.WritePackage(original).ok());
  }
  const std::string dir = scratch.Join("shared_lut.mlpackage");
  auto config = ParseCompressionConfig("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, mode: uniform}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(CompressModelPath(original, dir, *config, {}, {}).ok());
  ASSERT_TRUE(RemoveAll(original).ok());
  const std::string spec_path = dir + "/Data/com.apple.CoreML/model.mlmodel";
  CoreML::Specification::Model model;
  ASSERT_TRUE(model.ParseFromString(*ReadFile(spec_path)));
  auto& block = (*model.mutable_mlprogram()->mutable_functions())["main"].mutable_block_specializations()->begin()->second;
  const mil::Operation* lut = nullptr;
  for (const auto& op : block.operations()) {
    if (op.type() == "constexpr_lut_to_dense") lut = &op;
  }
  ASSERT_NE(lut, nullptr);
  const mil::Operation lut_op = *lut;
  constexpr int kReaders = 32;
  for (int i = 0; i < kReaders; ++i) {
    mil::Operation copy = lut_op;
    const std::string name = absl::StrCat("w_copy", i);
    copy.mutable_outputs(0)->set_name(name);
    (*copy.mutable_attributes())["name"].mutable_immediatevalue()->mutable_tensor()->mutable_strings()->set_values(0, name);
    *block.add_operations() = copy;
    mil::Operation linear;
    linear.set_type("linear");
    (*linear.mutable_inputs())["x"].add_arguments()->set_name("x");
    (*linear.mutable_inputs())["weight"].add_arguments()->set_name(name);
    linear.add_outputs()->set_name(absl::StrCat("y", i));
    *linear.mutable_outputs(0)->mutable_type() = format::MakeTensorType(ElementType::kFloat16, {1, 4096});
    *block.add_operations() = linear;
  }
  ASSERT_TRUE(WriteFileAtomically(spec_path, format::SerializeModelSpec(model)).ok());
  uint64_t package_bytes = 0;
  auto package_files = format::ListPackageFiles(dir);
  ASSERT_TRUE(package_files.ok());
  for (const auto& f : *package_files) package_bytes += *FileSize(dir + "/" + f);
  EXPECT_LT(package_bytes, uint64_t{9} << 20);

  auto estimate = EstimateJobMemory(dir);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  absl::StatusOr<Inventory> inventory;
  auto peak = PeakRssGrowth([&] { inventory = InspectModel(dir); });
  if (!peak.ok()) GTEST_SKIP() << peak.status();
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  std::printf("package %llu KiB, inspect peak +%llu MiB, estimate %llu MiB\n",
              static_cast<unsigned long long>(package_bytes >> 10), static_cast<unsigned long long>(*peak >> 20),
              static_cast<unsigned long long>(*estimate >> 20));
  EXPECT_LT(*peak, uint64_t{400} << 20) << "one dense copy is 32 MiB; " << kReaders << " readers must not multiply it";
  EXPECT_LE(*peak, *estimate);
  // Every reader is listed, with the statistics of the values they share.
  int listed = 0;
  uint64_t distinct = 0;
  for (const InventoryEntry& e : inventory->weights) {
    if (e.op_type != "constexpr_lut_to_dense") continue;
    ++listed;
    EXPECT_TRUE(e.has_statistics) << e.name;
    if (distinct == 0) distinct = e.distinct_values;
    EXPECT_EQ(e.distinct_values, distinct) << e.name;
  }
  EXPECT_EQ(listed, kReaders + 1);
  EXPECT_GT(distinct, 1u);
  EXPECT_LE(distinct, 16u);
}

}  // namespace
}  // namespace coremlz::engine
