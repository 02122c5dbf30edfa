#include "engine/decompress.h"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

struct GoldenCase {
  std::string package;  // e.g. "ios16_palettize_4bit_kmeans"
};

std::vector<std::string> GoldenCompressedPackages() {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator(testing::GoldenDir())) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".mlpackage" && name.find("original") == std::string::npos) {
      out.push_back(e.path().stem().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<float> ReadF32(const std::string& path) {
  auto bytes = ReadFile(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  std::vector<float> v(bytes->size() / 4);
  std::memcpy(v.data(), bytes->data(), v.size() * 4);
  return v;
}

class GoldenDecompressTest : public ::testing::TestWithParam<std::string> {};

// Reader fidelity: our decompression of coremltools' own output gives
// exactly the floats coremltools' decompress_weights gives.
TEST_P(GoldenDecompressTest, MatchesCoremltoolsBitForBit) {
  const std::string base = testing::GoldenDir() + "/" + GetParam();
  auto pkg = format::MlPackage::Open(base + ".mlpackage");
  ASSERT_TRUE(pkg.ok()) << pkg.status();
  PackageValueReader reader(pkg->get());
  auto weights = DecompressProgram((*pkg)->model().mlprogram(), &reader);
  ASSERT_TRUE(weights.ok()) << weights.status();
  int compared = 0;
  for (auto& e : std::filesystem::directory_iterator(base + ".decompressed")) {
    const std::string name = e.path().stem().string();
    const DecompressedWeight* found = nullptr;
    for (const auto& w : *weights) {
      if (w.name == name) found = &w;
    }
    ASSERT_NE(found, nullptr) << GetParam() << ": no decompressed weight named " << name;
    EXPECT_FALSE(found->intermediate);
    const std::vector<float> expected = ReadF32(e.path().string());
    auto ours = format::ToFloats(format::View(found->dense));
    ASSERT_TRUE(ours.ok());
    ASSERT_EQ(ours->size(), expected.size()) << name;
    size_t mismatches = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      // Bitwise: -0.0 vs 0.0 counts as equal only if coremltools agrees.
      uint32_t a, b;
      std::memcpy(&a, &expected[i], 4);
      std::memcpy(&b, &(*ours)[i], 4);
      if (a != b && !(expected[i] == 0 && (*ours)[i] == 0)) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u) << GetParam() << " " << name;
    ++compared;
  }
  EXPECT_EQ(compared, 2);
}

// The streaming walk the inventory uses hands out the same outputs, with
// the same values, as the whole-program decompression; ops repeated with a
// new name (the same blob read through many ops) share their first's key
// and are not evaluated again.
TEST_P(GoldenDecompressTest, StreamingWalkGivesTheSameOutputs) {
  const std::string base = testing::GoldenDir() + "/" + GetParam();
  auto pkg = format::MlPackage::Open(base + ".mlpackage");
  ASSERT_TRUE(pkg.ok()) << pkg.status();
  PackageValueReader reader(pkg->get());
  auto weights = DecompressProgram((*pkg)->model().mlprogram(), &reader);
  ASSERT_TRUE(weights.ok()) << weights.status();
  // Every constexpr op twice: as written and renamed, after all the others.
  CoreML::Specification::Model model = (*pkg)->model();
  for (auto& [fname, f] : *model.mutable_mlprogram()->mutable_functions()) {
    for (auto& [key, block] : *f.mutable_block_specializations()) {
      const int n = block.operations_size();
      for (int i = 0; i < n; ++i) {
        CoreML::Specification::MILSpec::Operation op = block.operations(i);
        if (op.type().rfind("constexpr_", 0) != 0) continue;
        for (auto& o : *op.mutable_outputs()) o.set_name(o.name() + "_again");
        for (auto& [in, arg] : *op.mutable_inputs()) {
          for (auto& b : *arg.mutable_arguments()) {
            if (b.has_name()) b.set_name(b.name() + "_again");
          }
        }
        *block.add_operations() = op;
      }
    }
  }
  std::map<std::string, const format::Tensor*> expected;
  for (const auto& w : *weights) expected[w.name] = &w.dense;
  std::map<std::string, std::string> first_bytes;  // key -> values of its first output
  int evaluated = 0, repeats = 0;
  absl::Status s = ForEachDecompressed(model.mlprogram(), &reader, [&](const DecompressedOutput& out) -> absl::Status {
    const bool again = out.name.size() > 6 && out.name.substr(out.name.size() - 6) == "_again";
    const std::string original = again ? out.name.substr(0, out.name.size() - 6) : out.name;
    EXPECT_TRUE(expected.count(original)) << out.name;
    if (out.dense == nullptr) {
      ++repeats;
      EXPECT_TRUE(again) << out.name << " was skipped but repeats nothing";
      EXPECT_TRUE(first_bytes.count(out.key)) << out.name;
      if (expected.count(original)) {
        EXPECT_TRUE(first_bytes[out.key] == expected[original]->bytes) << out.name;
      }
      return absl::OkStatus();
    }
    ++evaluated;
    EXPECT_FALSE(again) << out.name << " was evaluated again";
    if (expected.count(original)) {
      EXPECT_TRUE(out.dense->bytes == expected[original]->bytes) << out.name;
    }
    first_bytes.emplace(out.key, out.dense->bytes);
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(evaluated, static_cast<int>(weights->size()));
  EXPECT_EQ(repeats, static_cast<int>(weights->size()));
}

INSTANTIATE_TEST_SUITE_P(AllGolden, GoldenDecompressTest, ::testing::ValuesIn(GoldenCompressedPackages()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(DecompressTest, OriginalsHaveNothingToDecompress) {
  auto pkg = format::MlPackage::Open(testing::GoldenDir() + "/ios16_original.mlpackage");
  ASSERT_TRUE(pkg.ok());
  PackageValueReader reader(pkg->get());
  auto weights = DecompressProgram((*pkg)->model().mlprogram(), &reader);
  ASSERT_TRUE(weights.ok());
  EXPECT_TRUE(weights->empty());
}

}  // namespace
}  // namespace coremlz::engine

namespace coremlz::engine {
namespace {

namespace mil = CoreML::Specification::MILSpec;

// iOS16 constexpr ops carry their output shape as an attribute. A shape
// larger than the packed data must be refused before the output is
// allocated (found by fuzz_decompress as an out-of-memory).
void InflateShapeAttributes(mil::Program* program, const std::string& op_type) {
  for (auto& [_, fn] : *program->mutable_functions()) {
    for (auto& [_, block] : *fn.mutable_block_specializations()) {
      for (auto& op : *block.mutable_operations()) {
        if (op.type() != op_type) continue;
        mil::TensorValue* t = (*op.mutable_attributes())["shape"].mutable_immediatevalue()->mutable_tensor();
        if (t->has_ints()) {
          for (int i = 0; i < t->ints().values_size(); ++i) t->mutable_ints()->set_values(i, 1 << 12);
        } else {
          std::string* bytes = t->mutable_bytes()->mutable_values();
          for (size_t i = 0; i + 4 <= bytes->size(); i += 4) {
            const uint32_t big = 1u << 12;
            std::memcpy(&(*bytes)[i], &big, 4);
          }
        }
      }
    }
  }
}

class InflatedShapeTest : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(InflatedShapeTest, IsRefusedBeforeAllocating) {
  auto pkg = format::MlPackage::Open(testing::GoldenDir() + "/" + GetParam().first + ".mlpackage");
  ASSERT_TRUE(pkg.ok()) << pkg.status();
  mil::Program program = (*pkg)->model().mlprogram();
  InflateShapeAttributes(&program, GetParam().second);
  PackageValueReader reader(pkg->get());
  auto weights = DecompressProgram(program, &reader);
  ASSERT_FALSE(weights.ok());
  EXPECT_EQ(weights.status().code(), absl::StatusCode::kInvalidArgument) << weights.status();
  EXPECT_NE(weights.status().message().find("bytes are given"), std::string::npos) << weights.status();
}

INSTANTIATE_TEST_SUITE_P(Ios16, InflatedShapeTest,
                         ::testing::Values(std::make_pair("ios16_palettize_4bit_kmeans", "constexpr_lut_to_dense"),
                                           std::make_pair("ios16_prune_magnitude_50", "constexpr_sparse_to_dense")),
                         [](const auto& info) { return info.param.second; });

}  // namespace
}  // namespace coremlz::engine
