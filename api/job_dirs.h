// Private job directories that a killed process cannot leave behind for
// good. Each directory is named after its owner ("coremlz-job-<pid>-XXXXXX",
// for people reading the disk) and holds an flock on itself for as long as
// the job lives; the kernel drops the lock when the owner dies, even by
// SIGKILL, so the next server to start in the same directory can tell dead
// owners' directories from live ones - also across containers sharing a
// volume, where process ids repeat.
#ifndef COREMLZ_API_JOB_DIRS_H_
#define COREMLZ_API_JOB_DIRS_H_

#include <string>

#include "absl/status/statusor.h"

namespace coremlz::api {

// A job directory, locked while this object lives; the destructor removes
// the tree (still holding the lock, so no cleaner races it) and unlocks.
class LockedJobDir {
 public:
  // A new directory in `base` ($TMPDIR or /tmp when empty), created if need be.
  static absl::StatusOr<std::unique_ptr<LockedJobDir>> Create(const std::string& base);
  ~LockedJobDir();
  LockedJobDir(const LockedJobDir&) = delete;
  LockedJobDir& operator=(const LockedJobDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  LockedJobDir(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

// Removes the job directories in `base` ($TMPDIR or /tmp when empty) whose
// owner has died; returns how many. Directories of live servers, and
// anything not named like a job directory, are left alone.
int RemoveStaleJobDirs(const std::string& base);

// The directory job directories go to for a --work-dir value.
std::string JobDirBase(const std::string& work_dir);

}  // namespace coremlz::api

#endif  // COREMLZ_API_JOB_DIRS_H_
