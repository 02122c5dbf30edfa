// CompressModelPath on a package whose weight file is still arriving
// (engine::ArrivingInput): the engine reads only bytes it waited for (the
// file on disk holds no more, so a read beyond them would fail), writes
// nothing before the whole input is complete, picks up files that arrive
// after the weights, ends with the input's error when the upload fails,
// and produces exactly the bytes of the ordinary path.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/file_util.h"
#include "engine/arriving_input.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

namespace fs = std::filesystem;

std::string Mobilenet() {
  return testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage";
}
const char kWeights[] = "Data/com.apple.CoreML/weights/weight.bin";
const char kLate[] = "Data/late.txt";  // a file that arrives after the weights

// An upload of `source` into `dir`: every file but the weight file is there
// at the start; the weight file grows by `step` bytes (or to what a wait
// asks for) each time the engine waits for bytes it lacks; kLate arrives
// with the end of the upload, which reports `end`.
class Drip : public ArrivingInput {
 public:
  Drip(const std::string& source, const std::string& dir, uint64_t step, absl::Status end)
      : source_(source), dir_(dir), step_(step), end_(std::move(end)) {
    for (const auto& e : fs::recursive_directory_iterator(source)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = fs::relative(e.path(), source).generic_string();
      fs::create_directories((fs::path(dir) / rel).parent_path());
      if (rel == kWeights) {
        std::ofstream(fs::path(dir) / rel, std::ios::binary);  // empty: nothing arrived yet
      } else {
        fs::copy_file(e.path(), fs::path(dir) / rel);
      }
    }
    weights_ = *ReadFile(JoinPath(source, kWeights), 1 << 30);
  }

  absl::StatusOr<uint64_t> WaitForBytes(const std::string& relative, uint64_t bytes, JobControl*) override {
    ++waits;
    if (relative != kWeights) return absl::NotFoundError(relative);
    if (bytes > weights_.size()) return absl::OutOfRangeError(relative);
    if (bytes > written_) {
      if (!end_.ok() && written_ >= weights_.size() / 2) return end_;  // the upload fails half way
      Append(std::min<uint64_t>(weights_.size(), std::max(bytes, written_ + step_)));
    }
    return written_;
  }
  absl::StatusOr<uint64_t> DeclaredSize(const std::string& relative) const override {
    if (relative == kWeights) return weights_.size();
    return absl::NotFoundError(relative);
  }
  absl::Status WaitComplete(JobControl*) override {
    completed = true;
    if (!end_.ok()) return end_;
    Append(weights_.size());
    std::ofstream(JoinPath(dir_, kLate)) << "late";
    return absl::OkStatus();
  }

  int waits = 0;
  bool completed = false;

 private:
  void Append(uint64_t to) {
    std::ofstream out(JoinPath(dir_, kWeights), std::ios::binary | std::ios::app);
    out.write(weights_.data() + written_, static_cast<std::streamsize>(to - written_));
    written_ = to;
  }

  std::string source_, dir_;
  uint64_t step_;
  absl::Status end_;
  std::string weights_;
  uint64_t written_ = 0;
};

std::map<std::string, std::string> Tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).generic_string()] = *ReadFile(e.path().string(), 1 << 30);
  }
  return out;
}

TEST(ArrivingInputTest, ReadsOnlyWhatArrivedAndMatchesTheOrdinaryPath) {
  for (const char* yaml : {"config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n",
                           "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n"}) {
    SCOPED_TRACE(yaml);
    auto config = ParseCompressionConfig(yaml);
    ASSERT_TRUE(config.ok());
    testing::ScratchDir scratch;
    const std::string in = scratch.Join("in.mlpackage");
    Drip drip(Mobilenet(), in, 10000, absl::OkStatus());
    auto streamed = CompressModelPath(in, scratch.Join("streamed.mlpackage"), *config, {}, {}, nullptr, &drip);
    ASSERT_TRUE(streamed.ok()) << streamed.status();
    EXPECT_TRUE(drip.completed);
    EXPECT_GT(drip.waits, 100) << "the weight file was read as it grew";
    // The same input, complete from the start.
    auto ordinary = CompressModelPath(in, scratch.Join("ordinary.mlpackage"), *config, {}, {});
    ASSERT_TRUE(ordinary.ok()) << ordinary.status();
    const auto tree = Tree(scratch.Join("streamed.mlpackage"));
    EXPECT_EQ(tree, Tree(scratch.Join("ordinary.mlpackage")));
    EXPECT_EQ(tree.count(kLate), 1u) << "a file that arrived after the weights is copied";
    EXPECT_EQ(streamed->weight_bytes_before, ordinary->weight_bytes_before);
    EXPECT_EQ(streamed->weight_bytes_after, ordinary->weight_bytes_after);
  }
}

TEST(ArrivingInputTest, AFailedUploadIsTheJobsErrorAndNothingIsWritten) {
  auto config = ParseCompressionConfig("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n");
  ASSERT_TRUE(config.ok());
  testing::ScratchDir scratch;
  const std::string in = scratch.Join("in.mlpackage");
  Drip drip(Mobilenet(), in, 10000, absl::DataLossError("file \"weight.bin\": SHA-256 mismatch"));
  const std::string out = scratch.Join("out.mlpackage");
  auto streamed = CompressModelPath(in, out, *config, {}, {}, nullptr, &drip);
  EXPECT_EQ(streamed.status().code(), absl::StatusCode::kDataLoss) << streamed.status();
  EXPECT_FALSE(PathExists(out));
  // Nothing staged is left beside it either.
  for (const auto& e : fs::directory_iterator(scratch.path())) EXPECT_EQ(e.path().filename(), "in.mlpackage");
}

}  // namespace
}  // namespace coremlz::engine
