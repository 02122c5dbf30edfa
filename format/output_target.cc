#include "format/output_target.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "format/manifest.h"
#include "format/package.h"

namespace coremlz::format {
namespace fs = std::filesystem;
namespace {

// Linux refuses paths of PATH_MAX (4096) bytes; a package adds its own
// "Data/com.apple.CoreML/weights/..." below the destination, so leave room.
constexpr size_t kMaxPathBytes = 3840;
constexpr size_t kMaxNameBytes = 255;
// Bigger model files are refused by the engine too; a file this large at the
// destination is not something we made.
constexpr uint64_t kMaxModelFileBytes = uint64_t{2} << 30;

// errno to a status naming the path. Path-shape errors are the user's input
// (exit 2), not internal errors.
absl::Status PathError(absl::string_view what, const std::string& path, int err) {
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT: return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS: return absl::PermissionDeniedError(message);
    case ELOOP:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
    case EINVAL: return absl::InvalidArgumentError(message);
    case EEXIST:
    case ENOTEMPTY: return absl::AlreadyExistsError(message);
    case ENOSPC:
    case EDQUOT: return absl::ResourceExhaustedError(message);
    default: return absl::InternalError(message);
  }
}

bool Lstat(const std::string& path, struct stat* st, int* err) {
  if (::lstat(path.c_str(), st) == 0) return true;
  *err = errno;
  return false;
}

bool SameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

absl::StatusOr<fs::path> Canonical(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) return PathError("cannot resolve", path, ec.value());
  return p;
}

// True if `path` is `root` or lies inside it. Existing directories are
// compared by device and inode, so symbolic links, hard links and
// case-insensitive spellings do not hide a match; names that do not exist
// yet compare by their canonical spelling.
absl::StatusOr<bool> IsSameOrInside(const std::string& path, const std::string& root) {
  ASSIGN_OR_RETURN(fs::path p, Canonical(path));
  ASSIGN_OR_RETURN(fs::path r, Canonical(root));
  struct stat rs;
  const bool root_exists = ::stat(r.c_str(), &rs) == 0;
  for (fs::path q = p;; q = q.parent_path()) {
    if (q == r) return true;
    struct stat qs;
    if (root_exists && ::stat(q.c_str(), &qs) == 0 && SameFile(qs, rs)) return true;
    if (q.empty() || q == q.parent_path()) return false;
  }
}

bool IsModelPackage(const std::string& dir) {
  const std::string manifest = JoinPath(dir, kManifestFileName);
  struct stat st;
  int err = 0;
  if (!Lstat(manifest, &st, &err) || !S_ISREG(st.st_mode)) return false;
  absl::StatusOr<std::string> json = ReadFile(manifest, 1 << 20);
  return json.ok() && Manifest::Parse(*json, manifest).ok();
}

bool IsModelFile(const std::string& file) {
  absl::StatusOr<std::string> bytes = ReadFile(file, kMaxModelFileBytes);
  if (!bytes.ok()) return false;
  absl::StatusOr<CoreML::Specification::Model> model = ParseModelSpec(*bytes, file);
  return model.ok() && model->specificationversion() > 0 &&
         model->Type_case() != CoreML::Specification::Model::TYPE_NOT_SET;
}

constexpr char kPackageWords[] = "an .mlpackage directory";
constexpr char kFileWords[] = "a single-file .mlmodel";

// What may stand at the destination: nothing, or a model of the kind to
// write when replacing.
absl::Status CheckExisting(const std::string& dest, const struct stat& st, bool replace, bool writes_package,
                           bool kind_known) {
  if (S_ISLNK(st.st_mode)) {
    return absl::AlreadyExistsError(absl::StrCat(
        dest, " is a symbolic link; coremlz does not replace links or write through them (name the real path)"));
  }
  const bool package = S_ISDIR(st.st_mode) && IsModelPackage(dest);
  const bool model = package || (S_ISREG(st.st_mode) && IsModelFile(dest));
  if (!model) {
    return absl::AlreadyExistsError(absl::StrCat(
        dest, " exists and is not a Core ML model (an .mlpackage directory with a Manifest.json, or an .mlmodel file); "
              "coremlz does not replace it, even with --force"));
  }
  // A model of the other kind at the destination is a mistake in the path,
  // not something to replace.
  if (kind_known && package != writes_package) {
    return absl::AlreadyExistsError(absl::StrCat(
        dest, " is ", package ? kPackageWords : kFileWords, " but the compressed model is ",
        writes_package ? kPackageWords : kFileWords,
        "; coremlz does not replace one kind of model with the other, even with --force (name another path)"));
  }
  if (!replace) return absl::AlreadyExistsError(absl::StrCat(dest, " already exists (pass --force to replace it)"));
  return absl::OkStatus();
}

