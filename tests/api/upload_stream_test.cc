// UploadStream: the message order and stall limits of every streaming
// upload (Compress, Inspect, the runner's Validate), at times the test
// chooses.
#include "api/upload_stream.h"

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/api/upload_test_util.h"
#include "tests/testing/test_env.h"

namespace coremlz::api {
namespace {

using Arrival = UploadStream::Arrival;

const absl::Time kStart = absl::FromUnixSeconds(1000);

using upload_test::Chunk;
using upload_test::Files;
using upload_test::Info;

UploadStream::Options Words(const char* chunk_first, const char* not_a_chunk, const char* after_upload) {
  UploadStream::Options o;
  o.words.chunk_first = chunk_first;
  o.words.not_a_chunk = not_a_chunk;
  o.words.after_upload = after_upload;
  return o;
}

// Reads a header at `at` and declares `files` into `dir`.
void Header(UploadStream* stream, const std::string& dir, std::initializer_list<v1::FileInfo> files,
            absl::Time at = kStart) {
  ASSERT_EQ(*stream->Read(at, true, true, nullptr), Arrival::kHeader);
  ASSERT_TRUE(stream->session().Declare(dir, Files(files)).ok());
}

void ExpectInvalid(const absl::StatusOr<Arrival>& got, const std::string& words) {
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  EXPECT_EQ(got.status().message(), words);
}

TEST(UploadStream, TheHeaderComesFirst) {
  UploadStream::Options o = Words("chunk first", "not a chunk", "after");
  const v1::FileChunk chunk = Chunk(0, 0, "x");
  ExpectInvalid(UploadStream(o, kStart).Read(kStart, true, false, &chunk), "chunk first");
  ExpectInvalid(UploadStream(o, kStart).Read(kStart, true, false, nullptr), "chunk first");  // an empty message
  ExpectInvalid(UploadStream(o, kStart).Read(kStart, false, false, nullptr), "the stream ended without a header");
}

TEST(UploadStream, ChunksFollowTheHeaderUntilTheLastByte) {
  testing::ScratchDir dir;
  UploadStream stream(Words("chunk first", "not a chunk", "after"), kStart);
  EXPECT_EQ(stream.phase(), UploadStream::Phase::kHeader);
  Header(&stream, dir.path(), {Info("a", "one"), Info("b", "two")});
  EXPECT_EQ(stream.phase(), UploadStream::Phase::kUpload);
  EXPECT_EQ(*stream.Declared(), Arrival::kHeader);
  const v1::FileChunk a = Chunk(0, 0, "one"), b = Chunk(1, 0, "two");
  EXPECT_EQ(*stream.Read(kStart, true, false, &a), Arrival::kChunk);
  EXPECT_EQ(*stream.Read(kStart, true, false, &b), Arrival::kDone);
  EXPECT_EQ(stream.phase(), UploadStream::Phase::kDone);
  EXPECT_EQ(*ReadFile(dir.Join("b")), "two");
  // Then nothing but the stream's end.
  ExpectInvalid(stream.Read(kStart, true, false, &b), "after");
  ExpectInvalid(stream.Read(kStart, true, true, nullptr), "not a chunk");
  EXPECT_EQ(*stream.Read(kStart, false, false, nullptr), Arrival::kClosed);
}

TEST(UploadStream, ASecondHeaderIsRefused) {
  testing::ScratchDir dir;
  UploadStream stream(Words("chunk first", "not a chunk", "after"), kStart);
  Header(&stream, dir.path(), {Info("a", "one")});
  ExpectInvalid(stream.Read(kStart, true, true, nullptr), "not a chunk");
}

TEST(UploadStream, ASessionErrorEndsTheCall) {
  testing::ScratchDir dir;
  UploadStream stream({}, kStart);
  Header(&stream, dir.path(), {Info("a", "one")});
  const v1::FileChunk past = Chunk(0, 0, "one and more");
  absl::StatusOr<Arrival> got = stream.Read(kStart, true, false, &past);
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(absl::StrContains(got.status().message(), "past its declared size")) << got.status();
}

TEST(UploadStream, AStreamThatEndsEarlyNamesTheFile) {
  testing::ScratchDir dir;
  UploadStream stream({}, kStart);
  Header(&stream, dir.path(), {Info("model.mlmodel", "0123456789")});
  const v1::FileChunk half = Chunk(0, 0, "01234");
  EXPECT_EQ(*stream.Read(kStart, true, false, &half), Arrival::kChunk);
  absl::StatusOr<Arrival> got = stream.Read(kStart, false, false, nullptr);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_TRUE(absl::StrContains(got.status().message(), "model.mlmodel")) << got.status();
}

TEST(UploadStream, AnUploadOfEmptyFilesIsDoneAtItsHeader) {
  testing::ScratchDir dir;
  UploadStream stream({}, kStart);
  Header(&stream, dir.path(), {Info("empty", "")});
  EXPECT_EQ(*stream.Declared(), Arrival::kDone);
  EXPECT_TRUE(std::filesystem::exists(dir.Join("empty")));
}

TEST(UploadStream, AnUploadThatEndsWithTheStreamWaitsForIt) {
  testing::ScratchDir dir;
  UploadStream::Options o;
  o.done_at_last_byte = false;
  UploadStream stream(o, kStart);
  Header(&stream, dir.path(), {Info("a", "one")});
  EXPECT_EQ(*stream.Declared(), Arrival::kHeader);
  const v1::FileChunk a = Chunk(0, 0, "one");
  EXPECT_EQ(*stream.Read(kStart, true, false, &a), Arrival::kChunk);
  EXPECT_EQ(stream.phase(), UploadStream::Phase::kUpload);
  // A chunk too many is the session's to refuse, in its words.
  absl::StatusOr<Arrival> again = stream.Read(kStart, true, false, &a);
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(absl::StrContains(again.status().message(), "already complete")) << again.status();
  EXPECT_EQ(*stream.Read(kStart, false, false, nullptr), Arrival::kDone);
  EXPECT_EQ(*ReadFile(dir.Join("a")), "one");

  // Empty files too: done at the stream's end, not at the header.
  testing::ScratchDir dir2;
  UploadStream empty(o, kStart);
  Header(&empty, dir2.path(), {Info("empty", "")});
  EXPECT_EQ(*empty.Declared(), Arrival::kHeader);
  EXPECT_EQ(*empty.Read(kStart, false, false, nullptr), Arrival::kDone);
}

TEST(UploadStream, TheHeaderLimitRunsFromTheCallsStart) {
  UploadStream::Options o;
  o.header_timeout = absl::Seconds(2);
  o.idle_timeout = absl::Seconds(5);
  UploadStream stream(o, kStart);
  absl::Time next;
  ASSERT_TRUE(stream.CheckStall(kStart + absl::Seconds(1), &next).ok());
  EXPECT_EQ(next, kStart + absl::Seconds(2));
  absl::Status s = stream.CheckStall(kStart + absl::Seconds(2), &next);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(s.message(), "no request header within 2s of the call's start (--header-timeout-seconds)");
}

TEST(UploadStream, TheIdleLimitRunsFromTheLastMessageOfTheUpload) {
  testing::ScratchDir dir;
  UploadStream::Options o;
  o.header_timeout = absl::Seconds(2);
  o.idle_timeout = absl::Seconds(3);
  UploadStream stream(o, kStart);
  Header(&stream, dir.path(), {Info("a", "abcdef")}, kStart + absl::Seconds(1));
  absl::Time next;
  // The header's limit no longer applies.
  ASSERT_TRUE(stream.CheckStall(kStart + absl::Seconds(3), &next).ok());
  EXPECT_EQ(next, kStart + absl::Seconds(4));
  const v1::FileChunk part = Chunk(0, 0, "abc");
  ASSERT_EQ(*stream.Read(kStart + absl::Seconds(3.5), true, false, &part), Arrival::kChunk);
  ASSERT_TRUE(stream.CheckStall(kStart + absl::Seconds(6), &next).ok());
  EXPECT_EQ(next, kStart + absl::Seconds(6.5));
  absl::Status s = stream.CheckStall(kStart + absl::Seconds(6.5), &next);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(s.message(),
            "the upload stalled: nothing arrived for 3s (--idle-timeout-seconds); 3 of 6 bytes received");
  // Once the upload is done, reading is not the client's duty any more.
  const v1::FileChunk rest = Chunk(0, 3, "def");
  ASSERT_EQ(*stream.Read(kStart + absl::Seconds(6), true, false, &rest), Arrival::kDone);
  ASSERT_TRUE(stream.CheckStall(kStart + absl::Hours(1), &next).ok());
  EXPECT_EQ(next, absl::InfiniteFuture());
}

TEST(UploadStream, ZeroLimitsNeverFallDue) {
  testing::ScratchDir dir;
  UploadStream stream({}, kStart);
  absl::Time next;
  ASSERT_TRUE(stream.CheckStall(kStart + absl::Hours(1), &next).ok());
  EXPECT_EQ(next, absl::InfiniteFuture());
  Header(&stream, dir.path(), {Info("a", "abc")});
  ASSERT_TRUE(stream.CheckStall(kStart + absl::Hours(1), &next).ok());
  EXPECT_EQ(next, absl::InfiniteFuture());
}

TEST(UploadStream, TheStallCheckRunsWhenDue) {
  UploadStream::Options o;
  o.idle_timeout = absl::Milliseconds(50);
  UploadStream stream(o, absl::Now());
  // Nothing due: the check looks again one idle period on.
  absl::Notification ran;
  const absl::Time armed = absl::Now();
  stream.ArmStallCheck(armed, absl::InfiniteFuture(), [&ran] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now(), armed + absl::Milliseconds(50));
  // Re-arming replaces the check armed before.
  absl::Notification replaced, second;
  stream.ArmStallCheck(absl::Now(), absl::Now() + absl::Seconds(30), [&replaced] { replaced.Notify(); });
  stream.ArmStallCheck(absl::Now(), absl::Now() + absl::Milliseconds(10), [&second] { second.Notify(); });
  ASSERT_TRUE(second.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(replaced.HasBeenNotified());
}

}  // namespace
}  // namespace coremlz::api
