#include "engine/inventory.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "compress/metrics.h"
#include "engine/decompress.h"
#include "format/mil_program.h"
#include "format/model_type.h"
#include "format/neural_network_weights.h"
#include "format/package.h"

namespace coremlz::engine {
namespace spec = CoreML::Specification;

namespace {

std::string DescribeFeature(const spec::FeatureType& t) {
  switch (t.Type_case()) {
    case spec::FeatureType::kMultiArrayType: {
      const auto& a = t.multiarraytype();
      std::string dt = a.datatype() == spec::ArrayFeatureType::FLOAT16   ? "fp16"
                       : a.datatype() == spec::ArrayFeatureType::FLOAT32 ? "fp32"
                       : a.datatype() == spec::ArrayFeatureType::DOUBLE  ? "fp64"
                       : a.datatype() == spec::ArrayFeatureType::INT32   ? "int32"
                       : a.datatype() == spec::ArrayFeatureType::INT8    ? "int8"
                                                                          : "?";
      return absl::StrCat(dt, "[", absl::StrJoin(a.shape(), ", "), "]");
    }
    case spec::FeatureType::kImageType: {
      const auto& im = t.imagetype();
      const char* cs = im.colorspace() == spec::ImageFeatureType::RGB       ? "RGB"
                       : im.colorspace() == spec::ImageFeatureType::BGR     ? "BGR"
                       : im.colorspace() == spec::ImageFeatureType::GRAYSCALE ? "grayscale"
                                                                             : "grayscale fp16";
      return absl::StrCat("image ", im.width(), "x", im.height(), " ", cs);
    }
    case spec::FeatureType::kInt64Type: return "int64";
    case spec::FeatureType::kDoubleType: return "double";
    case spec::FeatureType::kStringType: return "string";
    case spec::FeatureType::kDictionaryType: return "dictionary";
    case spec::FeatureType::kSequenceType: return "sequence";
    case spec::FeatureType::kStateType: return "state";
    default: return "?";
  }
}

void Describe(const spec::Model& model, Inventory* inv) {
  for (const auto& f : model.description().input()) inv->inputs.push_back({f.name(), DescribeFeature(f.type())});
  for (const auto& f : model.description().output()) inv->outputs.push_back({f.name(), DescribeFeature(f.type())});
}

void Stats(const std::vector<float>& values, InventoryEntry* e) {
  e->has_statistics = true;
  e->sparsity = compress::Sparsity(values);
  e->distinct_values = compress::DistinctCount(values);
}

// The layers' weights of a NeuralNetwork spec (bare or the root of a package).
absl::Status InspectNeuralNetwork(spec::Model* model, const InspectOptions& options, Inventory* inv);

absl::Status InspectPackage(const std::string& path, const InspectOptions& options, Inventory* inv) {
  ASSIGN_OR_RETURN(std::unique_ptr<format::MlPackage> pkg, format::MlPackage::Open(path, options.max_manifest_bytes));
  const spec::Model& model = pkg->model();
  inv->spec_version = model.specificationversion();
  Describe(model, inv);
  for (const std::string& f : pkg->files()) {
    ASSIGN_OR_RETURN(uint64_t size, FileSize(pkg->PathOf(f)));
    inv->model_bytes += size;
  }
  // A NeuralNetwork wrapped in a package (as Xcode does) is listed exactly
  // as the same spec in a bare .mlmodel.
  if (format::HasNeuralNetwork(model)) return InspectNeuralNetwork(pkg->mutable_model(), options, inv);
  if (!model.has_mlprogram()) {
    return absl::InvalidArgumentError(absl::StrCat(pkg->PathOf(pkg->layout().model_path), ": the package's model is a ",
                                                   format::ModelTypeName(model),
                                                   ", neither an ML Program nor a NeuralNetwork (nothing to inspect)"));
  }
  inv->kind = "mlprogram";
  auto main = model.mlprogram().functions().find("main");
  if (main != model.mlprogram().functions().end()) inv->opset = main->second.opset();
  format::MlPackage* p = pkg.get();
  ASSIGN_OR_RETURN(std::vector<format::ProgramWeight> weights,
                   format::ListProgramWeights(model.mlprogram(), [p](const format::BlobRef& ref) -> absl::StatusOr<format::BlobMetadata> {
                     ASSIGN_OR_RETURN(const format::BlobStorageReader* file, p->WeightFile(ref.file_name));
                     return file->Metadata(ref.offset);
                   }));
  // Statistics of decompressed weights, computed as each constexpr op is
  // evaluated and kept as two numbers, never as the dense tensor; ops that
  // repeat another (the same blob read through many ops) share one entry.
  struct DenseStats {
    bool intermediate = false;
    InventoryEntry stats;
  };
  std::map<std::string, DenseStats> dense_stats;  // "function/output" -> stats
  std::map<std::string, InventoryEntry> by_key;   // op key -> stats
  PackageValueReader reader(p);
  if (options.statistics) {
    RETURN_IF_ERROR(ForEachDecompressed(model.mlprogram(), &reader, [&](const DecompressedOutput& out) -> absl::Status {
      if (options.control != nullptr && options.control->Cancelled()) return absl::CancelledError("inspection cancelled");
      DenseStats& d = dense_stats[out.function + "/" + out.name];
      d.intermediate = out.intermediate;
      if (out.intermediate) return absl::OkStatus();
      auto cached = by_key.find(out.key);
      if (cached != by_key.end()) {
        d.stats = cached->second;
        return absl::OkStatus();
      }
      if (out.dense == nullptr) return absl::OkStatus();  // its first was an intermediate: no statistics
      ASSIGN_OR_RETURN(std::vector<float> values, format::ToFloats(format::View(*out.dense)));
      Stats(values, &d.stats);
      by_key[out.key] = d.stats;
      return absl::OkStatus();
    }));
  }
  // Blob-backed consts read by many const ops: each blob's values once.
  std::map<std::pair<std::string, uint64_t>, InventoryEntry> blob_stats;
  // The functions of a multifunction package share one weight file: a weight
  // whose op reads exactly the blobs another function's op of the same type
  // and name reads is one weight, listed (and counted) once with both
  // functions.
  std::map<std::string, size_t> shared_entry;  // storage identity -> index in inv->weights
  auto storage_identity = [](const format::ProgramWeight& w) -> std::string {
    std::string key = absl::StrCat(w.op_type, "|", w.name);
    for (const format::HeldTensor& t : w.tensors) {
      if (!t.in_blob) return "";  // immediate values have no identity to share
      absl::StrAppend(&key, "|", t.input, "@", t.blob.file_name, ":", t.blob.offset);
    }
    return w.tensors.empty() ? "" : key;
  };
  engine::Progress progress;
  progress.weights_total = static_cast<int>(weights.size());
  for (const format::ProgramWeight& w : weights) {
    if (options.control != nullptr) {
      if (options.control->Cancelled()) return absl::CancelledError("inspection cancelled");
      progress.current = w.name;
      options.control->OnProgress(progress);
      ++progress.weights_done;
    }
    const uint64_t count = format::ElementCount(w.shape).value_or(0);
    if (count < options.min_elements) continue;
    const std::string identity = storage_identity(w);
    if (!identity.empty()) {
      auto seen = shared_entry.find(identity);
      if (seen != shared_entry.end()) {
        InventoryEntry& first = inv->weights[seen->second];
        absl::StrAppend(&first.function, ",", w.function);
        for (const std::string& c : w.consumers) {
          if (std::find(first.consumers.begin(), first.consumers.end(), c) == first.consumers.end()) first.consumers.push_back(c);
        }
        continue;
      }
      shared_entry[identity] = inv->weights.size();
    }
    InventoryEntry e;
    e.name = w.name;
    e.function = w.function;
    e.op_type = w.op_type;
    e.consumers = w.consumers;
    e.shape = w.shape;
    e.dtype = std::string(format::ElementTypeName(w.type));
    std::vector<std::string> parts;
    for (const format::HeldTensor& t : w.tensors) {
      parts.push_back(w.op_type == "const" ? std::string(format::ElementTypeName(t.type))
                                           : absl::StrCat(t.input, ":", format::ElementTypeName(t.type)));
    }
    e.storage = absl::StrJoin(parts, " ");
    e.bytes = w.stored_bytes;
    if (options.statistics && format::IsFloat(w.type)) {
      if (w.op_type == "const") {
        const format::HeldTensor& t = w.tensors[0];
        if (t.in_blob) {
          auto key = std::make_pair(t.blob.file_name, t.blob.offset);
          auto cached = blob_stats.find(key);
          if (cached == blob_stats.end()) {
            ASSIGN_OR_RETURN(const format::BlobStorageReader* file, p->WeightFile(t.blob.file_name));
            ASSIGN_OR_RETURN(format::BlobMetadata meta, file->Metadata(t.blob.offset));
            ASSIGN_OR_RETURN(std::vector<float> values, format::ToFloats({meta.type, w.shape, file->Data(meta)}));
            InventoryEntry s;
            if (!values.empty()) Stats(values, &s);
            cached = blob_stats.emplace(key, s).first;
          }
          e.has_statistics = cached->second.has_statistics;
          e.sparsity = cached->second.sparsity;
          e.distinct_values = cached->second.distinct_values;
        }
      } else if (auto it = dense_stats.find(w.function + "/" + w.name); it != dense_stats.end() && !it->second.intermediate) {
        e.has_statistics = it->second.stats.has_statistics;
        e.sparsity = it->second.stats.sparsity;
        e.distinct_values = it->second.stats.distinct_values;
      }
    }
    inv->weights.push_back(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status InspectSpecFile(const std::string& path, const InspectOptions& options, Inventory* inv) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, uint64_t{2} << 30));
  inv->model_bytes = bytes.size();
  ASSIGN_OR_RETURN(spec::Model model, format::ParseModelSpec(bytes, path));
  inv->spec_version = model.specificationversion();
  Describe(model, inv);
  if (model.has_mlprogram()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": an ML Program's weights live in its .mlpackage; inspect the package"));
  }
  if (!format::HasNeuralNetwork(model)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the model is a ", format::ModelTypeName(model),
                                                   ", neither a NeuralNetwork nor an ML Program (nothing to inspect)"));
  }
  return InspectNeuralNetwork(&model, options, inv);
}

