// Where a new model goes. Everything that writes a model at a path the user
// named - the CLI's embedded engine, its --server download, PackageWriter -
// goes through OutputTarget, so a destination is refused, staged and swapped
// in the same way whichever produced the bytes.
//
// Check() runs before any work. The destination loses trailing slashes and
// must name the model itself: not empty, ".", ".." or "/". It must not be the
// input, lie inside it or contain it. If something exists there it is
// replaced only when `replace` is set and it is a Core ML model: a directory
// with a valid Manifest.json or a regular file that parses as a model
// specification. A symbolic link, a plain directory or any other file is
// never replaced. The nearest existing parent must be a writable directory.
//
// The output has the input's kind - an .mlpackage directory from a package,
// a single .mlmodel file from a file; coremlz never converts between them -
// so a destination whose suffix names the other kind (pkg.mlpackage -o
// x.mlmodel, or the reverse; any case) is refused naming both kinds and the
// suffix to use, and an existing model of the other kind is never replaced,
// even when `replace` is set. Commit() refuses to put the other kind in place
// (a server that sent it, say).
//
// Stage() creates missing parents and a uniquely named directory beside the
// destination; Commit() moves an existing model aside, moves the new one into
// place and only then removes the old one, so a failure at any point leaves
// the old model or the new one, never neither. An uncommitted target removes
// its staging directory and the parents it created.
#ifndef COREMLZ_FORMAT_OUTPUT_TARGET_H_
#define COREMLZ_FORMAT_OUTPUT_TARGET_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace coremlz::format {

class OutputTarget {
 public:
  // `input` may be empty (no input to protect). Errors: INVALID_ARGUMENT for a
  // path that cannot be a model's (including ELOOP, ENAMETOOLONG, ENOTDIR),
  // ALREADY_EXISTS for something in the way, PERMISSION_DENIED for a parent
  // that cannot be written; each names the path.
  static absl::StatusOr<OutputTarget> Check(const std::string& destination, const std::string& input, bool replace);

  OutputTarget(OutputTarget&& other) noexcept;
  OutputTarget& operator=(OutputTarget&&) = delete;
  OutputTarget(const OutputTarget&) = delete;
  ~OutputTarget();

  // The destination, normalised.
  const std::string& path() const { return destination_; }

  // Returns a fresh empty directory beside the destination. A package is
  // assembled in it directly; a single-file model as a file inside it.
  absl::StatusOr<std::string> Stage();
  // Moves `produced` (the staging directory or a file directly inside it) to
  // the destination.
  absl::Status Commit(const std::string& produced);

 private:
  struct Identity {
    dev_t dev = 0;
    ino_t ino = 0;
    bool exists = false;
  };
  // What the model to write is; kUnknown without an input to tell.
  enum class Kind { kUnknown, kPackage, kFile };
  OutputTarget(std::string destination, bool replace, Identity existing, Kind kind)
      : destination_(std::move(destination)), replace_(replace), existing_(existing), kind_(kind) {}
  void Abandon();

  std::string destination_;
  bool replace_ = false;
  Identity existing_;  // what Check() found at the destination
  Kind kind_ = Kind::kUnknown;
  std::string staging_;
  std::vector<std::string> created_parents_;  // outermost first
  bool committed_ = false;
};

// Checks the path of a side file (the JSON report) before any work: not a
// directory, not the input or inside it, not the output or inside it.
absl::Status CheckSideFile(const std::string& path, const std::string& input, const std::string& output);

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_OUTPUT_TARGET_H_
