#include "format/package_writer.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace coremlz::format {
namespace fs = std::filesystem;

absl::StatusOr<PackageWriter> PackageWriter::Begin(const std::string& destination, bool overwrite) {
  if (destination.empty()) return absl::InvalidArgumentError("empty output path");
  std::string dest = destination;
  while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
  if (PathExists(dest) && !overwrite) {
    return absl::AlreadyExistsError(absl::StrCat(dest, " already exists (pass --force to replace it)"));
  }
  fs::path parent = fs::path(dest).parent_path();
  if (!parent.empty()) RETURN_IF_ERROR(MakeDirectories(parent.string()));
  std::string staging = absl::StrCat(dest, ".coremlz-staging-", ::getpid());
  RETURN_IF_ERROR(RemoveAll(staging));
  RETURN_IF_ERROR(MakeDirectories(staging));
  return PackageWriter(dest, staging, overwrite);
}

PackageWriter::PackageWriter(PackageWriter&& other) noexcept
    : destination_(std::move(other.destination_)),
      staging_(std::move(other.staging_)),
      overwrite_(other.overwrite_),
      committed_(other.committed_) {
  other.committed_ = true;  // the moved-from object owns nothing
}

PackageWriter::~PackageWriter() {
  if (!committed_ && !staging_.empty()) (void)RemoveAll(staging_);
}

absl::StatusOr<std::string> PackageWriter::StagingPath(absl::string_view relative) {
  RETURN_IF_ERROR(ValidateRelativePath(relative));
  std::string path = JoinPath(staging_, relative);
  fs::path parent = fs::path(path).parent_path();
  RETURN_IF_ERROR(MakeDirectories(parent.string()));
  return path;
}

absl::Status PackageWriter::WriteFile(absl::string_view relative, absl::string_view bytes) {
  ASSIGN_OR_RETURN(std::string path, StagingPath(relative));
  return WriteFileAtomically(path, bytes);
}

absl::Status PackageWriter::CopyFile(const std::string& source, absl::string_view relative) {
  ASSIGN_OR_RETURN(std::string path, StagingPath(relative));
  std::error_code ec;
  fs::copy_file(source, path, fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot copy ", source, " to ", path, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status PackageWriter::Commit() {
  if (committed_) return absl::FailedPreconditionError("package already committed");
  if (PathExists(destination_)) {
    if (!overwrite_) return absl::AlreadyExistsError(absl::StrCat(destination_, " already exists"));
    RETURN_IF_ERROR(RemoveAll(destination_));
  }
  std::error_code ec;
  fs::rename(staging_, destination_, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot move ", staging_, " to ", destination_, ": ", ec.message()));
  }
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace coremlz::format
