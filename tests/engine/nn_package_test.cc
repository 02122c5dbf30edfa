// NeuralNetwork models inside an .mlpackage (as Xcode wraps .mlmodel files:
// Manifest.json's rootModelIdentifier names the spec, which holds the weights
// inline; no weight.bin). They compress exactly like the same spec as a bare
// .mlmodel - the same bytes for the root spec, with every technique a
// NeuralNetwork can hold - and everything else in the package comes out byte
// for byte. Inventory and memory estimates treat them as the bare spec too;
// packages whose root is missing or of another kind get errors that say so.
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/inventory.h"
#include "engine/worker_pool.h"
#include "format/manifest.h"
#include "format/neural_network_weights.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

std::string PoseNet() {
  return testing::ModelsDir() + "/posenet_mobilenet075_fp16/PoseNetMobileNet075S16FP16.mlpackage";
}
constexpr char kPoseNetSpec[] = "Data/com.apple.CoreML/PoseNetMobileNet075S16FP16.mlmodel";
std::string TinyDrawing() { return testing::ModelsDir() + "/tiny_drawing_embedding/TinyDrawingEmbedding.mlmodel"; }

// Every file of a package: relative path -> bytes.
std::map<std::string, std::string> Files(const std::string& dir) {
  std::map<std::string, std::string> out;
  auto files = format::ListPackageFiles(dir);
  EXPECT_TRUE(files.ok()) << files.status();
  if (!files.ok()) return out;
  for (const std::string& rel : *files) out[rel] = *ReadFile(JoinPath(dir, rel));
  return out;
}

// Wraps a bare .mlmodel the way Xcode does: the spec under its own name,
// metadata and feature-description overlays, identifiers in capitals, no
// weights directory. Returns the spec's package-relative path.
std::string WrapAsXcodeDoes(const std::string& spec_file, const std::string& dir) {
  const std::string spec_rel = "com.apple.CoreML/Wrapped.mlmodel";
  format::Manifest m;
  m.items = {
      {"1A2B3C4D-0000-4000-8000-000000000001", "com.apple.CoreML", "External Metadata Overlay", "Metadata.json",
       "com.apple.CoreML/Metadata.json"},
      {"1A2B3C4D-0000-4000-8000-000000000002", "com.apple.CoreML", "External FeatureDescription Overlay",
       "FeatureDescriptions.json", "com.apple.CoreML/FeatureDescriptions.json"},
      {"1A2B3C4D-0000-4000-8000-000000000003", "com.apple.CoreML", "CoreML Model Specification", "Wrapped.mlmodel",
       spec_rel},
  };
  m.root_model_identifier = m.items[2].identifier;
  EXPECT_TRUE(MakeDirectories(dir + "/Data/com.apple.CoreML").ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/Manifest.json", m.Serialize()).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/Data/com.apple.CoreML/Metadata.json",
                                  "{\"author\":\"someone\",\"shortDescription\":\"wrapped by a test\"}").ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/Data/com.apple.CoreML/FeatureDescriptions.json",
                                  "{\"Inputs\":{},\"Outputs\":{}}").ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/Data/" + spec_rel, *ReadFile(spec_file)).ok());
  return "Data/" + spec_rel;
}

// Every technique the NeuralNetwork compressor writes, and the ones it
// refuses (pruning, per-block, grouped palettes): both forms must agree on
// either outcome.
const char* const kConfigs[] = {
    "config_type: Fp16Config\nglobal_config: {weight_threshold: 0}\n",
    "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n",
    "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint8, mode: linear}\n",
    "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8, granularity: per_tensor}\n",
    "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint4, mode: linear}\n",
    "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 1}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 2}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 6}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 8}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, mode: uniform}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {mode: unique}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {mode: custom, lut: [-0.5, -0.1, 0.0, 0.1]}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n"
    "op_type_configs: {convolution: {config_type: OpLinearQuantizerConfig, dtype: uint8, mode: linear}}\n",
    "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, granularity: per_grouped_channel, group_size: 16}\n",
    "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: per_block, block_size: 32}\n",
    "config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5}\n",
};

