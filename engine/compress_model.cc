#include "engine/compress_model.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "engine/neural_network_compressor.h"
#include "format/blob_stream_reader.h"
#include "format/model_type.h"
#include "format/neural_network_weights.h"
#include "format/package.h"
#include "format/package_writer.h"

namespace coremlz::engine {
namespace {

// A model of a kind neither compressor takes (a pipeline, a tree ensemble,
// ...): say what it is. `where` names the spec file.
absl::Status UnsupportedModelType(const std::string& where, const CoreML::Specification::Model& model) {
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": the model is a ", format::ModelTypeName(model),
      "; coremlz compresses ML Programs (.mlpackage) and NeuralNetworks (plain, classifier or regressor; an "
      ".mlmodel file or the root model of an .mlpackage)"));
}

// Both forms of a NeuralNetwork - a bare .mlmodel and the root model of an
// .mlpackage - go through this one call, so they get the same spec.
// `where` names the spec file in INVALID_ARGUMENT messages.
absl::StatusOr<CompressionReport> CompressNeuralNetworkSpec(CoreML::Specification::Model* model, const std::string& where,
                                                            const CompressionConfig& config, const CompressOptions& options,
                                                            JobControl* control) {
  if (!format::HasNeuralNetwork(*model)) return UnsupportedModelType(where, *model);
  absl::StatusOr<CompressionReport> compressed = CompressNeuralNetwork(model, config, options, control);
  if (!compressed.ok()) {
    const absl::Status& s = compressed.status();
    if (s.code() != absl::StatusCode::kInvalidArgument || absl::StrContains(s.message(), where)) return s;
    return absl::Status(s.code(), absl::StrCat(where, ": ", s.message()));
  }
  return compressed;
}

// A NeuralNetwork wrapped in a package (as Xcode does with .mlmodel files):
// the root spec is compressed as a bare .mlmodel would be and written back at
// its own path; every other file - Manifest.json, the metadata and feature
// description overlays, anything else - is copied byte for byte.
absl::StatusOr<CompressionReport> CompressNeuralNetworkPackage(format::MlPackage* pkg, format::OutputTarget output,
                                                               const CompressionConfig& config,
                                                               const CompressOptions& options, JobControl* control) {
  const std::string& spec_path = pkg->layout().model_path;
  ASSIGN_OR_RETURN(CompressionReport report, CompressNeuralNetworkSpec(pkg->mutable_model(), pkg->PathOf(spec_path),
                                                                       config, options, control));
  ASSIGN_OR_RETURN(format::PackageWriter writer, format::PackageWriter::Begin(std::move(output)));
  const std::string spec = format::SerializeModelSpec(pkg->model());
  RETURN_IF_ERROR(writer.WriteFile(spec_path, spec));
  uint64_t bytes_before = pkg->model_bytes().size(), bytes_after = spec.size();
  for (const std::string& rel : pkg->files()) {
    if (rel == spec_path) continue;
    RETURN_IF_ERROR(writer.CopyFile(pkg->PathOf(rel), rel));
    ASSIGN_OR_RETURN(uint64_t size, FileSize(pkg->PathOf(rel)));
    bytes_before += size;
    bytes_after += size;
  }
  if (control && control->Cancelled()) return control->StopStatus();
  RETURN_IF_ERROR(writer.Commit());
  report.model_bytes_before = bytes_before;
  report.model_bytes_after = bytes_after;
  return report;
}

