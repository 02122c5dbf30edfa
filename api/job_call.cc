#include "api/job_call.h"

#include <chrono>

#include <sys/statvfs.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"

namespace coremlz::api {

grpc::Status ForCaller(const grpc::Status& s, const std::string& job_dir) {
  if (s.ok() || job_dir.empty()) return s;
  const std::string message = absl::StrReplaceAll(
      s.error_message(), {{job_dir + "/in/", ""}, {job_dir + "/out/", "output "}, {job_dir, "<job>"}});
  return grpc::Status(s.error_code(), message);
}

absl::Time DeadlineOf(const grpc::CallbackServerContext* ctx) {
  const auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

absl::StatusOr<std::shared_ptr<JobDir>> MakeJobDir(const std::string& work_dir) {
  absl::StatusOr<std::unique_ptr<LockedJobDir>> dir = LockedJobDir::Create(work_dir);
  if (!dir.ok()) return dir.status();
  auto job = std::make_shared<JobDir>(std::move(*dir));
  if (absl::Status s = MakeDirectories(JoinPath(job->path, "in")); !s.ok()) return s;
  if (absl::Status s = MakeDirectories(JoinPath(job->path, "out")); !s.ok()) return s;
  return job;
}

absl::Status CheckDiskRoom(const std::string& job_dir, uint64_t declared, uint64_t output) {
  struct statvfs st;
  if (::statvfs(job_dir.c_str(), &st) != 0) return absl::OkStatus();  // unknown: the writes will tell
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  const uint64_t need = declared > UINT64_MAX - output ? UINT64_MAX : declared + output;
  if (need <= free_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the upload needs about ", need >> 20, " MiB of disk (", declared >> 20, " MiB of files",
      output > 0 ? absl::StrCat(" and ", output >> 20, " MiB for the output") : std::string(), ") but this server has ",
      free_bytes >> 20, " MiB free for jobs; retry later or on another server"));
}

}  // namespace coremlz::api
