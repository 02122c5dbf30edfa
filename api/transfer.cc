#include "api/transfer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "format/package.h"

namespace coremlz::api {
namespace {

absl::StatusOr<v1::FileInfo> Describe(const std::string& root, const std::string& rel) {
  ASSIGN_OR_RETURN(FileHash hash, Sha256File(JoinPath(root, rel)));
  v1::FileInfo info;
  info.set_path(rel);
  info.set_size(hash.size);
  info.set_sha256(std::move(hash.sha256));
  return info;
}

// Upload order: the manifest, the model spec, weight files, anything else.
int Rank(const std::string& rel, const std::string& model_path) {
  if (rel == "Manifest.json") return 0;
  if (rel == model_path) return 1;
  if (absl::StrContains(rel, "/weights/")) return 2;
  return 3;
}

}  // namespace

absl::StatusOr<std::vector<v1::FileInfo>> DescribeModelFiles(const std::string& path, std::string* root,
                                                             uint64_t max_manifest_bytes) {
  std::vector<v1::FileInfo> out;
  if (IsDirectory(path)) {
    *root = path;
    ASSIGN_OR_RETURN(std::unique_ptr<format::MlPackage> pkg, format::MlPackage::Open(path, max_manifest_bytes));
    std::vector<std::string> files = pkg->files();
    const std::string model = pkg->layout().model_path;
    std::stable_sort(files.begin(), files.end(),
                     [&](const std::string& a, const std::string& b) { return Rank(a, model) < Rank(b, model); });
    for (const std::string& rel : files) {
      ASSIGN_OR_RETURN(v1::FileInfo info, Describe(path, rel));
      out.push_back(std::move(info));
    }
    return out;
  }
  if (!PathExists(path)) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  std::filesystem::path p(path);
  *root = p.parent_path().empty() ? "." : p.parent_path().string();
  std::string name = p.filename().string();
  if (!absl::EndsWith(absl::AsciiStrToLower(name), ".mlmodel")) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is neither an .mlpackage directory nor an .mlmodel file"));
  }
  ASSIGN_OR_RETURN(v1::FileInfo info, Describe(*root, name));
  out.push_back(std::move(info));
  return out;
}

absl::Status SendFiles(const std::string& root, const std::vector<v1::FileInfo>& files, uint32_t first_index,
                       const std::function<bool(v1::FileChunk&&)>& send, const std::function<void(uint64_t)>& on_progress,
                       uint64_t chunk_bytes) {
  uint64_t sent = 0;
  std::vector<char> buf(chunk_bytes);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string path = JoinPath(root, files[i].path());
    std::FILE* f = std::fopen(path.c_str(), "rbe");
    if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
    uint64_t offset = 0;
    absl::Status status;
    while (offset < files[i].size()) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk_bytes, files[i].size() - offset));
      const size_t n = std::fread(buf.data(), 1, want, f);
      if (n != want) {
        status = absl::DataLossError(absl::StrCat(path, " changed while being sent (shorter than its ", files[i].size(), " bytes)"));
        break;
      }
      v1::FileChunk chunk;
      chunk.set_file_index(first_index + static_cast<uint32_t>(i));
      chunk.set_offset(offset);
      chunk.set_data(buf.data(), n);
      if (!send(std::move(chunk))) {
        status = absl::CancelledError("the stream closed during the transfer");
        break;
      }
      offset += n;
      sent += n;
      if (on_progress) on_progress(sent);
    }
    std::fclose(f);
    RETURN_IF_ERROR(status);
  }
  return absl::OkStatus();
}

FileReceiver::~FileReceiver() {
  if (out_ != nullptr) std::fclose(out_);
}

absl::Status FileReceiver::Declare(const v1::FileInfo& file) {
  const std::string& path = file.path();
  if (absl::Status s = ValidateRelativePath(path); !s.ok()) return s;
  if (files_.size() >= limits_.max_files) {
    return absl::ResourceExhaustedError(absl::StrCat("more than the limit of ", limits_.max_files, " files"));
  }
  for (const v1::FileInfo& f : files_) {
    if (f.path() == path) return absl::InvalidArgumentError(absl::StrCat("file \"", path, "\" is listed twice"));
    if (absl::StartsWith(path, f.path() + "/") || absl::StartsWith(f.path(), path + "/")) {
      return absl::InvalidArgumentError(absl::StrCat("\"", path, "\" and \"", f.path(), "\" cannot both be files"));
    }
  }
  if (file.sha256().size() != 64 ||
      !std::all_of(file.sha256().begin(), file.sha256().end(), [](char c) { return absl::ascii_isxdigit(c) && !absl::ascii_isupper(c); })) {
    return absl::InvalidArgumentError(absl::StrCat("file \"", path, "\": sha256 must be 64 lowercase hex digits"));
  }
  // Checked from the header, before any byte: the manifest is read whole.
  if (path == "Manifest.json" && file.size() > limits_.max_manifest_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("Manifest.json is ", file.size(), " bytes, over the limit of ",
                                                     limits_.max_manifest_bytes, " bytes (--max-manifest-kb)"));
  }
  if (file.size() > limits_.max_total_bytes || declared_total_ + file.size() > limits_.max_total_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the upload exceeds the limit of ", limits_.max_total_bytes,
                                                     " bytes (file \"", path, "\" is ", file.size(), " bytes)"));
  }
  declared_total_ += file.size();
  files_.push_back(file);
  return absl::OkStatus();
}