// The destination with its suffix replaced by the right kind's.
std::string WithSuffix(const std::string& dest, absl::string_view suffix) {
  const size_t dot = dest.rfind('.');
  const size_t slash = dest.rfind('/');
  const bool has_suffix = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  return absl::StrCat(has_suffix ? dest.substr(0, dot) : dest, suffix);
}

// A destination whose suffix names the other kind of model: refused before
// anything else, with the name to use instead.
absl::Status CheckSuffix(const std::string& dest, const std::string& input, bool writes_package) {
  const std::string name = fs::path(dest).filename().string();
  const absl::string_view wrong = writes_package ? ".mlmodel" : ".mlpackage";
  if (!absl::EndsWithIgnoreCase(name, wrong)) return absl::OkStatus();
  const absl::string_view right = writes_package ? ".mlpackage" : ".mlmodel";
  return absl::InvalidArgumentError(absl::StrCat(
      "the output ", dest, " has the suffix of ", writes_package ? kFileWords : kPackageWords, ", but the input ", input,
      " is ", writes_package ? kPackageWords : kFileWords, " and the compressed model is one too (coremlz does not ",
      "convert between the two kinds); name the output ", WithSuffix(dest, right)));
}

// The first existing directory at or above `dir`, which must be writable.
absl::Status CheckWritableParent(const std::string& dest, fs::path dir) {
  for (;; dir = dir.parent_path()) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return PathError("cannot write", dest, ENOTDIR);
      if (::access(dir.c_str(), W_OK | X_OK) != 0) {
        return absl::PermissionDeniedError(
            absl::StrCat("cannot write ", dest, ": directory ", dir.string(), " is not writable (", std::strerror(errno), ")"));
      }
      return absl::OkStatus();
    }
    if (errno != ENOENT) return PathError("cannot write", dest, errno);
    if (dir == dir.parent_path()) return PathError("cannot write", dest, ENOENT);
  }
}

