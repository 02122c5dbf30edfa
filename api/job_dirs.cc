#include "api/job_dirs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace coremlz::api {
namespace {

constexpr char kPrefix[] = "coremlz-job-";

// "coremlz-job-<digits>-XXXXXX": only names this code makes.
bool IsJobDirName(const std::string& name) {
  if (!absl::StartsWith(name, kPrefix)) return false;
  const std::string rest = name.substr(sizeof(kPrefix) - 1);
  const size_t dash = rest.find('-');
  if (dash == 0 || dash == std::string::npos || rest.size() - dash - 1 != 6) return false;
  for (size_t i = 0; i < dash; ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(rest[i]))) return false;
  }
  return true;
}

// Opens a directory and takes its lock without waiting; -1 if either fails.
int LockDirectory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::string JobDirBase(const std::string& work_dir) {
  if (!work_dir.empty()) return work_dir;
  const char* env = std::getenv("TMPDIR");
  return (env != nullptr && *env != '\0') ? env : "/tmp";
}

absl::StatusOr<std::unique_ptr<LockedJobDir>> LockedJobDir::Create(const std::string& work_dir) {
  const std::string base = JobDirBase(work_dir);
  if (absl::Status s = MakeDirectories(base); !s.ok()) return s;
  // Between mkdtemp and flock another server's cleaner may take the
  // unlocked directory for a dead owner's and remove it; then we hold a
  // lock on a removed directory (or none) and simply try again.
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string pattern = JoinPath(base, absl::StrCat(kPrefix, ::getpid(), "-XXXXXX"));
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot create a job directory in ", base, ": ", std::strerror(errno)));
    }
    std::string path(buf.data());
    const int fd = LockDirectory(path);
    if (fd < 0) continue;
    struct stat by_fd, by_path;
    if (::fstat(fd, &by_fd) == 0 && ::lstat(path.c_str(), &by_path) == 0 && by_fd.st_ino == by_path.st_ino &&
        by_fd.st_dev == by_path.st_dev) {
      return std::unique_ptr<LockedJobDir>(new LockedJobDir(std::move(path), fd));
    }
    ::close(fd);
  }
  return absl::InternalError(absl::StrCat("cannot create a job directory in ", base, ": it keeps disappearing"));
}

LockedJobDir::~LockedJobDir() {
  (void)RemoveAll(path_);
  if (fd_ >= 0) ::close(fd_);
}

int RemoveStaleJobDirs(const std::string& work_dir) {
  const std::string base = JobDirBase(work_dir);
  DIR* dir = ::opendir(base.c_str());
  if (dir == nullptr) return 0;
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(dir)) {
    if (IsJobDirName(e->d_name)) names.emplace_back(e->d_name);
  }
  ::closedir(dir);
  int removed = 0;
  for (const std::string& name : names) {
    const std::string path = JoinPath(base, name);
    const int fd = LockDirectory(path);  // fails for a live owner (or another user's directory)
    if (fd < 0) continue;
    removed += RemoveAll(path).ok();
    ::close(fd);
  }
  return removed;
}

}  // namespace coremlz::api
