// UploadSession: the upload every streaming reactor (Compress, Inspect, the
// runner's Validate) goes through.
#include "api/upload_session.h"

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "common/file_util.h"
#include "engine/worker_pool.h"
#include "gtest/gtest.h"
#include "tests/api/upload_test_util.h"
#include "tests/testing/test_env.h"

namespace coremlz::api {
namespace {

using upload_test::Chunk;
using upload_test::Files;
using upload_test::Info;

TEST(UploadSession, NumbersChunksAcrossItsLists) {
  testing::ScratchDir dir;
  ASSERT_TRUE(MakeDirectories(dir.Join("first")).ok());
  ASSERT_TRUE(MakeDirectories(dir.Join("second")).ok());
  UploadSession upload({});
  ASSERT_TRUE(upload.Declare(dir.Join("first"), Files({Info("a", "one"), Info("b", "two")})).ok());
  ASSERT_TRUE(upload.Declare(dir.Join("second"), Files({Info("a", "three")})).ok());
  EXPECT_EQ(upload.bytes_declared(), 11u);
  ASSERT_TRUE(upload.Add(Chunk(0, 0, "one")).ok());
  ASSERT_TRUE(upload.Add(Chunk(1, 0, "two")).ok());
  EXPECT_FALSE(upload.complete());
  ASSERT_TRUE(upload.Add(Chunk(2, 0, "three")).ok());  // the second list's file 0
  EXPECT_TRUE(upload.complete());
  ASSERT_TRUE(upload.Finish().ok());
  EXPECT_EQ(*ReadFile(dir.Join("first/b")), "two");
  EXPECT_EQ(*ReadFile(dir.Join("second/a")), "three");
  // An index beyond every list is named by the last one.
  absl::Status beyond = upload.Add(Chunk(3, 0, "x"));
  EXPECT_EQ(beyond.code(), absl::StatusCode::kInvalidArgument) << beyond;
}

TEST(UploadSession, AStreamThatEndsEarlyNamesTheIncompleteFile) {
  testing::ScratchDir dir;
  UploadSession upload({});
  ASSERT_TRUE(upload.Declare(dir.path(), Files({Info("model.mlmodel", "0123456789")})).ok());
  ASSERT_TRUE(upload.Add(Chunk(0, 0, "01234")).ok());
  absl::Status s = upload.EndedEarly();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "model.mlmodel")) << s;
}

TEST(UploadSession, AJobUploadGetsALockedJobDirectory) {
  testing::ScratchDir work;
  auto pool = engine::MakeLocalWorkerPool({});
  UploadSession upload({});
  JobUploadOptions options;
  options.work_dir = work.path();
  options.pool = pool.get();
  options.reserves_output = true;
  ASSERT_TRUE(upload.StartJob(options, Files({Info("m.mlmodel", "spec")})).ok());
  ASSERT_NE(upload.job_dir(), nullptr);
  EXPECT_TRUE(absl::StartsWith(upload.job_dir_path(), work.path()));
  EXPECT_TRUE(std::filesystem::is_directory(JoinPath(upload.job_dir_path(), "out")));
  EXPECT_EQ(upload.model_path(), JoinPath(upload.job_dir_path(), "in/m.mlmodel"));
  EXPECT_FALSE(upload.is_package());
  ASSERT_TRUE(upload.Add(Chunk(0, 0, "spec")).ok());
  ASSERT_TRUE(upload.CheckMemory().ok());
  ASSERT_TRUE(upload.Finish().ok());
  EXPECT_EQ(*ReadFile(upload.model_path()), "spec");
}

TEST(UploadSession, AJobOverTheMemoryBudgetIsRefusedAtTheHeader) {
  testing::ScratchDir work;
  engine::LocalWorkerPoolOptions small;
  small.threads = 1;
  small.memory_budget = 1024;
  auto pool = engine::MakeLocalWorkerPool(small);
  UploadSession upload({});
  JobUploadOptions options;
  options.work_dir = work.path();
  options.pool = pool.get();
  absl::Status s = upload.StartJob(options, Files({Info("m.mlmodel", std::string(1 << 20, 'x'))}));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  // The directory stays with the session, so that messages can be made to
  // name files as the caller did.
  EXPECT_FALSE(upload.job_dir_path().empty());
}

}  // namespace
}  // namespace coremlz::api
