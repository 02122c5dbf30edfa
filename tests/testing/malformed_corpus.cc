#include "tests/testing/malformed_corpus.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "coreml/model.pb.h"
#include "format/blob_storage.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "yaml-cpp/yaml.h"

namespace coremlz::testing {
namespace {

namespace fs = std::filesystem;
using Files = std::map<std::string, std::string>;  // relative path -> bytes
using Mil = CoreML::Specification::MILSpec::Operation;

constexpr uint64_t kChunkBytes = 64 << 10;
constexpr char kDefaultConfig[] = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n";

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError(what); }

absl::StatusOr<Files> ReadBase(const std::string& path) {
  Files files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
      if (!e.is_regular_file()) continue;
      ASSIGN_OR_RETURN(files[fs::relative(e.path(), path).string()], ReadFile(e.path().string()));
    }
  } else {
    ASSIGN_OR_RETURN(files[fs::path(path).filename().string()], ReadFile(path));
  }
  if (ec || files.empty()) return Bad("cannot read base model " + path);
  return files;
}

// Manifest.json, the model spec, weight files, the rest: the order clients use.
std::vector<std::string> UploadOrder(const Files& files) {
  auto rank = [](const std::string& p) {
    if (p == "Manifest.json") return 0;
    if (absl::EndsWith(p, ".mlmodel")) return 1;
    if (absl::StrContains(p, "weights/")) return 2;
    return 3;
  };
  std::vector<std::string> order;
  for (const auto& [p, _] : files) order.push_back(p);
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return order;
}

// A truthful upload of `files`: sizes and digests match the bytes sent.
std::vector<v1::CompressRequest> Upload(const Files& files, const std::string& config) {
  std::vector<v1::CompressRequest> out(1);
  v1::CompressHeader* header = out[0].mutable_header();
  header->set_config_yaml(config);
  const std::vector<std::string> order = UploadOrder(files);
  for (uint32_t i = 0; i < order.size(); ++i) {
    const std::string& data = files.at(order[i]);
    v1::FileInfo* f = header->add_files();
    f->set_path(order[i]);
    f->set_size(data.size());
    f->set_sha256(Sha256Hex(data));
    for (uint64_t pos = 0; pos < data.size(); pos += kChunkBytes) {
      v1::CompressRequest r;
      r.mutable_chunk()->set_file_index(i);
      r.mutable_chunk()->set_offset(pos);
      r.mutable_chunk()->set_data(data.substr(pos, kChunkBytes));
      out.push_back(std::move(r));
    }
  }
  return out;
}

absl::StatusOr<std::string*> FileOf(Files* files, const YAML::Node& params) {
  if (!params["file"]) return Bad("mutation needs \"file\"");
  const std::string name = params["file"].as<std::string>();
  auto it = files->find(name);
  if (it == files->end()) return Bad("base model has no file " + name);
  return &it->second;
}

std::string SpecPath(const Files& files) {
  for (const auto& [p, _] : files) {
    if (absl::EndsWith(p, ".mlmodel")) return p;
  }
  return "";
}

// Offsets where a weight file's structure changes: inside and at the end of
// the file header, of each metadata record and of each blob's data.
absl::StatusOr<std::vector<uint64_t>> BlobBoundaries(const std::string& file) {
  ASSIGN_OR_RETURN(auto reader, format::BlobStorageReader::Open(file, "weight.bin"));
  ASSIGN_OR_RETURN(auto blobs, reader.ListBlobs());
  std::vector<uint64_t> at = {format::kBlobHeaderSize / 2, format::kBlobHeaderSize};
  for (const auto& m : blobs) {
    at.push_back(m.offset + format::kBlobMetadataSize / 2);
    at.push_back(m.offset + format::kBlobMetadataSize);
    at.push_back(m.data_offset + m.size_in_bytes / 2);
    at.push_back(m.data_offset + m.size_in_bytes);
  }
  std::vector<uint64_t> inside;
  for (uint64_t a : at) {
    if (a > 0 && a < file.size()) inside.push_back(a);
  }
  std::sort(inside.begin(), inside.end());
  inside.erase(std::unique(inside.begin(), inside.end()), inside.end());
  return inside;
}