absl::Status InspectNeuralNetwork(spec::Model* model, const InspectOptions& options, Inventory* inv) {
  inv->kind = "neuralnetwork";
  ASSIGN_OR_RETURN(std::vector<format::NeuralNetworkWeight> weights, format::ListNeuralNetworkWeights(model));
  engine::Progress progress;
  progress.weights_total = static_cast<int>(weights.size());
  for (const format::NeuralNetworkWeight& w : weights) {
    if (options.control != nullptr) {
      if (options.control->Cancelled()) return absl::CancelledError("inspection cancelled");
      progress.current = absl::StrCat(w.layer, ".", w.field);
      options.control->OnProgress(progress);
      ++progress.weights_done;
    }
    if (w.element_count < options.min_elements) continue;
    InventoryEntry e;
    e.name = absl::StrCat(w.layer, ".", w.field);
    e.op_type = w.layer_type;
    e.consumers = {absl::StrCat(w.layer_type, ".", w.field)};
    e.shape = w.shape;
    e.dtype = "fp32";
    e.storage = w.storage == format::WeightStorage::kLinearQuantized || w.storage == format::WeightStorage::kLookupTable
                    ? absl::StrCat(format::WeightStorageName(w.storage), " ", w.bits, "-bit")
                    : std::string(format::WeightStorageName(w.storage));
    e.bytes = w.stored_bytes;
    if (options.statistics) {
      auto values = format::DecodeWeightParams(w);
      if (values.ok()) Stats(*values, &e);
    }
    inv->weights.push_back(std::move(e));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Inventory> InspectModel(const std::string& path, const InspectOptions& options) {
  Inventory inv;
  inv.path = path;
  if (IsDirectory(path)) {
    RETURN_IF_ERROR(InspectPackage(path, options, &inv));
  } else {
    RETURN_IF_ERROR(InspectSpecFile(path, options, &inv));
  }
  for (const InventoryEntry& e : inv.weights) inv.weight_bytes += e.bytes;
  for (InventoryEntry& e : inv.weights) e.share = inv.weight_bytes ? static_cast<double>(e.bytes) / inv.weight_bytes : 0;
  return inv;
}

}  // namespace coremlz::engine
