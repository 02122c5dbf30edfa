#include "format/package.h"

#include <filesystem>

#include "common/file_util.h"
#include "format/manifest.h"
#include "format/package_writer.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::format {
namespace {

std::vector<std::string> AllRealPackages() {
  std::vector<std::string> out;
  for (const char* name : {"mobilenetv2_randinit/mobilenetv2_randinit.mlpackage",
                           "transformer_encoder_randinit/transformer_encoder_randinit.mlpackage"}) {
    out.push_back(testing::ModelsDir() + "/" + name);
  }
  for (auto& entry : std::filesystem::directory_iterator(testing::GoldenDir())) {
    if (entry.path().extension() == ".mlpackage") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ManifestTest, ParsesAndReserializesRealManifestsExactly) {
  auto packages = AllRealPackages();
  ASSERT_GE(packages.size(), 15u);
  for (const std::string& pkg : packages) {
    auto bytes = ReadFile(pkg + "/Manifest.json");
    ASSERT_TRUE(bytes.ok());
    auto m = Manifest::Parse(*bytes, pkg);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_NE(m->root_item(), nullptr);
    EXPECT_EQ(m->root_item()->path, "com.apple.CoreML/model.mlmodel");
    // Core ML tools write sorted keys with a 4-space indent; so do we.
    EXPECT_EQ(m->Serialize(), *bytes) << pkg;
  }
}

TEST(ManifestTest, RejectsBadManifests) {
  const std::string good = R"({"fileFormatVersion": "1.0.0", "itemInfoEntries": {"A": {"author": "a", "description": "d", "name": "model.mlmodel", "path": "com.apple.CoreML/model.mlmodel"}}, "rootModelIdentifier": "A"})";
  ASSERT_TRUE(Manifest::Parse(good, "M").ok());
  struct Case {
    std::string json;
    std::string expect;
  } cases[] = {
      {"not json", "not a valid manifest"},
      {R"({"itemInfoEntries": {}, "rootModelIdentifier": "A"})", "missing fileFormatVersion"},
      {R"({"fileFormatVersion": "2.0.0", "itemInfoEntries": {}, "rootModelIdentifier": "A"})", "unsupported fileFormatVersion"},
      {R"({"fileFormatVersion": "1.0.0", "itemInfoEntries": {}})", "missing rootModelIdentifier"},
      {R"({"fileFormatVersion": "1.0.0", "itemInfoEntries": {}, "rootModelIdentifier": "B"})", "names no entry"},
      {R"({"fileFormatVersion": "1.0.0", "itemInfoEntries": {"A": {"path": "../../etc/passwd"}}, "rootModelIdentifier": "A"})", "'..' component"},
      {R"({"fileFormatVersion": "1.0.0", "itemInfoEntries": {"A": {"path": "/etc/passwd"}}, "rootModelIdentifier": "A"})", "absolute"},
      {R"({"fileFormatVersion": "1.0.0", "itemInfoEntries": {"A": {"path": ""}}, "rootModelIdentifier": "A"})", "empty"},
  };
  for (const Case& c : cases) {
    auto m = Manifest::Parse(c.json, "Foo/Manifest.json");
    ASSERT_FALSE(m.ok()) << c.json;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find(c.expect), std::string::npos) << m.status();
    EXPECT_NE(m.status().message().find("Foo/Manifest.json"), std::string::npos) << m.status();
  }
}

TEST(ManifestTest, NewPackageManifestIsDeterministicPerSeed) {
  Manifest a = Manifest::ForNewPackage("seed");
  Manifest b = Manifest::ForNewPackage("seed");
  Manifest c = Manifest::ForNewPackage("other");
  EXPECT_EQ(a.Serialize(), b.Serialize());
  EXPECT_NE(a.Serialize(), c.Serialize());
  auto parsed = Manifest::Parse(a.Serialize(), "new");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->items.size(), 2u);
  EXPECT_EQ(parsed->root_item()->name, "model.mlmodel");
}

TEST(PackageTest, OpensEveryRealPackage) {
  for (const std::string& dir : AllRealPackages()) {
    auto pkg = MlPackage::Open(dir);
    ASSERT_TRUE(pkg.ok()) << pkg.status();
    EXPECT_TRUE((*pkg)->model().has_mlprogram()) << dir;
    EXPECT_EQ((*pkg)->layout().model_path, "Data/com.apple.CoreML/model.mlmodel");
    EXPECT_EQ((*pkg)->files().size(), 3u);
    auto weights = (*pkg)->WeightFile("@model_path/weights/weight.bin");
    ASSERT_TRUE(weights.ok()) << weights.status();
    EXPECT_GT((*weights)->header().count, 0u);
  }
}

TEST(PackageTest, ResolvesOnlySafeWeightPaths) {
  auto pkg = MlPackage::Open(AllRealPackages()[0]);
  ASSERT_TRUE(pkg.ok());
  const PackageLayout& layout = (*pkg)->layout();
  EXPECT_EQ(*layout.ResolveBlobFile("@model_path/weights/weight.bin"), "Data/com.apple.CoreML/weights/weight.bin");
  EXPECT_FALSE(layout.ResolveBlobFile("weights/weight.bin").ok());
  EXPECT_FALSE(layout.ResolveBlobFile("@model_path/../../../etc/passwd").ok());
  EXPECT_FALSE(layout.ResolveBlobFile("@model_path//abs").ok());
  EXPECT_FALSE((*pkg)->WeightFile("@model_path/weights/missing.bin").ok());
}

