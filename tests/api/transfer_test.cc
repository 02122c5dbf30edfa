// FileReceiver: the upload state machine every Compress call goes through.
#include "api/transfer.h"

#include <filesystem>
#include <string>

#include "common/file_util.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/api/upload_test_util.h"
#include "tests/testing/test_env.h"

namespace coremlz::api {
namespace {

using upload_test::Chunk;
using upload_test::Info;

int OpenFds() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST(FileReceiver, ReceivesFilesInOrder) {
  testing::ScratchDir dir;
  FileReceiver r(dir.path(), {});
  ASSERT_TRUE(r.Declare(Info("a/x.bin", "hello world")).ok());
  ASSERT_TRUE(r.Declare(Info("empty", "")).ok());
  ASSERT_TRUE(r.Declare(Info("b", "!")).ok());
  ASSERT_TRUE(r.Add(Chunk(0, 0, "hello ")).ok());
  ASSERT_TRUE(r.Add(Chunk(0, 6, "world")).ok());
  ASSERT_TRUE(r.Add(Chunk(2, 0, "!")).ok());  // the empty file needs no chunk
  ASSERT_TRUE(r.Finish().ok());
  EXPECT_EQ(*ReadFile(dir.Join("a/x.bin")), "hello world");
  EXPECT_EQ(*ReadFile(dir.Join("empty")), "");
  EXPECT_EQ(*ReadFile(dir.Join("b")), "!");
  EXPECT_EQ(r.bytes_received(), 12u);
}

TEST(FileReceiver, WrongDigestIsDataLoss) {
  testing::ScratchDir dir;
  FileReceiver r(dir.path(), {});
  v1::FileInfo f = Info("x", "abc");
  f.set_sha256(Sha256Hex("abd"));
  ASSERT_TRUE(r.Declare(f).ok());
  absl::Status s = r.Add(Chunk(0, 0, "abc"));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

TEST(FileReceiver, RefusesBadPathsAndOrder) {
  testing::ScratchDir dir;
  FileReceiver r(dir.path(), {});
  EXPECT_EQ(r.Declare(Info("../x", "a")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Declare(Info("/etc/passwd", "a")).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(r.Declare(Info("d/f", "ab")).ok());
  EXPECT_EQ(r.Declare(Info("d", "a")).code(), absl::StatusCode::kInvalidArgument);  // file/dir clash
  ASSERT_TRUE(r.Declare(Info("g", "c")).ok());
  EXPECT_EQ(r.Add(Chunk(1, 0, "c")).code(), absl::StatusCode::kInvalidArgument);  // before file 0 is complete
  EXPECT_EQ(r.Add(Chunk(0, 1, "b")).code(), absl::StatusCode::kInvalidArgument);  // gap
  EXPECT_EQ(r.Add(Chunk(0, 0, "abc")).code(), absl::StatusCode::kInvalidArgument);  // past the declared size
}

TEST(FileReceiver, LimitsAreResourceExhausted) {
  testing::ScratchDir dir;
  TransferLimits limits;
  limits.max_total_bytes = 10;
  limits.max_files = 2;
  FileReceiver r(dir.path(), limits);
  EXPECT_EQ(r.Declare(Info("big", std::string(11, 'x'))).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(r.Declare(Info("a", "1")).ok());
  ASSERT_TRUE(r.Declare(Info("b", "2")).ok());
  EXPECT_EQ(r.Declare(Info("c", "3")).code(), absl::StatusCode::kResourceExhausted);
}

// A cancelled upload destroys its receiver mid-file; the file must be closed
// (a long-running server would otherwise leak one descriptor per cancelled call).
TEST(FileReceiver, DestroyedMidFileClosesTheFile) {
  testing::ScratchDir dir;
  const int before = OpenFds();
  {
    FileReceiver r(dir.path(), {});
    ASSERT_TRUE(r.Declare(Info("w.bin", "0123456789")).ok());
    ASSERT_TRUE(r.Add(Chunk(0, 0, "01234")).ok());
    EXPECT_EQ(OpenFds(), before + 1);
  }
  EXPECT_EQ(OpenFds(), before);
}

}  // namespace
}  // namespace coremlz::api
