#include "format/manifest.h"

#include <algorithm>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coreml/manifest.pb.h"
#include "common/file_util.h"
#include "common/json_writer.h"
#include "common/sha256.h"
#include "google/protobuf/util/json_util.h"

namespace coremlz::format {
namespace {

std::string MakeUuid(std::mt19937_64& rng) {
  uint64_t hi = rng();
  uint64_t lo = rng();
  // RFC 4122 version 4, variant 1.
  hi = (hi & ~0xf000ull) | 0x4000ull;
  lo = (lo & ~(0xc000ull << 48)) | (0x8000ull << 48);
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff,
                         lo >> 48, lo & 0xffffffffffffull);
}

}  // namespace

absl::StatusOr<Manifest> Manifest::Parse(absl::string_view json, absl::string_view label) {
  ManifestJson proto;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // the original bytes are kept on output
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &proto, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": not a valid manifest: ", status.message().as_string()));
  }
  Manifest m;
  m.file_format_version = proto.fileformatversion();
  m.root_model_identifier = proto.rootmodelidentifier();
  if (m.file_format_version.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": missing fileFormatVersion"));
  }
  if (m.file_format_version.front() != '1') {
    return absl::InvalidArgumentError(absl::StrCat(label, ": unsupported fileFormatVersion \"",
                                                   m.file_format_version, "\""));
  }
  for (const auto& [id, item] : proto.iteminfoentries()) {
    absl::Status path_ok = ValidateRelativePath(item.path());
    if (!path_ok.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": item ", id, ": ", path_ok.message()));
    }
    m.items.push_back({id, item.author(), item.description(), item.name(), item.path()});
  }
  std::sort(m.items.begin(), m.items.end(),
            [](const ManifestItem& a, const ManifestItem& b) { return a.identifier < b.identifier; });
  if (m.root_model_identifier.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": missing rootModelIdentifier"));
  }
  if (m.root_item() == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": rootModelIdentifier \"",
                                                   m.root_model_identifier,
                                                   "\" names no entry of itemInfoEntries"));
  }
  return m;
}

std::string Manifest::Serialize() const {
  JsonWriter w(4);
  w.BeginObject();
  w.Key("fileFormatVersion").String(file_format_version);
  w.Key("itemInfoEntries").BeginObject();
  for (const ManifestItem& item : items) {
    w.Key(item.identifier).BeginObject();
    w.Key("author").String(item.author);
    w.Key("description").String(item.description);
    w.Key("name").String(item.name);
    w.Key("path").String(item.path);
    w.EndObject();
  }
  w.EndObject();
  w.Key("rootModelIdentifier").String(root_model_identifier);
  w.EndObject();
  return w.str() + "\n";
}

const ManifestItem* Manifest::FindItem(absl::string_view identifier) const {
  for (const ManifestItem& item : items) {
    if (item.identifier == identifier) return &item;
  }
  return nullptr;
}

Manifest Manifest::ForNewPackage(absl::string_view deterministic_seed) {
  std::mt19937_64 rng;
  if (deterministic_seed.empty()) {
    std::random_device rd;
    rng.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
  } else {
    rng.seed(std::stoull(Sha256Hex(deterministic_seed).substr(0, 16), nullptr, 16));
  }
  Manifest m;
  ManifestItem model{MakeUuid(rng), "com.apple.CoreML", "CoreML Model Specification",
                     "model.mlmodel", "com.apple.CoreML/model.mlmodel"};
  ManifestItem weights{MakeUuid(rng), "com.apple.CoreML", "CoreML Model Weights", "weights",
                       "com.apple.CoreML/weights"};
  m.root_model_identifier = model.identifier;
  m.items = {model, weights};
  std::sort(m.items.begin(), m.items.end(),
            [](const ManifestItem& a, const ManifestItem& b) { return a.identifier < b.identifier; });
  return m;
}

}  // namespace coremlz::format