// Reads `size` bytes at the current position of `fd`.
absl::Status ReadFully(int fd, char* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t got = ::read(fd, data, size);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return absl::InternalError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
    if (got == 0) return absl::DataLossError(absl::StrCat(path, ": the file ended early"));
    data += got;
    size -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

// The package of an upload that is still arriving, once it can be read in
// order: Manifest.json and the spec complete, and an ML Program (a
// NeuralNetwork's weights are in its spec). Otherwise the job waits for the
// whole upload (`*arriving` becomes null) and opens it as any package.
absl::StatusOr<std::unique_ptr<format::MlPackage>> OpenPackage(const std::string& input, const CompressOptions& options,
                                                              JobControl* control, ArrivingInput** arriving) {
  absl::StatusOr<std::unique_ptr<format::MlPackage>> pkg = format::MlPackage::Open(input, options.max_manifest_bytes);
  if (*arriving == nullptr) return pkg;
  if (pkg.ok() && (*pkg)->model().has_mlprogram()) return pkg;
  RETURN_IF_ERROR((*arriving)->WaitComplete(control));
  *arriving = nullptr;
  return format::MlPackage::Open(input, options.max_manifest_bytes);
}

absl::StatusOr<CompressionReport> CompressPackage(const std::string& input, format::OutputTarget output,
                                                  const CompressionConfig& config, const CompressOptions& options,
                                                  JobControl* control, ArrivingInput* arriving) {
  ASSIGN_OR_RETURN(std::unique_ptr<format::MlPackage> pkg, OpenPackage(input, options, control, &arriving));
  if (format::HasNeuralNetwork(pkg->model())) {
    return CompressNeuralNetworkPackage(pkg.get(), std::move(output), config, options, control);
  }
  if (!pkg->model().has_mlprogram()) return UnsupportedModelType(pkg->PathOf(pkg->layout().model_path), pkg->model());
  ASSIGN_OR_RETURN(std::unique_ptr<MlProgramCompressor> compressor,
                   MlProgramCompressor::Create(pkg->model(), config, options));
  ASSIGN_OR_RETURN(format::PackageWriter writer, format::PackageWriter::Begin(std::move(output)));

  uint64_t bytes_before = 0, bytes_after = 0;
  std::vector<std::string> orphan_warnings;
  std::set<std::string> rewritten = {pkg->layout().model_path};
  if (arriving != nullptr) {
    // A weight file the upload does not declare is reported as it would be
    // from a complete package.
    for (const auto& needs : compressor->weight_files()) {
      absl::StatusOr<std::string> rel = pkg->layout().ResolveBlobFile(needs.file_name);
      if (needs.exists && (!rel.ok() || !arriving->DeclaredSize(*rel).ok())) {
        RETURN_IF_ERROR(arriving->WaitComplete(control));
        arriving = nullptr;
        break;
      }
    }
  }
  for (const auto& needs : compressor->weight_files()) {
    ASSIGN_OR_RETURN(std::string rel, pkg->layout().ResolveBlobFile(needs.file_name));
    rewritten.insert(rel);
    ASSIGN_OR_RETURN(std::string staging, writer.StagingPath(rel));
    ASSIGN_OR_RETURN(std::unique_ptr<FileSink> sink, FileSink::Create(staging, writer.DestinationPath(rel)));
    RETURN_IF_ERROR(compressor->BeginWeightFile(needs.file_name, sink.get()));
    if (needs.exists && arriving == nullptr && !PathExists(pkg->PathOf(rel))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", compressor->BlobOwner(needs.file_name, needs.offsets.empty() ? 0 : needs.offsets[0]), "\" reads ",
          needs.file_name, ", but the package has no ", rel));
    }
    if (needs.exists) {
      // Read in slices rather than mapped: the reader validates every record
      // against the size and copies out only the blobs the program uses, so
      // the job holds one slice and one blob, not the whole file in its RSS.
      // A file still arriving is read slice by slice as its bytes land.
      const std::string path = pkg->PathOf(rel);
      ASSIGN_OR_RETURN(uint64_t size, arriving != nullptr ? arriving->DeclaredSize(rel) : FileSize(path));
      bytes_before += size;
      compressor->report().weight_bytes_before += size;
      format::BlobStreamReader reader(needs.offsets, size, path,
                                      [&](const format::BlobMetadata& m, absl::string_view data) {
                                        return compressor->OnBlob(m, data, control);
                                      });
      if (arriving != nullptr) RETURN_IF_ERROR(arriving->WaitForBytes(rel, 0, control).status());  // it exists
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
      constexpr size_t kSlice = 4 << 20;
      std::string slice(kSlice, '\0');
      absl::Status read;
      for (uint64_t pos = 0; pos < size && read.ok();) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(kSlice, size - pos));
        if (arriving != nullptr) {
          // Whatever has arrived beyond `pos`, up to a slice: blobs are
          // compressed as soon as their bytes are in.
          absl::StatusOr<uint64_t> arrived = arriving->WaitForBytes(rel, pos + 1, control);
          if (!arrived.ok()) {  // the upload's error or the job's stop, not the file's
            ::close(fd);
            return arrived.status();
          }
          want = static_cast<size_t>(std::min<uint64_t>(want, *arrived - pos));
        }
        read = ReadFully(fd, slice.data(), want, path);
        if (!read.ok()) {
          read = absl::DataLossError(absl::StrCat(path, ": read ", pos, " of ", size, " bytes"));
          break;
        }
        read = reader.Feed(absl::string_view(slice.data(), want));
        pos += want;
      }
      ::close(fd);
      if (read.ok()) read = reader.Finish();
      // Blobs no op reads are not carried over (coremltools drops them too
      // when it saves a program); say so rather than lose them silently.
      const std::set<uint64_t> wanted(needs.offsets.begin(), needs.offsets.end());
      if (read.ok() && reader.declared_blob_count() > wanted.size()) {
        orphan_warnings.push_back(absl::StrCat(
            rel, " holds ", reader.declared_blob_count(), " blobs but the program reads ", wanted.size(),
            "; the ", reader.declared_blob_count() - wanted.size(), " that no op reads were not copied to the output"));
      }
      if (!read.ok()) {
        // Say which weight a damaged record belongs to, unless the message does.
        const std::string owner = compressor->BlobOwner(needs.file_name, reader.current_blob());
        if (owner.empty() || absl::StrContains(read.message(), owner)) return read;
        return absl::Status(read.code(), absl::StrCat(read.message(), " (the blob of \"", owner, "\")"));
      }
    }
    RETURN_IF_ERROR(compressor->FinishWeightFile());
    RETURN_IF_ERROR(sink->Close());
    bytes_after += sink->size();
    compressor->report().weight_bytes_after += sink->size();
  }
  ASSIGN_OR_RETURN(std::string model_bytes, compressor->FinishModel());
  RETURN_IF_ERROR(writer.WriteFile(pkg->layout().model_path, model_bytes));
  bytes_before += pkg->model_bytes().size();
  bytes_after += model_bytes.size();
  // Everything else (Manifest.json, extra items) is copied byte for byte,
  // from the complete, checked upload.
  std::vector<std::string> files = pkg->files();
  if (arriving != nullptr) {
    RETURN_IF_ERROR(arriving->WaitComplete(control));
    ASSIGN_OR_RETURN(files, format::ListPackageFiles(input));
  }
  for (const std::string& rel : files) {
    if (rewritten.count(rel)) continue;
    RETURN_IF_ERROR(writer.CopyFile(pkg->PathOf(rel), rel));
    ASSIGN_OR_RETURN(uint64_t size, FileSize(pkg->PathOf(rel)));
    bytes_before += size;
    bytes_after += size;
  }
  if (control && control->Cancelled()) return control->StopStatus();
  RETURN_IF_ERROR(writer.Commit());
  CompressionReport report = std::move(compressor->report());
  for (std::string& warning : compressor->usage().Warnings(config, report)) report.warnings.push_back(std::move(warning));
  for (std::string& warning : orphan_warnings) report.warnings.push_back(std::move(warning));
  report.model_bytes_before = bytes_before;
  report.model_bytes_after = bytes_after;
  return report;
}