// Serialising a parsed spec and parsing it again gives the same message,
// unknown fields included. (Bytes can differ from Core ML tools' output only
// in map entry order, which Python protobuf does not keep stable.)
TEST(PackageTest, ModelSpecRoundTripsThroughOurSerializer) {
  std::vector<std::string> specs;
  for (const std::string& dir : AllRealPackages()) specs.push_back(dir + "/Data/com.apple.CoreML/model.mlmodel");
  specs.push_back(testing::ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel");
  for (const std::string& path : specs) {
    auto bytes = ReadFile(path);
    ASSERT_TRUE(bytes.ok());
    auto model = ParseModelSpec(*bytes, path);
    ASSERT_TRUE(model.ok()) << model.status();
    const std::string ours = SerializeModelSpec(*model);
    EXPECT_EQ(ours.size(), bytes->size()) << path;  // same content, possibly reordered map entries
    auto again = ParseModelSpec(ours, "again");
    ASSERT_TRUE(again.ok());
    google::protobuf::util::MessageDifferencer diff;
    std::string report;
    diff.ReportDifferencesToString(&report);
    EXPECT_TRUE(diff.Compare(*model, *again)) << path << "\n" << report;
    // Our own output is a fixed point: serialising again changes nothing.
    EXPECT_EQ(SerializeModelSpec(*again), ours);
  }
}

TEST(PackageTest, UnknownFieldsSurvive) {
  auto bytes = ReadFile(testing::ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel");
  ASSERT_TRUE(bytes.ok());
  // Append a field no version of Core ML defines (number 9999, varint 7).
  std::string extended = *bytes;
  extended += std::string("\xf8\xf0\x04\x07", 4);  // tag (9999 << 3 | 0), value 7
  auto model = ParseModelSpec(extended, "x");
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string out = SerializeModelSpec(*model);
  EXPECT_NE(out.find(std::string("\xf8\xf0\x04\x07", 4)), std::string::npos);
  EXPECT_EQ(out.size(), extended.size());
}

TEST(PackageTest, RejectsCorruptSpecs) {
  auto bytes = ReadFile(testing::GoldenDir() + "/ios16_original.mlpackage/Data/com.apple.CoreML/model.mlmodel");
  ASSERT_TRUE(bytes.ok());
  for (size_t cut : {size_t{1}, bytes->size() / 3, bytes->size() - 1}) {
    auto m = ParseModelSpec(bytes->substr(0, cut), "model.mlmodel");
    EXPECT_FALSE(m.ok()) << "cut at " << cut;
    if (!m.ok()) {
      EXPECT_NE(m.status().message().find("model.mlmodel"), std::string::npos);
    }
  }
  EXPECT_FALSE(ParseModelSpec(std::string(100, '\xff'), "junk").ok());
}

TEST(PackageTest, MissingPiecesAreNamed) {
  testing::ScratchDir scratch;
  const std::string dir = scratch.Join("m.mlpackage");
  testing::CopyTree(testing::GoldenDir() + "/ios16_original.mlpackage", dir);
  ASSERT_TRUE(RemoveAll(dir + "/Data/com.apple.CoreML/weights").ok());
  auto pkg = MlPackage::Open(dir);
  ASSERT_FALSE(pkg.ok());
  EXPECT_EQ(pkg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(pkg.status().message().find("com.apple.CoreML/weights"), std::string::npos) << pkg.status();

  ASSERT_TRUE(RemoveAll(dir + "/Manifest.json").ok());
  pkg = MlPackage::Open(dir);
  ASSERT_FALSE(pkg.ok());
  EXPECT_NE(pkg.status().message().find("Manifest.json"), std::string::npos);

  EXPECT_EQ(MlPackage::Open(scratch.Join("nope")).status().code(), absl::StatusCode::kNotFound);
}

TEST(PackageTest, SymlinksAreRefused) {
  testing::ScratchDir scratch;
  const std::string dir = scratch.Join("m.mlpackage");
  testing::CopyTree(testing::GoldenDir() + "/ios16_original.mlpackage", dir);
  std::filesystem::create_symlink("/etc/passwd", dir + "/Data/extra");
  auto pkg = MlPackage::Open(dir);
  ASSERT_FALSE(pkg.ok());
  EXPECT_NE(pkg.status().message().find("symbolic link"), std::string::npos);
}

TEST(PackageWriterTest, CommitsAtomicallyAndCleansUp) {
  testing::ScratchDir scratch;
  const std::string dest = scratch.Join("out.mlpackage");
  {
    auto w = PackageWriter::Begin(dest, false);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->WriteFile("a/b.txt", "hello").ok());
    EXPECT_FALSE(w->WriteFile("../escape", "x").ok());
    // Dropped without Commit: nothing appears at the destination.
  }
  EXPECT_FALSE(PathExists(dest));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(scratch.path()), {}), 0);
  auto w = PackageWriter::Begin(dest, false);
  ASSERT_TRUE(w->WriteFile("a/b.txt", "hello").ok());
  ASSERT_TRUE(w->Commit().ok());
  EXPECT_EQ(*ReadFile(dest + "/a/b.txt"), "hello");
  EXPECT_EQ(PackageWriter::Begin(dest, false).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(PackageTest, BuilderPackagesOpen) {
  testing::ScratchDir scratch;
  for (auto type : {ElementType::kFloat16, ElementType::kFloat32}) {
    const std::string dir = scratch.Join(std::string(ElementTypeName(type)) + ".mlpackage");
    ASSERT_TRUE(testing::WriteMixedTestPackage(dir, type, 7).ok());
    auto pkg = MlPackage::Open(dir);
    ASSERT_TRUE(pkg.ok()) << pkg.status();
  }
}

}  // namespace
}  // namespace coremlz::format
