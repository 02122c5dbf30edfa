// Manifest.json of an .mlpackage: which files ("items") the package holds and
// which one is the root model specification.
#ifndef COREMLZ_FORMAT_MANIFEST_H_
#define COREMLZ_FORMAT_MANIFEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz::format {

struct ManifestItem {
  std::string identifier;  // UUID key in itemInfoEntries
  std::string author;
  std::string description;
  std::string name;
  std::string path;  // relative to the package's Data/ directory
};

struct Manifest {
  std::string file_format_version = "1.0.0";
  std::vector<ManifestItem> items;  // sorted by identifier
  std::string root_model_identifier;

  // Parses and validates: known version, every item path safe and relative,
  // unique identifiers, and a root identifier naming an item.
  static absl::StatusOr<Manifest> Parse(absl::string_view json, absl::string_view label);

  // JSON as Core ML tools write it: keys sorted, 4-space indent, final newline.
  std::string Serialize() const;

  const ManifestItem* FindItem(absl::string_view identifier) const;
  const ManifestItem* root_item() const { return FindItem(root_model_identifier); }

  // A manifest for a new package with the usual two items: the model
  // specification (root) and the weights directory. Identifiers are random
  // UUIDs unless `deterministic_seed` is non-empty (tests, reproducible output).
  static Manifest ForNewPackage(absl::string_view deterministic_seed = "");
};

// The directory inside a package that holds the items.
inline constexpr absl::string_view kPackageDataDir = "Data";
inline constexpr absl::string_view kManifestFileName = "Manifest.json";

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_MANIFEST_H_
