#include "format/package_writer.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
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
  PackageWriter writer(dest, staging, overwrite);
  RETURN_IF_ERROR(writer.Hide(RemoveAll(staging)));
  RETURN_IF_ERROR(writer.Hide(MakeDirectories(staging)));
  return std::move(writer);
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

absl::Status PackageWriter::Hide(const absl::Status& s) const {
  if (s.ok() || staging_.empty()) return s;
  return absl::Status(s.code(), absl::StrReplaceAll(s.message(), {{staging_, destination_}}));
}

std::string PackageWriter::DestinationPath(absl::string_view relative) const {
  return JoinPath(destination_, relative);
}

absl::StatusOr<std::string> PackageWriter::StagingPath(absl::string_view relative) {
  RETURN_IF_ERROR(ValidateRelativePath(relative));
  std::string path = JoinPath(staging_, relative);
  fs::path parent = fs::path(path).parent_path();
  RETURN_IF_ERROR(Hide(MakeDirectories(parent.string())));
  return path;
}

absl::Status PackageWriter::WriteFile(absl::string_view relative, absl::string_view bytes) {
  ASSIGN_OR_RETURN(std::string path, StagingPath(relative));
  return Hide(WriteFileAtomically(path, bytes));
}

absl::Status PackageWriter::CopyFile(const std::string& source, absl::string_view relative) {
  ASSIGN_OR_RETURN(std::string path, StagingPath(relative));
  std::error_code ec;
  fs::copy_file(source, path, fs::copy_options::overwrite_existing, ec);
  if (ec) return ErrnoStatus(absl::StrCat("cannot copy ", source, " to"), DestinationPath(relative), ec.value());
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
  if (ec) return ErrnoStatus("cannot move the finished package to", destination_, ec.value());
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace coremlz::format
