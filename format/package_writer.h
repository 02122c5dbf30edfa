// Writing .mlpackage directories. Output is assembled in the staging
// directory of an OutputTarget and swapped into place by it, so a failed
// write never leaves a half-written package at the destination, nor replaces
// anything but a model (see output_target.h).
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

  // Moves the staged package to the destination.
  absl::Status Commit();

 private:
  PackageWriter(OutputTarget target, std::string staging) : target_(std::move(target)), staging_(std::move(staging)) {}
  OutputTarget target_;
  std::string staging_;
};

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_PACKAGE_WRITER_H_