// The end and the middle of every top-level field of a serialized message:
// a cut at an end leaves a shorter valid message, a cut in the middle an
// unparseable one.
absl::StatusOr<std::vector<uint64_t>> ProtobufBoundaries(const std::string& bytes) {
  namespace io = google::protobuf::io;
  using google::protobuf::internal::WireFormatLite;
  io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  std::vector<uint64_t> at;
  while (true) {
    const uint64_t start = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    if (!WireFormatLite::SkipField(&in, tag)) return Bad("base spec does not parse");
    const uint64_t end = in.CurrentPosition();
    at.push_back(start + (end - start) / 2);
    at.push_back(end);
  }
  std::vector<uint64_t> inside;
  for (uint64_t a : at) {
    if (a > 0 && a < bytes.size()) inside.push_back(a);
  }
  return inside;
}

// The `const` op producing `name` in any function of the program.
Mil* FindConst(CoreML::Specification::Model* model, const std::string& name) {
  for (auto& [_, fn] : *model->mutable_mlprogram()->mutable_functions()) {
    for (auto& [_, block] : *fn.mutable_block_specializations()) {
      for (auto& op : *block.mutable_operations()) {
        if (op.type() == "const" && op.outputs_size() == 1 && op.outputs(0).name() == name) return &op;
      }
    }
  }
  return nullptr;
}

using Variants = std::vector<std::pair<std::string, Files>>;

absl::StatusOr<Variants> Truncate(const Files& base, const YAML::Node& p) {
  Files files = base;
  ASSIGN_OR_RETURN(std::string* file, FileOf(&files, p));
  const std::string original = *file;
  std::vector<uint64_t> cuts;
  const YAML::Node& at = p["at"];
  if (at.IsScalar() && at.as<std::string>() == "blob_boundaries") {
    ASSIGN_OR_RETURN(cuts, BlobBoundaries(original));
  } else if (at.IsScalar() && at.as<std::string>() == "protobuf_fields") {
    ASSIGN_OR_RETURN(cuts, ProtobufBoundaries(original));
  } else if (at.IsSequence()) {
    for (const auto& n : at) {
      const int64_t v = n.as<int64_t>();
      cuts.push_back(v < 0 ? original.size() + v : v);
    }
  } else {
    return Bad("truncate.at: blob_boundaries, protobuf_fields or a list of offsets");
  }
  Variants out;
  for (uint64_t cut : cuts) {
    if (cut >= original.size()) return Bad(absl::StrCat("truncate at ", cut, " is not inside the file"));
    *file = original.substr(0, cut);
    out.emplace_back(absl::StrCat(p["file"].as<std::string>(), ":", cut), files);
  }
  return out;
}

// Bit flips in weight.bin's header and first records. Fields are named
// header.count, header.version, blobN.sentinel, blobN.dtype, blobN.size,
// blobN.data_offset; `byte` picks the byte of the little-endian field
// (default: the most significant), `mask` the bits.
absl::StatusOr<Variants> Flip(const Files& base, const YAML::Node& p) {
  Files files = base;
  ASSIGN_OR_RETURN(std::string* file, FileOf(&files, p));
  const std::string original = *file;
  ASSIGN_OR_RETURN(auto reader, format::BlobStorageReader::Open(original, "weight.bin"));
  ASSIGN_OR_RETURN(auto blobs, reader.ListBlobs());
  const uint8_t mask = p["mask"] ? p["mask"].as<unsigned>() : 0x80;
  Variants out;
  for (const auto& f : p["fields"]) {
    const std::string field = f.as<std::string>();
    uint64_t offset = 0;
    int width = 4;
    if (field == "header.count") {
      offset = 0;
    } else if (field == "header.version") {
      offset = 4;
    } else if (absl::StartsWith(field, "blob")) {
      const size_t dot = field.find('.');
      const size_t index = std::stoul(field.substr(4, dot - 4));
      if (index >= blobs.size()) return Bad("no " + field.substr(0, dot));
      const std::string part = field.substr(dot + 1);
      const uint64_t record = blobs[index].offset;
      if (part == "sentinel") offset = record;
      else if (part == "dtype") offset = record + 4;
      else if (part == "size") { offset = record + 8; width = 8; }
      else if (part == "data_offset") { offset = record + 16; width = 8; }
      else return Bad("unknown field " + field);
    } else {
      return Bad("unknown field " + field);
    }
    const int byte = p["byte"] ? p["byte"].as<int>() : width - 1;
    *file = original;
    (*file)[offset + byte] = static_cast<char>((*file)[offset + byte] ^ mask);
    out.emplace_back(absl::StrCat(field, "^", static_cast<int>(mask), "@", byte), files);
  }
  return out;
}

