// The model the README's set-up command demonstrates on ships with the
// repository (models/): it must be the licensed upstream file, unchanged, and
// the demo's exact command must succeed on it in a clone with nothing beside it.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

constexpr char kPackage[] = "silero-vad-unified-v6.0.0.mlpackage";

std::string DemoDir() { return SourceDir() + "/models/silero_vad"; }
std::string DemoModel() { return DemoDir() + "/" + kPackage; }

std::string FileDigest(const std::string& path) {
  auto bytes = ReadFile(path, uint64_t{64} << 20);
  return bytes.ok() ? Sha256Hex(*bytes) : absl::StrCat("unreadable: ", bytes.status().ToString());
}

TEST(DemoModelTest, ShipsUnchangedWithItsLicenses) {
  // Digests as recorded in models/README.md (the upstream files).
  const std::pair<const char*, const char*> files[] = {
      {"Manifest.json", "eaf6dd91b375f0f4b8ca11505dc972760b48eb90ad3099c13041eb657c6332aa"},
      {"Data/com.apple.CoreML/model.mlmodel", "196d77d350915bb29c7f95e4162bbf6f94b671adef1e61d90e2cd4ce4e029db2"},
      {"Data/com.apple.CoreML/weights/weight.bin", "853cf34740d3f5061f977ebe2976f7c921b064261c9c4753b3a1196f2dba42b4"},
  };
  for (const auto& [rel, digest] : files) {
    EXPECT_EQ(FileDigest(DemoModel() + "/" + rel), digest) << rel;
  }
  for (const char* license : {"LICENSE-silero-vad.txt", "LICENSE-mobius.txt"}) {
    auto text = ReadFile(DemoDir() + "/" + license, 1 << 20);
    ASSERT_TRUE(text.ok()) << license;
    EXPECT_GT(text->size(), 500u) << license;
  }
  const std::string readme = ReadFile(SourceDir() + "/models/README.md", 1 << 20).value_or("");
  for (const auto& [rel, digest] : files) EXPECT_NE(readme.find(digest), std::string::npos) << rel;
}

TEST(DemoModelTest, SameAsTheSharedCopyWhereThereIsOne) {
  const std::string shared = ModelsDir() + "/silero_vad_unified/" + kPackage;
  if (!PathExists(shared)) GTEST_SKIP() << "no " << shared;
  for (const auto& e : std::filesystem::recursive_directory_iterator(shared)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = std::filesystem::relative(e.path(), shared).string();
    EXPECT_EQ(FileDigest(DemoModel() + "/" + rel), FileDigest(e.path().string())) << rel;
  }
}

TEST(DemoModelTest, TheSetUpDemoCompressesIt) {
  ScratchDir scratch;
  // The model is copied first: the demo must work from any location, and a
  // test never writes next to the repository's files.
  CopyTree(DemoModel(), scratch.Join(kPackage));
  const std::string out = scratch.Join("demo_palettized4.mlpackage");
  auto run = RunProgram({BinaryPath("clients/coremlz"), "compress", scratch.Join(kPackage), "-o", out, "--palettize", "4",
                         "--report", scratch.Join("report.json")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto pkg = format::MlPackage::Open(out);
  ASSERT_TRUE(pkg.ok()) << pkg.status();
  EXPECT_TRUE((*pkg)->model().has_mlprogram());
  EXPECT_NE((*pkg)->model_bytes().find("constexpr_lut_to_dense"), std::string::npos) << "palettized weights";
  // The palettized weights make the package smaller than the original.
  uint64_t before = 0, after = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(DemoModel()))
    if (e.is_regular_file()) before += e.file_size();
  for (const auto& e : std::filesystem::recursive_directory_iterator(out))
    if (e.is_regular_file()) after += e.file_size();
  EXPECT_LT(after, before / 2);
  EXPECT_TRUE(PathExists(scratch.Join("report.json")));
}

}  // namespace
}  // namespace coremlz::testing
