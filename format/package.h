// .mlpackage directories: layout resolution (manifest -> model spec and weight
// files) and reading a package from disk.
//
//   Foo.mlpackage/Manifest.json
//   Foo.mlpackage/Data/com.apple.CoreML/model.mlmodel       (root item)
//   Foo.mlpackage/Data/com.apple.CoreML/weights/weight.bin  (blob storage)
// A program names weight files as "@model_path/<path>", relative to the
// directory holding the root model spec.
#ifndef COREMLZ_FORMAT_PACKAGE_H_
#define COREMLZ_FORMAT_PACKAGE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "coreml/model.pb.h"
#include "format/blob_storage.h"
#include "format/manifest.h"

namespace coremlz::format {

inline constexpr absl::string_view kModelPathPrefix = "@model_path/";
// Manifest.json lists a handful of items; anything larger is not a package
// Core ML tools wrote (coremlzd --max-manifest-kb overrides it).
inline constexpr uint64_t kDefaultMaxManifestBytes = uint64_t{1} << 20;

struct PackageLayout {
  Manifest manifest;
  std::string model_path;  // package-relative, e.g. "Data/com.apple.CoreML/model.mlmodel"
  std::string model_dir;   // package-relative directory that "@model_path" names

  static absl::StatusOr<PackageLayout> FromManifest(Manifest manifest);
  // Reads and parses `dir`/Manifest.json alone (the other files need not
  // exist yet, as during an upload).
  static absl::StatusOr<PackageLayout> Read(const std::string& dir, uint64_t max_manifest_bytes = kDefaultMaxManifestBytes);
  // "@model_path/weights/weight.bin" -> "Data/com.apple.CoreML/weights/weight.bin".
  absl::StatusOr<std::string> ResolveBlobFile(absl::string_view file_name) const;
};

// Every regular file under `dir`, as sorted '/'-separated relative paths.
// Symbolic links and special files are refused: a package is plain files.
absl::StatusOr<std::vector<std::string>> ListPackageFiles(const std::string& dir);

// Parses a serialized Core ML model specification (.mlmodel bytes).
absl::StatusOr<CoreML::Specification::Model> ParseModelSpec(absl::string_view bytes,
                                                            absl::string_view label);
// Deterministic serialization (map entries sorted by key) so that equal
// models always give equal bytes.
std::string SerializeModelSpec(const CoreML::Specification::Model& model);

// An .mlpackage directory opened for reading. Weight files are memory-mapped
// on first use.
class MlPackage {
 public:
  static absl::StatusOr<std::unique_ptr<MlPackage>> Open(const std::string& dir,
                                                        uint64_t max_manifest_bytes = kDefaultMaxManifestBytes);

  const std::string& dir() const { return dir_; }
  const PackageLayout& layout() const { return layout_; }
  const std::string& manifest_bytes() const { return manifest_bytes_; }
  const std::string& model_bytes() const { return model_bytes_; }
  const CoreML::Specification::Model& model() const { return model_; }
  // For callers that rewrite the parsed spec in place (NeuralNetwork
  // compression): the spec is the largest thing such a package holds, so it
  // is changed where it is rather than copied. The files are not touched.
  CoreML::Specification::Model* mutable_model() { return &model_; }
  const std::vector<std::string>& files() const { return files_; }

  // The weight file a BlobFileValue names, validated and mapped.
  absl::StatusOr<const BlobStorageReader*> WeightFile(absl::string_view blob_file_name);
  // Package-relative path -> absolute path on disk.
  std::string PathOf(absl::string_view relative) const { return JoinPath(dir_, relative); }

 private:
  struct MappedWeights {
    MappedFile file;
    std::unique_ptr<BlobStorageReader> reader;
  };
  std::string dir_;
  PackageLayout layout_;
  std::string manifest_bytes_;
  std::string model_bytes_;
  CoreML::Specification::Model model_;
  std::vector<std::string> files_;
  std::map<std::string, MappedWeights> weights_;
};

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_PACKAGE_H_