// Points blob `blob`'s data_offset into blob `into`'s data.
absl::StatusOr<Variants> OverlapBlobs(const Files& base, const YAML::Node& p) {
  Files files = base;
  ASSIGN_OR_RETURN(std::string* file, FileOf(&files, p));
  ASSIGN_OR_RETURN(auto reader, format::BlobStorageReader::Open(*file, "weight.bin"));
  ASSIGN_OR_RETURN(auto blobs, reader.ListBlobs());
  const size_t victim = p["blob"].as<size_t>();
  const size_t into = p["into"].as<size_t>();
  if (victim >= blobs.size() || into >= blobs.size()) return Bad("overlap_blobs: no such blob");
  Variants out;
  // The whole other blob, and a range straddling its end.
  for (uint64_t shift : {uint64_t{0}, blobs[into].size_in_bytes / 2}) {
    const uint64_t target = blobs[into].data_offset + shift;
    std::string bytes = *file;
    std::memcpy(&bytes[blobs[victim].offset + 16], &target, 8);  // little-endian hosts only, as are our tests
    Files variant = base;
    variant[p["file"].as<std::string>()] = bytes;
    out.emplace_back(absl::StrCat("blob", victim, "->", target), std::move(variant));
  }
  return out;
}

// Edits of one const in the ML Program: a declared shape, dtype or blob offset.
absl::StatusOr<Variants> SpecConst(const Files& base, const YAML::Node& p) {
  const std::string spec_path = SpecPath(base);
  CoreML::Specification::Model model;
  if (!model.ParseFromString(base.at(spec_path))) return Bad("base spec does not parse");
  const std::string name = p["const"].as<std::string>();
  if (FindConst(&model, name) == nullptr) return Bad("no const " + name);
  Variants out;
  auto emit = [&](const std::string& label, const std::function<void(Mil*)>& edit) {
    CoreML::Specification::Model copy = model;
    Mil* op = FindConst(&copy, name);
    edit(op);
    Files files = base;
    files[spec_path] = copy.SerializeAsString();
    out.emplace_back(absl::StrCat(name, ":", label), std::move(files));
  };
  for (const auto& shape : p["shapes"]) {
    std::vector<uint64_t> dims;
    for (const auto& d : shape) dims.push_back(d.as<uint64_t>());
    auto set = [&](CoreML::Specification::MILSpec::TensorType* t) {
      t->clear_dimensions();
      t->set_rank(static_cast<int64_t>(dims.size()));
      for (uint64_t d : dims) t->add_dimensions()->mutable_constant()->set_size(d);
    };
    emit(absl::StrCat("shape", dims.size(), "d_", dims.empty() ? 0 : dims[0]), [&](Mil* op) {
      set(op->mutable_outputs(0)->mutable_type()->mutable_tensortype());
      set((*op->mutable_attributes())["val"].mutable_type()->mutable_tensortype());
    });
  }
  for (const auto& d : p["dtypes"]) {
    const int dtype = d.as<int>();
    emit(absl::StrCat("dtype", dtype), [&](Mil* op) {
      const auto t = static_cast<CoreML::Specification::MILSpec::DataType>(dtype);
      op->mutable_outputs(0)->mutable_type()->mutable_tensortype()->set_datatype(t);
      (*op->mutable_attributes())["val"].mutable_type()->mutable_tensortype()->set_datatype(t);
    });
  }
  for (const auto& o : p["blob_offsets"]) {
    const uint64_t offset = o.as<uint64_t>();
    emit(absl::StrCat("offset", offset), [&](Mil* op) {
      (*op->mutable_attributes())["val"].mutable_blobfilevalue()->set_offset(offset);
    });
  }
  for (const auto& f : p["blob_files"]) {
    const std::string file = f.as<std::string>();
    emit("file:" + file, [&](Mil* op) { (*op->mutable_attributes())["val"].mutable_blobfilevalue()->set_filename(file); });
  }
  return out;
}