// mkdir with a random suffix: unlike mkdtemp this honours the umask, so a
// package that is this directory renamed ends up with ordinary permissions.
absl::StatusOr<std::string> MakeUniqueDirectory(const std::string& prefix) {
  static thread_local std::mt19937_64 random(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  for (int attempt = 0;; ++attempt) {
    std::string dir = absl::StrFormat("%s%08x", prefix, static_cast<uint32_t>(random()));
    if (::mkdir(dir.c_str(), 0777) == 0) return dir;
    if (errno != EEXIST || attempt == 100) return PathError("cannot create directory", dir, errno);
  }
}

fs::path ParentOf(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// Staging and set-aside names carry (a prefix of) the model's name, so a
// leftover after a kill -9 says what it was.
std::string SiblingPrefix(const std::string& dest, absl::string_view what) {
  const std::string name = fs::path(dest).filename().string();
  return (ParentOf(dest) / absl::StrCat(name.substr(0, 64), ".coremlz-", what, "-")).string();
}

}  // namespace

absl::StatusOr<OutputTarget> OutputTarget::Check(const std::string& destination, const std::string& input, bool replace) {
  std::string dest = destination;
  while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
  if (dest.empty()) return absl::InvalidArgumentError("the output path is empty");
  const std::string name = fs::path(dest).filename().string();
  if (dest == "/" || name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("output path \"", destination,
                                                   "\" names a directory, not a model; name the model to write, "
                                                   "e.g. DIR/out.mlpackage"));
  }
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("output name is too long: ", name.size(), " bytes, over the limit of ", kMaxNameBytes));
  }
  std::error_code ec;
  const fs::path absolute = fs::absolute(dest, ec);
  if (ec) return PathError("cannot resolve", dest, ec.value());
  if (absolute.native().size() > kMaxPathBytes) {
    return absl::InvalidArgumentError(absl::StrCat("output path is too long: ", absolute.native().size(),
                                                   " bytes as an absolute path, over the limit of ", kMaxPathBytes));
  }

  // The kind to write is the input's (a missing input is reported by
  // whatever reads it, with its own words).
  Kind kind = Kind::kUnknown;
  struct stat in_st;
  if (!input.empty() && ::stat(input.c_str(), &in_st) == 0) {
    if (S_ISDIR(in_st.st_mode)) kind = Kind::kPackage;
    if (S_ISREG(in_st.st_mode)) kind = Kind::kFile;
  }
  const bool writes_package = kind == Kind::kPackage;
  if (kind != Kind::kUnknown) RETURN_IF_ERROR(CheckSuffix(dest, input, writes_package));

  struct stat st;
  int err = 0;
  const bool exists = Lstat(dest, &st, &err);
  if (!exists && err != ENOENT) return PathError("cannot write", dest, err);
  if (exists && S_ISLNK(st.st_mode)) return CheckExisting(dest, st, replace, writes_package, kind != Kind::kUnknown);
  if (!input.empty()) {
    ASSIGN_OR_RETURN(bool inside_input, IsSameOrInside(dest, input));
    ASSIGN_OR_RETURN(bool contains_input, IsSameOrInside(input, dest));
    if (inside_input && contains_input) {
      return absl::InvalidArgumentError(
          absl::StrCat(dest, " is the input model; write the compressed model to a new path"));
    }
    if (inside_input) {
      return absl::InvalidArgumentError(
          absl::StrCat(dest, " is inside the input model ", input, "; write the compressed model elsewhere"));
    }
    if (contains_input) {
      return absl::InvalidArgumentError(
          absl::StrCat(dest, " contains the input model ", input, "; coremlz does not replace it"));
    }
  }
  if (exists) RETURN_IF_ERROR(CheckExisting(dest, st, replace, writes_package, kind != Kind::kUnknown));
  RETURN_IF_ERROR(CheckWritableParent(dest, absolute.parent_path()));
  Identity identity;
  if (exists) identity = Identity{st.st_dev, st.st_ino, true};
  return OutputTarget(std::move(dest), replace, identity, kind);
}

OutputTarget::OutputTarget(OutputTarget&& other) noexcept
    : destination_(std::move(other.destination_)),
      replace_(other.replace_),
      existing_(other.existing_),
      kind_(other.kind_),
      staging_(std::move(other.staging_)),
      created_parents_(std::move(other.created_parents_)),
      committed_(other.committed_) {
  // The moved-from target owns nothing to clean up.
  other.staging_.clear();
  other.created_parents_.clear();
}

OutputTarget::~OutputTarget() {
  if (!committed_) Abandon();
}

void OutputTarget::Abandon() {
  if (!staging_.empty()) (void)RemoveAll(staging_);
  staging_.clear();
  // Innermost first; rmdir only removes what is still empty.
  for (auto it = created_parents_.rbegin(); it != created_parents_.rend(); ++it) ::rmdir(it->c_str());
  created_parents_.clear();
}

absl::StatusOr<std::string> OutputTarget::Stage() {
  if (committed_ || !staging_.empty()) return absl::FailedPreconditionError("output already staged");
  std::vector<fs::path> missing;
  for (fs::path p = ParentOf(destination_); !p.empty(); p = p.parent_path()) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) break;
    if (errno != ENOENT) return PathError("cannot create directory", p.string(), errno);
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0777) == 0) {
      created_parents_.push_back(it->string());
    } else if (errno != EEXIST) {
      const int mkdir_err = errno;
      Abandon();
      return PathError("cannot create directory", it->string(), mkdir_err);
    }
  }
  absl::StatusOr<std::string> staging = MakeUniqueDirectory(SiblingPrefix(destination_, "staging"));
  if (!staging.ok()) {
    Abandon();
    return staging.status();
  }
  staging_ = *staging;
  return staging_;
}

