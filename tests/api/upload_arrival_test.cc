// UploadArrival: a job's reader waits for exactly the bytes it asks for,
// reads them from the receiver's files, and ends its wait with the upload's
// error, the job's cancellation, or the upload's end.
#include "api/upload_arrival.h"

#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/api/upload_test_util.h"
#include "tests/testing/test_env.h"

namespace coremlz::api {
namespace {

using upload_test::Chunk;
using upload_test::Info;

const std::string kSpec = "spec!";
const std::string kWeights = "0123456789abcdefghij";

struct Upload {
  testing::ScratchDir dir;
  FileReceiver receiver{dir.path(), TransferLimits{}};
  Upload() {
    EXPECT_TRUE(receiver.Declare(Info("model.mlmodel", kSpec)).ok());
    EXPECT_TRUE(receiver.Declare(Info("weights/weight.bin", kWeights)).ok());
  }
};

TEST(UploadArrival, AWaitEndsWhenItsBytesAreOnDisk) {
  Upload up;
  UploadArrival arrival(up.receiver);
  EXPECT_EQ(*arrival.DeclaredSize("weights/weight.bin"), kWeights.size());
  std::atomic<bool> sent_first_12{false};
  absl::StatusOr<uint64_t> waited;
  std::string seen;
  std::thread reader([&] {
    waited = arrival.WaitForBytes("weights/weight.bin", 12, nullptr);
    // Never before the bytes asked for were accepted, and then readable.
    EXPECT_TRUE(sent_first_12.load());
    auto bytes = ReadFile(up.dir.Join("weights/weight.bin"), 1 << 20);
    if (bytes.ok()) seen = bytes->substr(0, 12);
  });
  ASSERT_TRUE(up.receiver.Add(Chunk(0, 0, kSpec)).ok());
  arrival.Update(up.receiver);
  ASSERT_TRUE(up.receiver.Add(Chunk(1, 0, kWeights.substr(0, 7))).ok());
  arrival.Update(up.receiver);
  sent_first_12 = true;
  ASSERT_TRUE(up.receiver.Add(Chunk(1, 7, kWeights.substr(7, 5))).ok());
  arrival.Update(up.receiver);
  reader.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(*waited, 12u);  // what had arrived
  EXPECT_EQ(seen, kWeights.substr(0, 12));
  // Less than has arrived: at once, with all that has.
  EXPECT_EQ(*arrival.WaitForBytes("weights/weight.bin", 1, nullptr), 12u);
  // Files received whole are there at once; so is the spec's range.
  EXPECT_EQ(*arrival.WaitForBytes("model.mlmodel", 0, nullptr), kSpec.size());
}

TEST(UploadArrival, WaitCompleteEndsOnlyWithTheUpload) {
  Upload up;
  UploadArrival arrival(up.receiver);
  std::atomic<bool> completed{false};
  std::thread reader([&] {
    EXPECT_TRUE(arrival.WaitComplete(nullptr).ok());
    EXPECT_TRUE(completed.load());
  });
  ASSERT_TRUE(up.receiver.Add(Chunk(0, 0, kSpec)).ok());
  ASSERT_TRUE(up.receiver.Add(Chunk(1, 0, kWeights)).ok());
  arrival.Update(up.receiver);
  ASSERT_TRUE(up.receiver.Finish().ok());
  completed = true;
  arrival.Complete();
  reader.join();
}

TEST(UploadArrival, AFailedUploadEndsEveryWaitWithItsError) {
  Upload up;
  UploadArrival arrival(up.receiver);
  absl::Status bytes, whole;
  std::thread a([&] { bytes = arrival.WaitForBytes("weights/weight.bin", 20, nullptr).status(); });
  std::thread b([&] { whole = arrival.WaitComplete(nullptr); });
  arrival.Fail(absl::DataLossError("file \"weights/weight.bin\": SHA-256 mismatch"));
  a.join();
  b.join();
  EXPECT_EQ(bytes.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(whole.code(), absl::StatusCode::kDataLoss);
  // A failure after the upload was complete changes nothing.
  Upload done;
  UploadArrival complete(done.receiver);
  complete.Complete();
  complete.Fail(absl::CancelledError("late"));
  EXPECT_TRUE(complete.WaitComplete(nullptr).ok());
}

TEST(UploadArrival, ACancelledJobStopsWaiting) {
  Upload up;
  UploadArrival arrival(up.receiver);
  engine::JobControl control;
  absl::Status waited;
  std::thread reader([&] { waited = arrival.WaitForBytes("weights/weight.bin", 1, &control).status(); });
  control.Cancel();
  reader.join();
  EXPECT_EQ(waited.code(), absl::StatusCode::kCancelled);
  engine::JobControl expired;
  expired.SetDeadline(absl::Now() - absl::Seconds(1));
  EXPECT_EQ(arrival.WaitComplete(&expired).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(UploadArrival, RangesOutsideTheUploadAreErrors) {
  Upload up;
  UploadArrival arrival(up.receiver);
  EXPECT_EQ(arrival.WaitForBytes("weights/other.bin", 1, nullptr).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(arrival.WaitForBytes("weights/weight.bin", 21, nullptr).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(arrival.DeclaredSize("nope").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace coremlz::api
