// Builds a seed corpus for every fuzz target from the reference models in
// ../shared (which we may read but not copy into the repository):
//   make_seeds <shared dir> <out dir>
// writes <out dir>/<target>/<name> for each target. scripts/fuzz.sh uses it
// to start libFuzzer from real files (and from coremlz's own test models), and ctest replays the same seeds
// through the plain-build targets.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "coremlz/v1/compressor.pb.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "tests/testing/model_builder.h"

namespace {

using coremlz::JoinPath;

std::string LengthPrefixed32(const std::string& spec, const std::string& weights) {
  std::string out;
  const uint32_t n = static_cast<uint32_t>(spec.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + spec + weights;
}

void AppendMessage16(const google::protobuf::MessageLite& m, std::string* out) {
  const std::string bytes = m.SerializeAsString();
  if (bytes.size() > 0xffff) return;
  out->push_back(static_cast<char>(bytes.size() & 0xff));
  out->push_back(static_cast<char>(bytes.size() >> 8));
  *out += bytes;
}

int Write(const std::string& dir, const std::string& name, const std::string& data) {
  if (!coremlz::MakeDirectories(dir).ok() || !coremlz::WriteFileAtomically(JoinPath(dir, name), data).ok()) {
    std::fprintf(stderr, "make_seeds: cannot write %s/%s\n", dir.c_str(), name.c_str());
    return 1;
  }
  return 0;
}

// A Compress stream of `package` with small chunks, as the fuzz target reads it.
std::string CompressStream(const std::string& package, const std::string& config_yaml) {
  std::string root;
  auto files = coremlz::api::DescribeModelFiles(package, &root);
  if (!files.ok()) return "";
  std::string out;
  coremlz::v1::CompressRequest header;
  header.mutable_header()->set_config_yaml(config_yaml);
  for (const auto& f : *files) *header.mutable_header()->add_files() = f;
  AppendMessage16(header, &out);
  (void)coremlz::api::SendFiles(root, *files, 0, [&](coremlz::v1::FileChunk&& chunk) {
    coremlz::v1::CompressRequest r;
    *r.mutable_chunk() = std::move(chunk);
    AppendMessage16(r, &out);
    return true;
  }, nullptr, 4096);
  return out;
}

struct Technique {
  const char* name;
  int spec_version;
  const char* yaml;
};

constexpr Technique kTechniques[] = {
    {"ios16_palettize_4bit_kmeans", 7, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, weight_threshold: 0}\n"},
    {"ios16_palettize_2bit_uniform", 7, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 2, mode: uniform, weight_threshold: 0}\n"},
    {"ios16_linear_int8", 7, "config_type: OpLinearQuantizerConfig\nglobal_config: {weight_threshold: 0}\n"},
    {"ios16_linear_uint8_tensor", 7, "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint8, mode: linear, granularity: per_tensor, weight_threshold: 0}\n"},
    {"ios16_prune_50", 7, "config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5, weight_threshold: 0}\n"},
    {"ios18_palettize_3bit_grouped", 9, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 3, granularity: per_grouped_channel, group_size: 8, enable_per_channel_scale: true, weight_threshold: 0}\n"},
    {"ios18_palettize_vector", 9, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 2, cluster_dim: 2, weight_threshold: 0}\n"},
    {"ios18_linear_int4_block", 9, "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: per_block, block_size: 16, weight_threshold: 0}\n"},
    {"ios18_prune_n_m", 9, "config_type: OpMagnitudePrunerConfig\nglobal_config: {n_m_ratio: [2, 4], weight_threshold: 0}\n"},
    {"ios18_joint_prune_palettize", 9, "passes:\n  - config_type: OpMagnitudePrunerConfig\n    global_config: {target_sparsity: 0.5, weight_threshold: 0}\n  - config_type: OpPalettizerConfig\n    joint_compression: true\n    global_config: {nbits: 4, weight_threshold: 0}\n"},
    {"ios18_joint_prune_linear", 9, "passes:\n  - config_type: OpMagnitudePrunerConfig\n    global_config: {target_sparsity: 0.5, weight_threshold: 0}\n  - config_type: OpLinearQuantizerConfig\n    joint_compression: true\n    global_config: {weight_threshold: 0}\n"},
};

// A conv and a linear layer with a few hundred weights each.
absl::Status WriteSmallPackage(const std::string& dir, int spec_version) {
  using coremlz::format::ElementType;
  coremlz::testing::ProgramBuilder b(spec_version);
  b.AddInput("x", ElementType::kFloat16, {1, 4, 4, 4});
  std::string h = b.Conv("conv", "x", 4, 8, 3, 4, ElementType::kFloat16, 1);
  h = b.Op("reshape", {{"x", h}}, "flat", ElementType::kFloat16, {1, 8, 16});
  h = b.Linear("fc", h, 16, 24, {1, 8, 16}, ElementType::kFloat16, 2);
  b.AddOutput(h, ElementType::kFloat16, {1, 8, 24});
  return b.WritePackage(dir);
}

int CompressedSeeds(const std::string& scratch, const std::string& out, int* written) {
  int failures = 0;
  for (int version : {7, 9}) {
    const std::string input = JoinPath(scratch, absl::StrCat("small_v", version, ".mlpackage"));
    if (!WriteSmallPackage(input, version).ok()) return 1;
  }
  for (const Technique& t : kTechniques) {
    auto config = coremlz::engine::ParseCompressionConfig(t.yaml);
    const std::string input = JoinPath(scratch, absl::StrCat("small_v", t.spec_version, ".mlpackage"));
    const std::string output = JoinPath(scratch, absl::StrCat(t.name, ".mlpackage"));
    if (!config.ok() || !coremlz::engine::CompressModelPath(input, output, *config, {}, {}).ok()) {
      std::fprintf(stderr, "make_seeds: cannot compress %s\n", t.name);
      ++failures;
      continue;
    }
    auto spec = coremlz::ReadFile(JoinPath(output, "Data/com.apple.CoreML/model.mlmodel"));
    auto weights = coremlz::ReadFile(JoinPath(output, "Data/com.apple.CoreML/weights/weight.bin"));
    if (!spec.ok() || !weights.ok()) {
      ++failures;
      continue;
    }
    const std::string name = absl::StrCat("small_", t.name);
    failures += Write(JoinPath(out, "fuzz_decompress"), name, LengthPrefixed32(*spec, *weights));
    failures += Write(JoinPath(out, "fuzz_mil_program"), name, LengthPrefixed32(*spec, *weights));
    failures += Write(JoinPath(out, "fuzz_program_executor"), name, LengthPrefixed32(*spec, *weights));
    failures += Write(JoinPath(out, "fuzz_weight_bin"), name, std::string(1, '\x11') + *weights);
    *written += 4;
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds <shared dir> <out dir>\n");
    return 2;
  }
  const std::string shared = argv[1];
  const std::string out = argv[2];
  const std::string golden = JoinPath(shared, "golden");
  int failures = 0;
  int written = 0;

  // Small packages only: the fuzz targets are fast on inputs of ~100 KB.
  std::vector<std::string> packages;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(golden, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, ".mlpackage")) packages.push_back(name);
  }
  if (ec) {
    std::fprintf(stderr, "make_seeds: cannot list %s: %s\n", golden.c_str(), ec.message().c_str());
    return 1;
  }
  for (const std::string& name : packages) {
    const std::string pkg = JoinPath(golden, name);
    const std::string data = JoinPath(pkg, "Data/com.apple.CoreML");
    auto spec = coremlz::ReadFile(JoinPath(data, "model.mlmodel"));
    auto weights = coremlz::ReadFile(JoinPath(data, "weights/weight.bin"));
    auto manifest = coremlz::ReadFile(JoinPath(pkg, "Manifest.json"));
    if (!spec.ok() || !weights.ok() || !manifest.ok()) {
      ++failures;
      continue;
    }
    const std::string base = name.substr(0, name.size() - std::string(".mlpackage").size());
    failures += Write(JoinPath(out, "fuzz_model_spec"), base, *spec);
    failures += Write(JoinPath(out, "fuzz_manifest"), base, *manifest);
    failures += Write(JoinPath(out, "fuzz_weight_bin"), base, std::string(1, '\x3f') + *weights);
    failures += Write(JoinPath(out, "fuzz_mil_program"), base, LengthPrefixed32(*spec, *weights));
    failures += Write(JoinPath(out, "fuzz_program_executor"), base, LengthPrefixed32(*spec, *weights));
    const std::string stream = CompressStream(pkg, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n");
    if (!stream.empty()) failures += Write(JoinPath(out, "fuzz_compress_stream"), base, stream);
    written += 6;
  }
  // The real models' specs (their weight files are megabytes: too slow to
  // mutate, and the golden packages cover the same blob layouts).
  for (const char* model : {"mobilenetv2_randinit", "transformer_encoder_randinit"}) {
    auto spec = coremlz::ReadFile(
        JoinPath(shared, absl::StrCat("models/", model, "/", model, ".mlpackage/Data/com.apple.CoreML/model.mlmodel")));
    if (!spec.ok()) {
      ++failures;
      continue;
    }
    failures += Write(JoinPath(out, "fuzz_model_spec"), model, *spec);
    failures += Write(JoinPath(out, "fuzz_mil_program"), model, LengthPrefixed32(*spec, ""));
    failures += Write(JoinPath(out, "fuzz_program_executor"), model, LengthPrefixed32(*spec, ""));
    written += 3;
  }
  auto nn = coremlz::ReadFile(JoinPath(shared, "models/edsr_f32b5/edsr_f32b5_fp32.mlmodel"));
  if (nn.ok()) {
    failures += Write(JoinPath(out, "fuzz_model_spec"), "edsr_f32b5", *nn);
    failures += Write(JoinPath(out, "fuzz_nn_executor"), "edsr_f32b5", *nn);
    written += 2;
  }
  // Our own test models: fp32 ML Programs and fp16 NeuralNetwork weights,
  // which the shared models lack.
  for (int fp16 = 0; fp16 < 2; ++fp16) {
    const std::string name = fp16 ? "builder_nn_fp16" : "builder_nn_fp32";
    const std::string spec = coremlz::testing::BuildNeuralNetworkModel(fp16 != 0, 7).SerializeAsString();
    failures += Write(JoinPath(out, "fuzz_model_spec"), name, spec);
    failures += Write(JoinPath(out, "fuzz_nn_executor"), name, spec);
    written += 2;
  }
  const std::string scratch = JoinPath(out, ".builder");
  for (int version : {7, 9}) {
    const std::string pkg = JoinPath(scratch, absl::StrCat("mixed_fp32_v", version, ".mlpackage"));
    if (!coremlz::testing::WriteMixedTestPackage(pkg, coremlz::format::ElementType::kFloat32, version).ok()) {
      ++failures;
      continue;
    }
    const std::string data = JoinPath(pkg, "Data/com.apple.CoreML");
    auto spec = coremlz::ReadFile(JoinPath(data, "model.mlmodel"));
    auto weights = coremlz::ReadFile(JoinPath(data, "weights/weight.bin"));
    if (!spec.ok() || !weights.ok()) {
      ++failures;
      continue;
    }
    const std::string base = absl::StrCat("builder_mixed_fp32_v", version);
    failures += Write(JoinPath(out, "fuzz_model_spec"), base, *spec);
    failures += Write(JoinPath(out, "fuzz_mil_program"), base, LengthPrefixed32(*spec, *weights));
    failures += Write(JoinPath(out, "fuzz_program_executor"), base, LengthPrefixed32(*spec, *weights));
    written += 3;
  }
  // Small compressed models, one per technique and opset: the decompressor's
  // seeds. (The golden packages hold the same ops at sizes that make every
  // run take milliseconds.)
  failures += CompressedSeeds(scratch, out, &written);
  (void)coremlz::RemoveAll(scratch);
  std::printf("make_seeds: %d seeds from %zu packages in %s\n", written, packages.size(), out.c_str());
  return failures == 0 && written > 0 ? 0 : 1;
}