// Compresses `package` and its root spec extracted as a bare .mlmodel with
// every config; the root spec must come out with the same bytes (or both
// fail alike), the rest of the package unchanged. `compressed_any` counts
// the configs that compressed at least one weight.
void ExpectSameAsBare(const std::string& package, const std::string& spec_rel, int* compressed_any) {
  testing::ScratchDir scratch;
  const std::string bare = scratch.Join("bare.mlmodel");
  EXPECT_TRUE(WriteFileAtomically(bare, *ReadFile(JoinPath(package, spec_rel))).ok());
  const std::map<std::string, std::string> input = Files(package);
  *compressed_any = 0;
  int n = 0;
  for (const char* yaml : kConfigs) {
    SCOPED_TRACE(yaml);
    auto config = ParseCompressionConfig(yaml);
    if (!config.ok()) {
      ADD_FAILURE() << config.status();
      continue;
    }
    const std::string out_pkg = scratch.Join(absl::StrCat("out", n, ".mlpackage"));
    const std::string out_bare = scratch.Join(absl::StrCat("out", n, ".mlmodel"));
    ++n;
    auto from_pkg = CompressModelPath(package, out_pkg, *config, {}, {});
    auto from_bare = CompressModelPath(bare, out_bare, *config, {}, {});
    ASSERT_EQ(from_pkg.ok(), from_bare.ok()) << from_pkg.status() << " vs " << from_bare.status();
    if (!from_pkg.ok()) {
      // The same refusal, naming the spec file each was given.
      EXPECT_EQ(from_pkg.status().code(), from_bare.status().code());
      EXPECT_EQ(absl::StrReplaceAll(from_pkg.status().message(), {{JoinPath(package, spec_rel), "SPEC"}}),
                absl::StrReplaceAll(from_bare.status().message(), {{bare, "SPEC"}}));
      EXPECT_FALSE(PathExists(out_pkg));
      continue;
    }
    EXPECT_EQ(from_pkg->model_kind, "neuralnetwork");
    EXPECT_EQ(from_pkg->weights_compressed, from_bare->weights_compressed);
    EXPECT_EQ(from_pkg->weights_skipped, from_bare->weights_skipped);
    EXPECT_EQ(from_pkg->weight_bytes_before, from_bare->weight_bytes_before);
    EXPECT_EQ(from_pkg->weight_bytes_after, from_bare->weight_bytes_after);
    EXPECT_EQ(from_pkg->spec_version_after, from_bare->spec_version_after);
    ASSERT_EQ(from_pkg->weights.size(), from_bare->weights.size());
    for (size_t i = 0; i < from_pkg->weights.size(); ++i) {
      EXPECT_EQ(from_pkg->weights[i].name, from_bare->weights[i].name);
      EXPECT_EQ(from_pkg->weights[i].bytes_after, from_bare->weights[i].bytes_after);
      EXPECT_EQ(from_pkg->weights[i].skipped_reason, from_bare->weights[i].skipped_reason);
    }
    EXPECT_EQ(from_pkg->warnings, from_bare->warnings);
    if (from_pkg->weights_compressed > 0) ++*compressed_any;

    const std::map<std::string, std::string> output = Files(out_pkg);
    ASSERT_EQ(output.size(), input.size());
    for (const auto& [rel, bytes] : input) {
      ASSERT_TRUE(output.count(rel)) << rel << " is missing from the output";
      if (rel == spec_rel) {
        EXPECT_TRUE(output.at(rel) == *ReadFile(out_bare)) << "the root spec differs from the bare .mlmodel's";
        if (from_pkg->weights_compressed > 0) {
          EXPECT_NE(output.at(rel), bytes) << "compressed, yet unchanged";
        }
      } else {
        EXPECT_TRUE(output.at(rel) == bytes) << rel << " was not copied byte for byte";
      }
    }
    // Sizes count the whole package: the overlays on both sides.
    const uint64_t others = [&] {
      uint64_t s = 0;
      for (const auto& [rel, bytes] : input) s += rel == spec_rel ? 0 : bytes.size();
      return s;
    }();
    EXPECT_EQ(from_pkg->model_bytes_before, from_bare->model_bytes_before + others);
    EXPECT_EQ(from_pkg->model_bytes_after, from_bare->model_bytes_after + others);
    // The output is a package again that reads as one, of the same kind.
    auto reopened = format::MlPackage::Open(out_pkg);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_TRUE(format::HasNeuralNetwork((*reopened)->model()));
    EXPECT_EQ((*reopened)->layout().model_path, spec_rel);
  }
}

TEST(NeuralNetworkPackage, PoseNetCompressesLikeItsBareSpec) {
  // Already fp16: fp16 skips every weight; every other writable technique
  // compresses something.
  int compressed_any = 0;
  ExpectSameAsBare(PoseNet(), kPoseNetSpec, &compressed_any);
  EXPECT_EQ(compressed_any, 13);
}

