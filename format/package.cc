#include "format/package.h"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace coremlz::format {

absl::StatusOr<PackageLayout> PackageLayout::FromManifest(Manifest manifest) {
  PackageLayout layout;
  const ManifestItem* root = manifest.root_item();
  if (root == nullptr) return absl::InvalidArgumentError("manifest has no root model item");
  layout.model_path = absl::StrCat(kPackageDataDir, "/", root->path);
  size_t slash = layout.model_path.rfind('/');
  layout.model_dir = layout.model_path.substr(0, slash);
  layout.manifest = std::move(manifest);
  return layout;
}

absl::StatusOr<std::string> PackageLayout::ResolveBlobFile(absl::string_view file_name) const {
  if (!absl::StartsWith(file_name, kModelPathPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat("weight file \"", file_name,
                                                   "\" does not start with \"@model_path/\""));
  }
  absl::string_view rest = file_name.substr(kModelPathPrefix.size());
  RETURN_IF_ERROR(ValidateRelativePath(rest));
  return absl::StrCat(model_dir, "/", rest);
}

absl::StatusOr<std::vector<std::string>> ListPackageFiles(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, " is not a directory"));
  }
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
    const fs::directory_entry& entry = *it;
    fs::file_status st = entry.symlink_status(ec);
    std::string rel = fs::relative(entry.path(), dir, ec).generic_string();
    if (fs::is_symlink(st)) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, ": ", rel, " is a symbolic link; packages must hold plain files"));
    }
    if (fs::is_directory(st)) continue;
    if (!fs::is_regular_file(st)) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": ", rel, " is not a regular file"));
    }
    files.push_back(rel);
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<CoreML::Specification::Model> ParseModelSpec(absl::string_view bytes,
                                                            absl::string_view label) {
  CoreML::Specification::Model model;
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream in(&raw);
  in.SetTotalBytesLimit(INT_MAX);
  if (bytes.size() > static_cast<size_t>(INT_MAX) || !model.ParseFromCodedStream(&in) ||
      !in.ConsumedEntireMessage()) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, ": not a valid Core ML model specification (protobuf parse failed in ",
        bytes.size(), " bytes)"));
  }
  return model;
}

std::string SerializeModelSpec(const CoreML::Specification::Model& model) {
  std::string out;
  google::protobuf::io::StringOutputStream raw(&out);
  google::protobuf::io::CodedOutputStream coded(&raw);
  coded.SetSerializationDeterministic(true);
  model.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

absl::StatusOr<PackageLayout> PackageLayout::Read(const std::string& dir, uint64_t max_manifest_bytes) {
  const std::string manifest_path = JoinPath(dir, kManifestFileName);
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(manifest_path, max_manifest_bytes));
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::Parse(bytes, manifest_path));
  return FromManifest(std::move(manifest));
}

absl::StatusOr<std::unique_ptr<MlPackage>> MlPackage::Open(const std::string& dir, uint64_t max_manifest_bytes) {
  auto pkg = std::make_unique<MlPackage>();
  pkg->dir_ = dir;
  ASSIGN_OR_RETURN(pkg->files_, ListPackageFiles(dir));
  std::string manifest_path = JoinPath(dir, kManifestFileName);
  ASSIGN_OR_RETURN(pkg->manifest_bytes_, ReadFile(manifest_path, max_manifest_bytes));
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::Parse(pkg->manifest_bytes_, manifest_path));
  // Items must exist: a file for the root spec, a file or directory otherwise.
  for (const ManifestItem& item : manifest.items) {
    std::string path = JoinPath(JoinPath(dir, kPackageDataDir), item.path);
    if (!PathExists(path)) {
      // The package is inconsistent (not merely absent): a bad argument.
      return absl::InvalidArgumentError(absl::StrCat(manifest_path, ": item ", item.identifier, " (\"",
                                              item.name, "\") points at ", item.path,
                                              ", which the package does not contain"));
    }
  }
  ASSIGN_OR_RETURN(pkg->layout_, PackageLayout::FromManifest(std::move(manifest)));
  std::string model_path = pkg->PathOf(pkg->layout_.model_path);
  if (IsDirectory(model_path)) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, " is a directory, not a model spec"));
  }
  ASSIGN_OR_RETURN(pkg->model_bytes_, ReadFile(model_path, uint64_t{2} << 30));
  ASSIGN_OR_RETURN(pkg->model_, ParseModelSpec(pkg->model_bytes_, model_path));
  return pkg;
}

absl::StatusOr<const BlobStorageReader*> MlPackage::WeightFile(absl::string_view blob_file_name) {
  ASSIGN_OR_RETURN(std::string rel, layout_.ResolveBlobFile(blob_file_name));
  auto it = weights_.find(rel);
  if (it != weights_.end()) return it->second.reader.get();
  MappedWeights mapped;
  ASSIGN_OR_RETURN(mapped.file, MappedFile::Open(PathOf(rel)));
  ASSIGN_OR_RETURN(BlobStorageReader reader,
                   BlobStorageReader::Open(mapped.file.bytes(), PathOf(rel)));
  mapped.reader = std::make_unique<BlobStorageReader>(std::move(reader));
  auto [pos, inserted] = weights_.emplace(rel, std::move(mapped));
  return pos->second.reader.get();
}

}  // namespace coremlz::format