absl::Status OutputTarget::Commit(const std::string& produced) {
  if (committed_ || staging_.empty()) return absl::FailedPreconditionError("nothing staged to commit");
  if (produced != staging_ && ParentOf(produced) != fs::path(staging_)) {
    return absl::InternalError(absl::StrCat(produced, " is not in the staging directory ", staging_));
  }
  // Only the kind Check() promised takes the destination's place.
  struct stat st;
  if (kind_ != Kind::kUnknown && ::lstat(produced.c_str(), &st) == 0 &&
      (kind_ == Kind::kPackage ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
    return absl::InternalError(absl::StrCat("the compressed model is not ", kind_ == Kind::kPackage ? kPackageWords : kFileWords,
                                            " like the input; nothing was written to ", destination_));
  }
  // The destination may have changed while we worked: check again what we
  // would replace, unless it is still what Check() accepted.
  int err = 0;
  const bool exists = Lstat(destination_, &st, &err);
  if (!exists && err != ENOENT) return PathError("cannot write", destination_, err);
  if (exists && !(existing_.exists && st.st_dev == existing_.dev && st.st_ino == existing_.ino && !S_ISLNK(st.st_mode))) {
    RETURN_IF_ERROR(CheckExisting(destination_, st, replace_, kind_ == Kind::kPackage, kind_ != Kind::kUnknown));
  }

  std::string aside;
  std::string previous;
  if (exists) {
    ASSIGN_OR_RETURN(aside, MakeUniqueDirectory(SiblingPrefix(destination_, "previous")));
    previous = JoinPath(aside, "model");
    if (::rename(destination_.c_str(), previous.c_str()) != 0) {
      const int rename_err = errno;
      ::rmdir(aside.c_str());
      return PathError("cannot move aside", destination_, rename_err);
    }
  }
  if (::rename(produced.c_str(), destination_.c_str()) != 0) {
    const int rename_err = errno;
    if (exists) {
      // Put the old model back; if even that fails it is still whole, in `aside`.
      if (::rename(previous.c_str(), destination_.c_str()) == 0) {
        ::rmdir(aside.c_str());
      } else {
        return absl::InternalError(absl::StrCat("cannot move the new model to ", destination_, " (",
                                                std::strerror(rename_err), ") nor the previous one back; it is in ",
                                                previous));
      }
    }
    return PathError("cannot move the new model to", destination_, rename_err);
  }
  committed_ = true;
  // Best effort from here: the new model is in place, and a leftover copy of
  // the old one or an empty staging directory loses nothing.
  if (!aside.empty()) (void)RemoveAll(aside);
  if (produced != staging_) (void)RemoveAll(staging_);
  staging_.clear();
  return absl::OkStatus();
}

absl::Status CheckSideFile(const std::string& path, const std::string& input, const std::string& output) {
  if (path.empty()) return absl::InvalidArgumentError("the report path is empty");
  for (const std::string* model : {&input, &output}) {
    if (model->empty()) continue;
    ASSIGN_OR_RETURN(bool overlaps, IsSameOrInside(path, *model));
    if (overlaps) {
      return absl::InvalidArgumentError(absl::StrCat("report path ", path, " would overwrite ",
                                                     model == &input ? "the input model " : "the output model ",
                                                     *model, "; write the report elsewhere"));
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return PathError("cannot write the report to", path, EISDIR);
  } else if (errno != ENOENT) {
    return PathError("cannot write the report to", path, errno);
  }
  fs::path parent = ParentOf(path);
  if (::stat(parent.c_str(), &st) != 0) return PathError("cannot write the report to", path, errno);
  if (!S_ISDIR(st.st_mode)) return PathError("cannot write the report to", path, ENOTDIR);
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot write the report to ", path, ": directory ",
                                                    parent.string(), " is not writable (", std::strerror(errno), ")"));
  }
  return absl::OkStatus();
}

}  // namespace coremlz::format