absl::StatusOr<CompressionReport> CompressSpecFile(const std::string& input, format::OutputTarget output,
                                                   const CompressionConfig& config, const CompressOptions& options,
                                                   JobControl* control) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(input, uint64_t{2} << 30));
  ASSIGN_OR_RETURN(CoreML::Specification::Model model, format::ParseModelSpec(bytes, input));
  if (model.has_mlprogram()) {
    return absl::InvalidArgumentError(absl::StrCat(
        input, ": an ML Program keeps its weights in an .mlpackage; pass the package directory instead"));
  }
  ASSIGN_OR_RETURN(CompressionReport report, CompressNeuralNetworkSpec(&model, input, config, options, control));
  std::string out = format::SerializeModelSpec(model);
  ASSIGN_OR_RETURN(std::string staging, output.Stage());
  const std::string staged = JoinPath(staging, std::filesystem::path(output.path()).filename().string());
  RETURN_IF_ERROR(WriteFileAtomically(staged, out));
  RETURN_IF_ERROR(output.Commit(staged));
  report.model_bytes_before = bytes.size();
  report.model_bytes_after = out.size();
  return report;
}

}  // namespace

absl::StatusOr<CompressionReport> CompressModelPath(const std::string& input, const std::string& output,
                                                    const CompressionConfig& config, const CompressOptions& options,
                                                    const WriteOptions& write, JobControl* control,
                                                    ArrivingInput* arriving) {
  ASSIGN_OR_RETURN(format::OutputTarget target, format::OutputTarget::Check(output, input, write.overwrite));
  return CompressModelPath(input, std::move(target), config, options, control, arriving);
}

absl::StatusOr<CompressionReport> CompressModelPath(const std::string& input, format::OutputTarget output,
                                                    const CompressionConfig& config, const CompressOptions& options,
                                                    JobControl* control, ArrivingInput* arriving) {
  const auto start = std::chrono::steady_clock::now();
  if (arriving != nullptr && !IsDirectory(input)) {  // a spec file is read whole
    RETURN_IF_ERROR(arriving->WaitComplete(control));
    arriving = nullptr;
  }
  absl::StatusOr<CompressionReport> report =
      IsDirectory(input) ? CompressPackage(input, std::move(output), config, options, control, arriving)
                         : CompressSpecFile(input, std::move(output), config, options, control);
  if (report.ok()) {
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // fp16 baseline: fp32 weights halved, everything else as it was.
    uint64_t fp32_bytes = 0;
    for (const WeightReport& w : report->weights) {
      if (w.dtype == "fp32") fp32_bytes += w.bytes_before;
    }
    report->fp16_bytes = report->weight_bytes_before - fp32_bytes / 2;
  }
  return report;
}

}  // namespace coremlz::engine
