// Builds a seed corpus for every fuzz target from the reference models in
// ../shared (which we may read but not copy into the repository):
//   make_seeds <shared dir> <out dir>
// writes <out dir>/<target>/<name> for each target. scripts/fuzz.sh uses it
// to start libFuzzer from real files, and ctest replays the same seeds
// through the plain-build targets.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "coremlz/v1/compressor.pb.h"

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
    failures += Write(JoinPath(out, "fuzz_decompress"), base, LengthPrefixed32(*spec, *weights));
    const std::string stream = CompressStream(pkg, "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n");
    if (!stream.empty()) failures += Write(JoinPath(out, "fuzz_compress_stream"), base, stream);
    written += 6;
  }
  // The NeuralNetwork model (one is enough; it is 430 KB).
  auto nn = coremlz::ReadFile(JoinPath(shared, "models/edsr_f32b5/edsr_f32b5_fp32.mlmodel"));
  if (nn.ok()) {
    failures += Write(JoinPath(out, "fuzz_model_spec"), "edsr_f32b5", *nn);
    ++written;
  }
  std::printf("make_seeds: %d seeds from %zu packages in %s\n", written, packages.size(), out.c_str());
  return failures == 0 && written > 0 ? 0 : 1;
}