// Damaged NeuralNetwork weights in the first convolution layer.
absl::StatusOr<Variants> NnConvWeights(const Files& base, const YAML::Node& p) {
  const std::string spec_path = SpecPath(base);
  CoreML::Specification::Model model;
  if (!model.ParseFromString(base.at(spec_path))) return Bad("base spec does not parse");
  Variants out;
  for (const auto& k : p) {
    const std::string kind = k.as<std::string>();
    CoreML::Specification::Model copy = model;
    CoreML::Specification::WeightParams* w = nullptr;
    for (auto& layer : *copy.mutable_neuralnetwork()->mutable_layers()) {
      if (layer.has_convolution()) {
        w = layer.mutable_convolution()->mutable_weights();
        break;
      }
    }
    if (w == nullptr) return Bad("base model has no convolution layer");
    if (kind == "half_the_values") {
      w->mutable_floatvalue()->Truncate(w->floatvalue_size() / 2);
    } else if (kind == "odd_fp16_bytes") {
      w->clear_floatvalue();
      w->set_float16value(std::string(7, '\x3c'));
    } else if (kind == "fp32_and_fp16") {
      w->set_float16value(std::string(w->floatvalue_size() * 2, '\0'));
    } else if (kind == "no_values") {
      w->clear_floatvalue();
    } else {
      return Bad("nn_conv_weights: unknown damage " + kind);
    }
    Files files = base;
    files[spec_path] = copy.SerializeAsString();
    out.emplace_back(kind, std::move(files));
  }
  return out;
}

absl::StatusOr<Variants> ReplaceText(const Files& base, const YAML::Node& p) {
  Variants out;
  const std::string from = p["from"].as<std::string>();
  for (const auto& t : p["to"]) {
    Files files = base;
    ASSIGN_OR_RETURN(std::string* file, FileOf(&files, p));
    if (!absl::StrContains(*file, from)) return Bad("replace_text: \"" + from + "\" not found");
    *file = absl::StrReplaceAll(*file, {{from, t.as<std::string>()}});
    out.emplace_back(t.as<std::string>(), std::move(files));
  }
  return out;
}

absl::StatusOr<Variants> Empty(const Files& base, const YAML::Node& p) {
  Variants out;
  for (const auto& f : p) {
    Files files = base;
    auto it = files.find(f.as<std::string>());
    if (it == files.end()) return Bad("base model has no file " + f.as<std::string>());
    it->second.clear();
    out.emplace_back(it->first, std::move(files));
  }
  return out;
}

// Damage to the request stream itself rather than to the files.
absl::StatusOr<std::vector<MalformedVariant>> StreamDamage(const Files& base, const std::string& config,
                                                           const YAML::Node& p) {
  const std::vector<v1::CompressRequest> good = Upload(base, config);
  std::vector<MalformedVariant> out;
  for (const auto& k : p) {
    const std::string kind = k.as<std::string>();
    if (kind == "duplicate_file_name") {
      // The same path twice, once with a different size and digest.
      auto r = good;
      v1::FileInfo copy = r[0].header().files(r[0].header().files_size() - 1);
      copy.set_size(copy.size() + 1);
      *r[0].mutable_header()->add_files() = copy;
      out.push_back({kind, std::move(r)});
    } else if (kind == "chunks_out_of_order") {
      // The second chunk of the largest file before its first.
      auto r = good;
      size_t first = 0;
      for (size_t i = 1; i + 1 < r.size(); ++i) {
        if (r[i].chunk().file_index() == r[i + 1].chunk().file_index()) {
          first = i;
          break;
        }
      }
      if (first == 0) return Bad("no file spans two chunks");
      std::swap(r[first], r[first + 1]);
      out.push_back({kind, std::move(r)});
    } else if (kind == "files_out_of_order") {
      auto r = good;
      const uint32_t last = r.back().chunk().file_index();
      auto it = std::find_if(r.begin() + 1, r.end(), [&](const auto& m) { return m.chunk().file_index() == last; });
      std::rotate(r.begin() + 1, it, r.end());
      out.push_back({kind, std::move(r)});
    } else if (kind == "chunk_past_declared_size") {
      auto r = good;
      r.back().mutable_chunk()->mutable_data()->append("x");
      out.push_back({kind, std::move(r)});
    } else if (kind == "ends_at_every_message") {
      for (size_t n = 1; n < good.size(); ++n) {
        out.push_back({absl::StrCat("after_message_", n), std::vector<v1::CompressRequest>(good.begin(), good.begin() + n)});
      }
    } else {
      return Bad("stream: unknown damage " + kind);
    }
  }
  return out;
}

