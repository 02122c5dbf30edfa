// ArtifactReceiver: what the CLI and the remote worker pool commit from a
// Compress stream - only a whole, checked artifact, in the model's form.
#include "api/artifact_receiver.h"

#include <string>

#include "common/file_util.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::api {
namespace {

v1::CompressResponse File(const std::string& path, const std::string& data) {
  v1::CompressResponse r;
  v1::FileInfo* f = r.mutable_artifact_file()->mutable_info();
  f->set_path(path);
  f->set_size(data.size());
  f->set_sha256(Sha256Hex(data));
  return r;
}

v1::CompressResponse Chunk(uint32_t index, const std::string& data) {
  v1::CompressResponse r;
  r.mutable_artifact_chunk()->set_file_index(index);
  r.mutable_artifact_chunk()->set_data(data);
  return r;
}

TEST(ArtifactReceiver, APackageIsCommittedAsItsDirectory) {
  testing::ScratchDir dir;
  const std::string staging = dir.Join("staging");
  ASSERT_TRUE(MakeDirectories(staging).ok());
  ArtifactReceiver artifact(staging);
  ASSERT_TRUE(artifact.Receive(File("Manifest.json", "{}")).ok());
  ASSERT_TRUE(artifact.Receive(Chunk(0, "{}")).ok());
  ASSERT_TRUE(artifact.Receive(File("Data/model.mlmodel", "spec")).ok());
  ASSERT_TRUE(artifact.Receive(Chunk(1, "spec")).ok());
  v1::CompressResponse other;
  other.mutable_summary();
  EXPECT_TRUE(artifact.Receive(other).ok()) << "not part of the artifact: ignored";
  EXPECT_EQ(artifact.bytes_declared(), 6u);
  EXPECT_EQ(artifact.bytes_received(), 6u);
  absl::StatusOr<std::string> produced = artifact.Complete();
  ASSERT_TRUE(produced.ok()) << produced.status();
  EXPECT_EQ(*produced, staging);

  const std::string out = dir.Join("out.mlpackage");
  ASSERT_TRUE(MakeDirectories(JoinPath(out, "old")).ok());
  ASSERT_TRUE(CommitArtifact(*produced, out).ok());
  EXPECT_EQ(*ReadFile(JoinPath(out, "Data/model.mlmodel")), "spec");
  EXPECT_FALSE(IsDirectory(JoinPath(out, "old"))) << "the commit replaces what was there";
}

TEST(ArtifactReceiver, ANeuralNetworkIsCommittedAsItsOneFile) {
  testing::ScratchDir dir;
  const std::string staging = dir.Join("staging");
  ASSERT_TRUE(MakeDirectories(staging).ok());
  ArtifactReceiver artifact(staging);
  ASSERT_TRUE(artifact.Receive(File("model.mlmodel", "nn")).ok());
  ASSERT_TRUE(artifact.Receive(Chunk(0, "nn")).ok());
  absl::StatusOr<std::string> produced = artifact.Complete();
  ASSERT_TRUE(produced.ok()) << produced.status();
  EXPECT_EQ(*produced, JoinPath(staging, "model.mlmodel"));
}

TEST(ArtifactReceiver, TheFirstErrorStaysAndNothingIsHandedOver) {
  testing::ScratchDir dir;
  const std::string staging = dir.Join("staging");
  ASSERT_TRUE(MakeDirectories(staging).ok());
  ArtifactReceiver artifact(staging);
  ASSERT_TRUE(artifact.Receive(File("model.mlmodel", "abc")).ok());
  absl::Status wrong = artifact.Receive(Chunk(0, "abd"));
  EXPECT_EQ(wrong.code(), absl::StatusCode::kDataLoss) << wrong;
  EXPECT_EQ(artifact.Receive(File("more", "x")), wrong) << "later parts are ignored";
  EXPECT_EQ(artifact.status(), wrong);
  EXPECT_EQ(artifact.Complete().status(), wrong);
}

TEST(ArtifactReceiver, AnArtifactCutShortIsNotComplete) {
  testing::ScratchDir dir;
  const std::string staging = dir.Join("staging");
  ASSERT_TRUE(MakeDirectories(staging).ok());
  ArtifactReceiver artifact(staging);
  ASSERT_TRUE(artifact.Receive(File("model.mlmodel", "abcdef")).ok());
  ASSERT_TRUE(artifact.Receive(Chunk(0, "abc")).ok());
  EXPECT_FALSE(artifact.Complete().ok());
}

}  // namespace
}  // namespace coremlz::api