TEST(NeuralNetworkPackage, Fp32NetworkWrappedAsXcodeDoesCompressesLikeItsBareSpec) {
  testing::ScratchDir scratch;
  const std::string pkg = scratch.Join("Tiny.mlpackage");
  const std::string spec_rel = WrapAsXcodeDoes(TinyDrawing(), pkg);
  int compressed_any = 0;
  ExpectSameAsBare(pkg, spec_rel, &compressed_any);
  EXPECT_EQ(compressed_any, 14);
}

TEST(NeuralNetworkPackage, ClassifierAndRegressorFlavoursToo) {
  for (bool classifier : {true, false}) {
    SCOPED_TRACE(classifier ? "classifier" : "regressor");
    testing::ScratchDir scratch;
    CoreML::Specification::Model model = testing::BuildNeuralNetworkModel(/*fp16=*/false, 3);
    CoreML::Specification::NeuralNetwork nn = model.neuralnetwork();
    if (classifier) {
      model.mutable_neuralnetworkclassifier()->mutable_layers()->Swap(nn.mutable_layers());
    } else {
      model.mutable_neuralnetworkregressor()->mutable_layers()->Swap(nn.mutable_layers());
    }
    ASSERT_TRUE(WriteFileAtomically(scratch.Join("m.mlmodel"), format::SerializeModelSpec(model)).ok());
    const std::string pkg = scratch.Join("M.mlpackage");
    const std::string spec_rel = WrapAsXcodeDoes(scratch.Join("m.mlmodel"), pkg);
    auto config = ParseCompressionConfig("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, weight_threshold: 100}\n");
    auto from_pkg = CompressModelPath(pkg, scratch.Join("out.mlpackage"), *config, {}, {});
    auto from_bare = CompressModelPath(scratch.Join("m.mlmodel"), scratch.Join("out.mlmodel"), *config, {}, {});
    ASSERT_TRUE(from_pkg.ok()) << from_pkg.status();
    ASSERT_TRUE(from_bare.ok()) << from_bare.status();
    EXPECT_GT(from_pkg->weights_compressed, 0);
    EXPECT_TRUE(*ReadFile(scratch.Join("out.mlpackage/" + spec_rel)) == *ReadFile(scratch.Join("out.mlmodel")));
  }
}

TEST(NeuralNetworkPackage, InventoryIsTheBareSpecs) {
  testing::ScratchDir scratch;
  const std::string bare = scratch.Join("bare.mlmodel");
  ASSERT_TRUE(WriteFileAtomically(bare, *ReadFile(JoinPath(PoseNet(), kPoseNetSpec))).ok());
  auto from_pkg = InspectModel(PoseNet());
  auto from_bare = InspectModel(bare);
  ASSERT_TRUE(from_pkg.ok()) << from_pkg.status();
  ASSERT_TRUE(from_bare.ok()) << from_bare.status();
  EXPECT_EQ(from_pkg->kind, "neuralnetwork");
  EXPECT_EQ(from_pkg->spec_version, from_bare->spec_version);
  ASSERT_GT(from_pkg->weights.size(), 30u);
  ASSERT_EQ(from_pkg->weights.size(), from_bare->weights.size());
  for (size_t i = 0; i < from_pkg->weights.size(); ++i) {
    const InventoryEntry& a = from_pkg->weights[i];
    const InventoryEntry& b = from_bare->weights[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.storage, b.storage);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(a.distinct_values, b.distinct_values);
  }
  EXPECT_EQ(from_pkg->weights[0].storage, "fp16");
  EXPECT_EQ(from_pkg->inputs.size(), from_bare->inputs.size());
  EXPECT_EQ(from_pkg->weight_bytes, from_bare->weight_bytes);
  // The package's size is all of its files.
  uint64_t all = 0;
  for (const auto& [rel, bytes] : Files(PoseNet())) all += bytes.size();
  EXPECT_EQ(from_pkg->model_bytes, all);
  EXPECT_GT(from_pkg->model_bytes, from_bare->model_bytes);
}

TEST(NeuralNetworkPackage, MemoryEstimateIsTheBareSpecs) {
  testing::ScratchDir scratch;
  const std::string bare = scratch.Join("bare.mlmodel");
  const std::string spec = *ReadFile(JoinPath(PoseNet(), kPoseNetSpec));
  ASSERT_TRUE(WriteFileAtomically(bare, spec).ok());
  auto from_pkg = EstimateJobMemory(PoseNet());
  auto from_bare = EstimateJobMemory(bare);
  ASSERT_TRUE(from_pkg.ok()) << from_pkg.status();
  ASSERT_TRUE(from_bare.ok()) << from_bare.status();
  EXPECT_EQ(*from_pkg, *from_bare);
  EXPECT_EQ(*from_pkg, EstimateModelFileMemory(spec.size()));
  // During an upload (no weight files to size: the spec is the weights).
  auto upload = EstimateUploadMemory(PoseNet(), [](const std::string&) -> absl::StatusOr<uint64_t> {
    return absl::NotFoundError("a NeuralNetwork package has no weight files to size");
  });
  ASSERT_TRUE(upload.ok()) << upload.status();
  EXPECT_EQ(*upload, *from_bare);
}