absl::StatusOr<grpc::StatusCode> ParseCode(const std::string& s) {
  static const std::map<std::string, grpc::StatusCode> codes = {
      {"INVALID_ARGUMENT", grpc::StatusCode::INVALID_ARGUMENT}, {"DATA_LOSS", grpc::StatusCode::DATA_LOSS},
      {"FAILED_PRECONDITION", grpc::StatusCode::FAILED_PRECONDITION}, {"OUT_OF_RANGE", grpc::StatusCode::OUT_OF_RANGE},
      {"RESOURCE_EXHAUSTED", grpc::StatusCode::RESOURCE_EXHAUSTED}, {"UNIMPLEMENTED", grpc::StatusCode::UNIMPLEMENTED},
      {"OK", grpc::StatusCode::OK}};
  auto it = codes.find(s);
  if (it == codes.end()) return Bad("unknown status code " + s);
  return it->second;
}

absl::StatusOr<MalformedCase> Load(const std::string& path, const std::string& shared_dir) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  const YAML::Node doc = YAML::Load(text);
  MalformedCase c;
  c.name = fs::path(path).stem().string();
  c.description = doc["description"].as<std::string>();
  ASSIGN_OR_RETURN(c.code, ParseCode(doc["expect"]["code"].as<std::string>()));
  if (doc["expect"]["message"]) c.message = doc["expect"]["message"].as<std::string>();
  const std::string config = doc["config"] ? doc["config"].as<std::string>() : kDefaultConfig;
  ASSIGN_OR_RETURN(Files base, ReadBase(JoinPath(shared_dir, doc["base"].as<std::string>())));
  const YAML::Node mutation = doc["mutation"];
  if (!mutation.IsMap() || mutation.size() != 1) return Bad(path + ": \"mutation\" must have exactly one kind");
  const std::string kind = mutation.begin()->first.as<std::string>();
  // A copy: the iterator yields a temporary, so a reference would dangle.
  const YAML::Node params = mutation.begin()->second;
  if (kind == "stream") {
    ASSIGN_OR_RETURN(auto variants, StreamDamage(base, config, params));
    for (auto& v : variants) c.variants.push_back({c.name + "@" + v.name, std::move(v.requests)});
    return c;
  }
  static const std::map<std::string, std::function<absl::StatusOr<Variants>(const Files&, const YAML::Node&)>> kinds = {
      {"truncate", Truncate},         {"flip", Flip},           {"overlap_blobs", OverlapBlobs},
      {"spec_const", SpecConst},      {"nn_conv_weights", NnConvWeights}, {"replace_text", ReplaceText},
      {"empty", Empty}};
  auto it = kinds.find(kind);
  if (it == kinds.end()) return Bad(path + ": unknown mutation " + kind);
  ASSIGN_OR_RETURN(Variants variants, it->second(base, params));
  for (auto& [where, files] : variants) c.variants.push_back({c.name + "@" + where, Upload(files, config)});
  if (c.variants.empty()) return Bad(path + ": no variants");
  return c;
}

}  // namespace

std::vector<std::string> ListMalformedCases(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".case") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<MalformedCase> LoadMalformedCase(const std::string& path, const std::string& shared_dir) {
  try {
    return Load(path, shared_dir);
  } catch (const YAML::Exception& e) {
    return Bad(path + ": " + e.what());
  }
}

}  // namespace coremlz::testing