absl::Status FileReceiver::DeclareAll(const google::protobuf::RepeatedPtrField<v1::FileInfo>& files) {
  if (files.empty()) return absl::InvalidArgumentError("the header lists no files");
  for (const v1::FileInfo& f : files) RETURN_IF_ERROR(Declare(f));
  return absl::OkStatus();
}

absl::Status FileReceiver::OpenCurrent() {
  const std::string path = JoinPath(dir_, files_[current_].path());
  RETURN_IF_ERROR(MakeDirectories(std::filesystem::path(path).parent_path().string()));
  out_ = std::fopen(path.c_str(), "wbe");
  if (out_ == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  hash_ = std::make_unique<Sha256>();
  current_bytes_ = 0;
  return absl::OkStatus();
}

absl::Status FileReceiver::CompleteCurrent() {
  const v1::FileInfo& f = files_[current_];
  if (out_ == nullptr) RETURN_IF_ERROR(OpenCurrent());  // empty file
  const bool write_failed = std::fclose(out_) != 0;
  out_ = nullptr;
  if (write_failed) return absl::InternalError(absl::StrCat("cannot write \"", f.path(), "\""));
  const std::string digest = hash_->HexDigest();
  hash_.reset();
  if (digest != f.sha256()) {
    return absl::DataLossError(absl::StrCat("file \"", f.path(), "\": SHA-256 ", digest, " does not match the declared ",
                                            f.sha256()));
  }
  ++current_;
  return absl::OkStatus();
}

absl::Status FileReceiver::Add(const v1::FileChunk& chunk) {
  const uint32_t index = chunk.file_index();
  if (index >= files_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("chunk for file index ", index, " but only ", files_.size(),
                                                   " files were declared"));
  }
  // Earlier files that are already complete (by size) finish here, so that
  // empty files need no chunk of their own.
  while (current_ < index && files_[current_].size() == 0) RETURN_IF_ERROR(CompleteCurrent());
  if (index != current_) {
    if (index < current_) {
      return absl::InvalidArgumentError(absl::StrCat("chunk for file \"", files_[index].path(), "\", which is already complete"));
    }
    return absl::InvalidArgumentError(absl::StrCat("chunk for file \"", files_[index].path(), "\" before file \"",
                                                   files_[current_].path(), "\" is complete (", current_bytes_, " of ",
                                                   files_[current_].size(), " bytes)"));
  }
  const v1::FileInfo& f = files_[index];
  if (chunk.data().empty()) return absl::InvalidArgumentError(absl::StrCat("empty chunk for file \"", f.path(), "\""));
  if (chunk.data().size() > limits_.max_chunk_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("chunk of ", chunk.data().size(), " bytes exceeds the ",
                                                   limits_.max_chunk_bytes, "-byte chunk limit"));
  }
  if (chunk.offset() != current_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("file \"", f.path(), "\": chunk at offset ", chunk.offset(),
                                                   " but ", current_bytes_, " bytes were received (chunks must be in order)"));
  }
  if (chunk.data().size() > f.size() - current_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("file \"", f.path(), "\": data past its declared size of ", f.size(), " bytes"));
  }
  if (out_ == nullptr) RETURN_IF_ERROR(OpenCurrent());
  if (std::fwrite(chunk.data().data(), 1, chunk.data().size(), out_) != chunk.data().size()) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot store \"", f.path(), "\": ", std::strerror(errno)));
  }
  // Flushed, so that a job reading the upload as it arrives sees it.
  if (std::fflush(out_) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot store \"", f.path(), "\": ", std::strerror(errno)));
  }
  hash_->Update(chunk.data());
  current_bytes_ += chunk.data().size();
  received_total_ += chunk.data().size();
  if (current_bytes_ == f.size()) {
    RETURN_IF_ERROR(CompleteCurrent());
    current_bytes_ = 0;
  }
  return absl::OkStatus();
}

absl::Status FileReceiver::Finish() {
  // Trailing empty files.
  while (current_ < files_.size() && files_[current_].size() == 0) RETURN_IF_ERROR(CompleteCurrent());
  if (current_ < files_.size()) {
    return absl::DataLossError(absl::StrCat("the stream ended with file \"", files_[current_].path(), "\" at ",
                                            current_bytes_, " of ", files_[current_].size(), " bytes"));
  }
  return absl::OkStatus();
}

bool FileReceiver::IsComplete(const std::string& path) const {
  for (size_t i = 0; i < current_ && i < files_.size(); ++i) {
    if (files_[i].path() == path) return true;
  }
  return false;
}

absl::StatusOr<uint64_t> FileReceiver::DeclaredSize(const std::string& path) const {
  for (const v1::FileInfo& f : files_) {
    if (f.path() == path) return f.size();
  }
  return absl::NotFoundError(absl::StrCat("\"", path, "\" is not part of the upload"));
}

absl::StatusOr<std::string> FileReceiver::ModelPath() const {
  std::vector<std::string> specs;
  for (const v1::FileInfo& f : files_) {
    if (f.path() == "Manifest.json") return dir_;
    if (absl::EndsWith(absl::AsciiStrToLower(f.path()), ".mlmodel") && f.path().find('/') == std::string::npos) specs.push_back(f.path());
  }
  if (specs.size() == 1 && files_.size() == 1) return JoinPath(dir_, specs[0]);
  return absl::InvalidArgumentError(
      "the upload is neither an .mlpackage (no Manifest.json) nor a single .mlmodel file");
}

}  // namespace coremlz::api
