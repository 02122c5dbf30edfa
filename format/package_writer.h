// Writing .mlpackage directories. Output is assembled in the staging
// directory of an OutputTarget and swapped into place by it, so a failed
// write never leaves a half-written package at the destination, nor replaces
// anything but a model (see output_target.h). Errors name files by their
// place in the destination, never the staging directory; a full disk or
// quota is RESOURCE_EXHAUSTED.
#ifndef COREMLZ_FORMAT_PACKAGE_WRITER_H_
#define COREMLZ_FORMAT_PACKAGE_WRITER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "format/output_target.h"

namespace coremlz::format {

class PackageWriter {
 public:
  // Checks `destination` (OutputTarget::Check, no input to protect) and
  // stages beside it. `overwrite` lets an existing model be replaced.
  static absl::StatusOr<PackageWriter> Begin(const std::string& destination, bool overwrite);
  // Stages into an already checked target.
  static absl::StatusOr<PackageWriter> Begin(OutputTarget target);
  PackageWriter(PackageWriter&& other) noexcept = default;
  PackageWriter& operator=(PackageWriter&&) = delete;
  PackageWriter(const PackageWriter&) = delete;
  ~PackageWriter() = default;  // the target removes the staging directory unless committed

  // Writes a file at a package-relative path (validated), creating parents.
  absl::Status WriteFile(absl::string_view relative, absl::string_view bytes);
  // Copies an existing file into the package.
  absl::Status CopyFile(const std::string& source, absl::string_view relative);
  // Absolute staging path for a package-relative path, for writers that
  // stream (e.g. a FileSink for weight.bin). Parents are created.
  absl::StatusOr<std::string> StagingPath(absl::string_view relative);
  // Where a package-relative path will be once committed: how messages
  // (e.g. a FileSink's display name) should name it.
  std::string DestinationPath(absl::string_view relative) const;

  // Moves the staged package to the destination.
  absl::Status Commit();

 private:
  PackageWriter(OutputTarget target, std::string staging) : target_(std::move(target)), staging_(std::move(staging)) {}
  // `s` with the staging directory replaced by the destination in its message.
  absl::Status Hide(const absl::Status& s) const;
  OutputTarget target_;
  std::string staging_;
};

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_PACKAGE_WRITER_H_