// A copy of PoseNet's package with its root spec replaced by `spec` bytes.
std::string PoseNetWithSpec(const testing::ScratchDir& scratch, const std::string& spec) {
  const std::string dir = scratch.Join("P.mlpackage");
  testing::CopyTree(PoseNet(), dir);
  EXPECT_TRUE(WriteFileAtomically(JoinPath(dir, kPoseNetSpec), spec).ok());
  return dir;
}

void ExpectRefused(const std::string& pkg, const std::vector<std::string>& words) {
  auto config = ParseCompressionConfig("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n");
  testing::ScratchDir out;
  auto compressed = CompressModelPath(pkg, out.Join("o.mlpackage"), *config, {}, {});
  ASSERT_FALSE(compressed.ok());
  EXPECT_EQ(compressed.status().code(), absl::StatusCode::kInvalidArgument) << compressed.status();
  EXPECT_FALSE(PathExists(out.Join("o.mlpackage")));
  auto inspected = InspectModel(pkg);
  ASSERT_FALSE(inspected.ok());
  EXPECT_EQ(inspected.status().code(), absl::StatusCode::kInvalidArgument) << inspected.status();
  for (const std::string& w : words) {
    EXPECT_TRUE(absl::StrContains(compressed.status().message(), w)) << compressed.status() << " lacks " << w;
    EXPECT_TRUE(absl::StrContains(inspected.status().message(), w)) << inspected.status() << " lacks " << w;
  }
}

TEST(NeuralNetworkPackage, RootOfAnotherKindIsNamed) {
  testing::ScratchDir scratch;
  // A pipeline (declared in the wire subset).
  CoreML::Specification::Model pipeline;
  pipeline.set_specificationversion(4);
  *pipeline.mutable_pipeline()->add_models() = testing::BuildNeuralNetworkModel(false, 1);
  ExpectRefused(PoseNetWithSpec(scratch, format::SerializeModelSpec(pipeline)),
                {"PoseNetMobileNet075S16FP16.mlmodel", "is a pipeline", "ML Program", "NeuralNetwork"});
}

TEST(NeuralNetworkPackage, RootOfAnUndeclaredKindIsNamedByItsCoreMlName) {
  testing::ScratchDir scratch;
  // specificationVersion = 4, then field 402 (treeEnsembleClassifier), an
  // empty message: a type the wire subset does not declare.
  const std::string spec("\x08\x04\x92\x19\x00", 5);
  ExpectRefused(PoseNetWithSpec(scratch, spec), {"treeEnsembleClassifier"});
  testing::ScratchDir scratch2;
  ExpectRefused(PoseNetWithSpec(scratch2, std::string("\x08\x04", 2)), {"no model type"});
}

TEST(NeuralNetworkPackage, MissingRootItemIsNamed) {
  testing::ScratchDir scratch;
  const std::string dir = scratch.Join("P.mlpackage");
  testing::CopyTree(PoseNet(), dir);
  ASSERT_TRUE(RemoveAll(JoinPath(dir, kPoseNetSpec)).ok());
  ExpectRefused(dir, {"PoseNetMobileNet075S16FP16.mlmodel", "does not contain"});

  // A root identifier that names no item.
  testing::ScratchDir scratch2;
  const std::string dir2 = scratch2.Join("P.mlpackage");
  testing::CopyTree(PoseNet(), dir2);
  std::string manifest = *ReadFile(dir2 + "/Manifest.json");
  manifest = absl::StrReplaceAll(manifest, {{"\"rootModelIdentifier\": \"DDF44F55-1520-4F63-B904-EB0C31DBFC28\"",
                                             "\"rootModelIdentifier\": \"00000000-0000-4000-8000-000000000000\""}});
  ASSERT_TRUE(WriteFileAtomically(dir2 + "/Manifest.json", manifest).ok());
  ExpectRefused(dir2, {"rootModelIdentifier", "00000000-0000-4000-8000-000000000000", "names no entry"});
}

}  // namespace
}  // namespace coremlz::engine
