// Sends every variant of every case in tests/data/malformed through a real
// coremlzd on loopback: each gets exactly its case's status code (and message),
// nothing comes back but the status, no job directory is left behind, and the
// call right after it succeeds.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/malformed_corpus.h"
#include "tests/testing/server_fixture.h"

namespace coremlz::testing {
namespace {

using v1::CompressResponse;

std::string CorpusDir() { return SourceDir() + "/tests/data/malformed"; }

// A valid, quick call: the server is still serving.
std::vector<v1::CompressRequest> ValidCall() {
  std::string root;
  std::vector<v1::FileInfo> files;
  std::vector<v1::CompressRequest> msgs = {HeaderFor(GoldenDir() + "/ios16_original.mlpackage",
                                                     "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n", &root, &files)};
  for (auto& c : ChunksFor(root, files)) msgs.push_back(std::move(c));
  return msgs;
}

class MalformedCorpusTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MalformedCorpusTest, EveryVariantGetsItsStatusAndTheNextCallSucceeds) {
  auto loaded = LoadMalformedCase(GetParam(), SharedDir());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const MalformedCase& c = *loaded;
  ASSERT_FALSE(c.variants.empty());
  TestServer server;
  auto stub = server.Stub();
  const auto valid = ValidCall();
  for (const MalformedVariant& v : c.variants) {
    SCOPED_TRACE(v.name);
    auto outcome = RunCompress(stub.get(), v.requests);
    // One line per variant in the test log: the corpus doubles as a catalogue
    // of the messages callers see.
    std::printf("%-70s %d %s\n", v.name.c_str(), static_cast<int>(outcome.status.error_code()),
                outcome.status.error_message().c_str());
    EXPECT_EQ(outcome.status.error_code(), c.code) << v.name << ": " << outcome.status.error_message();
    EXPECT_NE(outcome.status.error_message().find(c.message), std::string::npos)
        << v.name << ": message \"" << outcome.status.error_message() << "\" lacks \"" << c.message << "\"";
    EXPECT_EQ(outcome.Count(CompressResponse::kArtifactChunk), 0) << "a bad upload must not produce an artifact";
    EXPECT_EQ(outcome.Count(CompressResponse::kSummary), 0);
    auto next = RunCompress(stub.get(), valid);
    ASSERT_TRUE(next.status.ok()) << "after " << v.name << ": " << next.status.error_message();
    EXPECT_EQ(next.Count(CompressResponse::kSummary), 1);
  }
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

// The corpus itself: every class the hardening issue names has a case file.
TEST(MalformedCorpus, CoversEveryClass) {
  const auto cases = ListMalformedCases(CorpusDir());
  auto has = [&](const std::string& name) {
    for (const auto& c : cases) {
      if (c == CorpusDir() + "/" + name + ".case") return true;
    }
    return false;
  };
  for (const char* name : {"truncated_weight_file", "truncated_model_spec", "truncated_upload", "header_bit_flips",
                           "overlapping_blobs", "giant_shapes", "wrong_dtypes", "manifest_outside_package",
                           "zero_length_files", "duplicate_file_names", "out_of_order_chunks"}) {
    EXPECT_TRUE(has(name)) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedCorpusTest, ::testing::ValuesIn(ListMalformedCases(CorpusDir())),
                         [](const auto& info) {
                           std::string name = info.param.substr(info.param.find_last_of('/') + 1);
                           return name.substr(0, name.size() - 5);
                         });

}  // namespace
}  // namespace coremlz::testing
