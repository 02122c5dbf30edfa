#include "format/package_writer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace coremlz::format {
namespace fs = std::filesystem;

absl::StatusOr<PackageWriter> PackageWriter::Begin(const std::string& destination, bool overwrite) {
  ASSIGN_OR_RETURN(OutputTarget target, OutputTarget::Check(destination, "", overwrite));
  return Begin(std::move(target));
}

absl::StatusOr<PackageWriter> PackageWriter::Begin(OutputTarget target) {
  ASSIGN_OR_RETURN(std::string staging, target.Stage());
  return PackageWriter(std::move(target), std::move(staging));
}

absl::Status PackageWriter::Hide(const absl::Status& s) const {
  if (s.ok() || staging_.empty()) return s;
  return absl::Status(s.code(), absl::StrReplaceAll(s.message(), {{staging_, target_.path()}}));
}

std::string PackageWriter::DestinationPath(absl::string_view relative) const {
  return JoinPath(target_.path(), relative);
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

absl::Status PackageWriter::Commit() { return Hide(target_.Commit(staging_)); }

}  // namespace coremlz::format
