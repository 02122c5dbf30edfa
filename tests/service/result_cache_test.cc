// The result cache on its own: keys, verified hits, corruption, LRU bounds,
// persistence across restarts, single flight.
#include "service/result_cache.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "tests/testing/test_env.h"

namespace coremlz::service {
namespace {

using coremlz::testing::ScratchDir;
namespace fs = std::filesystem;

v1::CompressHeader Header(const std::string& weight_digest = std::string(64, 'a')) {
  v1::CompressHeader h;
  auto* m = h.add_files();
  m->set_path("Manifest.json");
  m->set_size(10);
  m->set_sha256(std::string(64, 'b'));
  auto* w = h.add_files();
  w->set_path("Data/com.apple.CoreML/weights/weight.bin");
  w->set_size(1000);
  w->set_sha256(weight_digest);
  return h;
}

v1::CompressionConfig Palettize(int bits) {
  v1::CompressionConfig c;
  c.add_passes()->mutable_config()->mutable_global_config()->mutable_palettizer()->set_nbits(bits);
  return c;
}

// A small package-shaped artifact with `weight_bytes` of weights.
std::string MakeArtifact(const ScratchDir& scratch, const std::string& name, size_t weight_bytes, char fill = 'w') {
  const std::string dir = scratch.Join(name);
  EXPECT_TRUE(MakeDirectories(dir + "/Data/com.apple.CoreML/weights").ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/Manifest.json", "{}").ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/Data/com.apple.CoreML/model.mlmodel", "program").ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/Data/com.apple.CoreML/weights/weight.bin", std::string(weight_bytes, fill)).ok());
  return dir;
}

// The artifact's files as the Compress reactor describes them before
// streaming (api::DescribeModelFiles; these test packages are not real
// ones): paths relative to the package, or the file's name, with sizes and
// SHA-256, sorted.
std::vector<v1::FileInfo> Files(const std::string& artifact) {
  std::vector<v1::FileInfo> out;
  if (artifact.empty()) return out;
  const bool package = fs::is_directory(artifact);
  std::vector<std::string> rels;
  if (package) {
    for (const auto& e : fs::recursive_directory_iterator(artifact))
      if (e.is_regular_file()) rels.push_back(fs::relative(e.path(), artifact).string());
    std::sort(rels.begin(), rels.end());
  } else {
    rels.push_back(fs::path(artifact).filename().string());
  }
  const std::string root = package ? artifact : fs::path(artifact).parent_path().string();
  for (const std::string& rel : rels) {
    auto hash = Sha256File(root + "/" + rel);
    EXPECT_TRUE(hash.ok()) << rel;
    v1::FileInfo f;
    f.set_path(rel);
    f.set_size(hash->size);
    f.set_sha256(hash->sha256);
    out.push_back(f);
  }
  return out;
}

std::string FilesText(const std::vector<v1::FileInfo>& files) {
  std::string out;
  for (const auto& f : files) absl::StrAppend(&out, f.path(), " ", f.size(), " ", f.sha256(), "\n");
  return out;
}

v1::Report Report(int compressed) {
  v1::Report r;
  r.mutable_summary()->set_weights_compressed(compressed);
  r.add_weights()->set_name("w");
  return r;
}

std::string TreeText(const std::string& dir) {
  std::string out;
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir).string());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) absl::StrAppend(&out, f, "=", ReadFile(dir + "/" + f, 1 << 24).value_or("?"), "\n");
  return out;
}

std::string Metrics(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

TEST(ResultCacheKeyTest, ChangesWithEveryInputThatChangesTheResult) {
  const std::string base = ResultCacheKey(Header(), Palettize(4), "0.1.0");
  EXPECT_EQ(base.size(), 64u);
  EXPECT_EQ(base, ResultCacheKey(Header(), Palettize(4), "0.1.0")) << "deterministic";
  EXPECT_NE(base, ResultCacheKey(Header(std::string(64, 'c')), Palettize(4), "0.1.0")) << "weights";
  EXPECT_NE(base, ResultCacheKey(Header(), Palettize(6), "0.1.0")) << "config";
  EXPECT_NE(base, ResultCacheKey(Header(), Palettize(4), "0.2.0")) << "version";
  v1::CompressHeader target = Header();
  target.set_target("ios18");
  EXPECT_NE(base, ResultCacheKey(target, Palettize(4), "0.1.0")) << "target";
  v1::CompressHeader report_only = Header();
  report_only.set_report_only(true);
  EXPECT_NE(base, ResultCacheKey(report_only, Palettize(4), "0.1.0")) << "report only";
  v1::CompressHeader renamed = Header();
  renamed.mutable_files(0)->set_path("Manifest.json2");
  EXPECT_NE(base, ResultCacheKey(renamed, Palettize(4), "0.1.0")) << "paths";
  // The raw YAML text is not part of the key: only the normalised config.
  v1::CompressHeader yaml = Header();
  yaml.set_config_yaml("global_config: {nbits: 4}   # a comment");
  EXPECT_EQ(base, ResultCacheKey(yaml, Palettize(4), "0.1.0"));
}

v1::PlanHeader PlanHeaderFor(double bits) {
  v1::PlanHeader h;
  h.set_model_name("model.mlpackage");
  *h.mutable_files() = Header().files();
  h.mutable_target()->set_kind(v1::PlanTarget::BITS);
  h.mutable_target()->set_value(bits);
  return h;
}

TEST(ResultCachePlanKeyTest, CoversWhatChangesThePlanAndNothingElse) {
  const std::string base = ResultCachePlanKey(PlanHeaderFor(4), "t");
  EXPECT_EQ(base.size(), 64u);
  // Defaults written out are the same plan; the bypass flag is not the plan.
  v1::PlanHeader same = PlanHeaderFor(4);
  same.set_samples(4);
  same.set_weight_threshold(2048);
  same.set_no_cache(true);
  EXPECT_EQ(ResultCachePlanKey(same, "t"), base);
  // Everything else that can change the outputs changes the key.
  std::vector<v1::PlanHeader> others(9, PlanHeaderFor(4));
  others[0] = PlanHeaderFor(4.5);
  others[1].mutable_target()->set_kind(v1::PlanTarget::SIZE);
  others[2].set_candidates("palettize4,keep");
  others[3].set_samples(2);
  others[4].set_seed(1);
  others[5].set_function("prefill");
  others[6].set_weight_threshold(0);
  others[7].set_apply(true);
  others[8].mutable_files(1)->set_sha256(std::string(64, 'c'));
  for (size_t i = 0; i < others.size(); ++i) {
    EXPECT_NE(ResultCachePlanKey(others[i], "t"), base) << i;
  }
  EXPECT_NE(ResultCachePlanKey(PlanHeaderFor(4), "u"), base) << "the build";
  // A plan never shares a key with a compression of the same files.
  EXPECT_NE(ResultCacheKey(Header(), v1::CompressionConfig(), "t"), base);
}

TEST(ResultCacheTest, APlanEntryGivesBackItsOutputsAndModel) {
  ScratchDir scratch;
  auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20});
  ASSERT_TRUE(cache.ok()) << cache.status();
  v1::PlanOutputs outputs;
  outputs.set_config_yaml("config_type: OpPalettizerConfig\n");
  outputs.set_report_json("{\"plan\": 1}\n");
  outputs.set_applied_model_bytes(5000);
  const std::string key = ResultCachePlanKey(PlanHeaderFor(4), "t");
  const std::string artifact = MakeArtifact(scratch, "out.mlpackage", 5000);
  ASSERT_TRUE((*cache)->Store(key, artifact, Files(artifact), v1::Report(), outputs).ok());
  auto hit = (*cache)->Lookup(key, scratch.Join("job"));
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(hit->plan.SerializeAsString(), outputs.SerializeAsString());
  EXPECT_EQ(TreeText(hit->artifact_path), TreeText(artifact));
  // Not applied: outputs only.
  const std::string unapplied = ResultCachePlanKey(PlanHeaderFor(5), "t");
  ASSERT_TRUE((*cache)->Store(unapplied, "", {}, v1::Report(), outputs).ok());
  auto only = (*cache)->Lookup(unapplied, scratch.Join("job2"));
  ASSERT_TRUE(only.ok()) << only.status();
  EXPECT_TRUE(only->artifact_path.empty());
  EXPECT_EQ(only->plan.config_yaml(), outputs.config_yaml());
}

TEST(ResultCacheTest, AHitGivesBackTheSameBytesAndReport) {
  ScratchDir scratch;
  prometheus::Registry registry;
  auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20}, &registry);
  ASSERT_TRUE(cache.ok()) << cache.status();
  const std::string key = ResultCacheKey(Header(), Palettize(4), "t");
  EXPECT_EQ((*cache)->Lookup(key, scratch.Join("miss")).status().code(), absl::StatusCode::kNotFound);
  const std::string artifact = MakeArtifact(scratch, "out.mlpackage", 5000);
  ASSERT_TRUE((*cache)->Store(key, artifact, Files(artifact), Report(3)).ok());
  auto hit = (*cache)->Lookup(key, scratch.Join("job1"));
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(hit->artifact_path, scratch.Join("job1/model.mlpackage"));
  EXPECT_EQ(TreeText(hit->artifact_path), TreeText(artifact));
  EXPECT_EQ(hit->report.summary().weights_compressed(), 3);
  // The hit's file list is what it placed, as the call streams it.
  EXPECT_EQ(hit->root, hit->artifact_path);
  EXPECT_EQ(FilesText(hit->files), FilesText(Files(hit->artifact_path)));
  const std::string text = Metrics(registry);
  EXPECT_NE(text.find("coremlz_cache_requests_total{outcome=\"hit\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("coremlz_cache_requests_total{outcome=\"miss\"} 1"), std::string::npos) << text;
}

TEST(ResultCacheTest, SingleFileAndReportOnlyResults) {
  ScratchDir scratch;
  auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20});
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("edsr.mlmodel"), "nn-model-bytes").ok());
  const std::string file_key = ResultCacheKey(Header("1" + std::string(63, '0')), Palettize(4), "t");
  const std::string nn = scratch.Join("edsr.mlmodel");
  ASSERT_TRUE((*cache)->Store(file_key, nn, Files(nn), Report(1)).ok());
  auto hit = (*cache)->Lookup(file_key, scratch.Join("job"));
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(hit->artifact_path, scratch.Join("job/edsr.mlmodel"));
  EXPECT_EQ(ReadFile(hit->artifact_path, 100).value_or(""), "nn-model-bytes");
  EXPECT_EQ(hit->root, scratch.Join("job"));
  EXPECT_EQ(FilesText(hit->files), FilesText(Files(hit->artifact_path)));

  const std::string report_key = ResultCacheKey(Header("2" + std::string(63, '0')), Palettize(4), "t");
  ASSERT_TRUE((*cache)->Store(report_key, "", Files(""), Report(7)).ok());
  auto report = (*cache)->Lookup(report_key, scratch.Join("job2"));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->artifact_path.empty());
  EXPECT_EQ(report->report.summary().weights_compressed(), 7);
}

TEST(ResultCacheTest, DamagedEntriesAreDetectedRemovedAndCounted) {
  ScratchDir scratch;
  prometheus::Registry registry;
  auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20}, &registry);
  ASSERT_TRUE(cache.ok());
  const std::string artifact = MakeArtifact(scratch, "out.mlpackage", 5000);
  // Three ways to damage an entry: a flipped byte in the artifact, a
  // truncated artifact file, a changed report.
  for (int damage = 0; damage < 3; ++damage) {
    const std::string key = ResultCacheKey(Header(absl::StrCat(damage) + std::string(63, 'e')), Palettize(4), "t");
    ASSERT_TRUE((*cache)->Store(key, artifact, Files(artifact), Report(3)).ok());
    const std::string entry = scratch.Join("cache/" + key);
    const std::string weight = entry + "/artifact/Data/com.apple.CoreML/weights/weight.bin";
    // Break the hard link first: the cache must not share an inode with the
    // test's own artifact once we write into it.
    std::string bytes = *ReadFile(weight, 1 << 20);
    ASSERT_TRUE(RemoveAll(weight).ok());
    if (damage == 0) bytes[100] ^= 1;
    if (damage == 1) bytes.resize(10);
    ASSERT_TRUE(WriteFileAtomically(weight, bytes).ok());
    if (damage == 2) {
      std::string proto = *ReadFile(entry + "/entry.pb", 1 << 20);
      proto.back() ^= 1;
      ASSERT_TRUE(WriteFileAtomically(entry + "/entry.pb", proto).ok());
      ASSERT_TRUE(WriteFileAtomically(weight, *ReadFile(artifact + "/Data/com.apple.CoreML/weights/weight.bin", 1 << 20)).ok());
    }
    auto hit = (*cache)->Lookup(key, scratch.Join(absl::StrCat("job", damage)));
    EXPECT_EQ(hit.status().code(), absl::StatusCode::kNotFound) << damage;
    EXPECT_FALSE(PathExists(entry)) << "a damaged entry is removed";
    EXPECT_FALSE(PathExists(scratch.Join(absl::StrCat("job", damage, "/model.mlpackage")))) << "nothing served";
  }
  EXPECT_EQ((*cache)->entries(), 0u);
  EXPECT_NE(Metrics(registry).find("coremlz_cache_requests_total{outcome=\"corrupt\"} 3"), std::string::npos);
  // The original artifact (hard-linked into the cache at first) is intact.
  EXPECT_EQ(ReadFile(artifact + "/Data/com.apple.CoreML/weights/weight.bin", 1 << 20).value_or(""), std::string(5000, 'w'));
}

// A miss hashes its artifact once, to announce it: Store records the digests
// it is given instead of hashing again, in the order given (the stream's).
// Verify-before-serve still holds: bytes that do not match the recorded
// digest are never served, and a size that changed is refused at once.
TEST(ResultCacheTest, StoreRecordsTheGivenDigestsAndAHitStillVerifiesThem) {
  ScratchDir scratch;
  prometheus::Registry registry;
  auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20}, &registry);
  ASSERT_TRUE(cache.ok());
  const std::string artifact = MakeArtifact(scratch, "out.mlpackage", 5000);
  std::vector<v1::FileInfo> files = Files(artifact);
  std::reverse(files.begin(), files.end());  // any order: the one given is kept
  const std::string key = ResultCacheKey(Header(std::string(64, '7')), Palettize(4), "t");
  ASSERT_TRUE((*cache)->Store(key, artifact, files, Report(3)).ok());
  auto hit = (*cache)->Lookup(key, scratch.Join("job"));
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(FilesText(hit->files), FilesText(files));

  // Described digests that the bytes do not have (as if the file changed
  // after it was described): stored as given, caught by the first lookup.
  std::vector<v1::FileInfo> stale = Files(artifact);
  for (auto& f : stale) {
    if (absl::EndsWith(f.path(), "weight.bin")) f.set_sha256(std::string(64, '0'));
  }
  const std::string stale_key = ResultCacheKey(Header(std::string(64, '8')), Palettize(4), "t");
  ASSERT_TRUE((*cache)->Store(stale_key, artifact, stale, Report(3)).ok());
  auto bad = (*cache)->Lookup(stale_key, scratch.Join("job2"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound) << bad.status();
  EXPECT_FALSE(PathExists(scratch.Join("job2/model.mlpackage"))) << "nothing served";
  EXPECT_NE(Metrics(registry).find("coremlz_cache_requests_total{outcome=\"corrupt\"} 1"), std::string::npos);

  // A size that no longer matches: not stored at all.
  std::vector<v1::FileInfo> wrong_size = Files(artifact);
  wrong_size[0].set_size(wrong_size[0].size() + 1);
  const std::string size_key = ResultCacheKey(Header(std::string(64, '6')), Palettize(4), "t");
  EXPECT_EQ((*cache)->Store(size_key, artifact, wrong_size, Report(3)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ((*cache)->entries(), 1u);
  // An artifact without its file list is a caller's bug.
  EXPECT_EQ((*cache)->Store(size_key, artifact, {}, Report(3)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResultCacheTest, EvictsLeastRecentlyUsedWithinTheBound) {
  ScratchDir scratch;
  prometheus::Registry registry;
  // Room for two 40 KB entries, not three.
  auto cache = ResultCache::Open({scratch.Join("cache"), 100 << 10}, &registry);
  ASSERT_TRUE(cache.ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 3; ++i) keys.push_back(ResultCacheKey(Header(absl::StrCat(i) + std::string(63, 'f')), Palettize(4), "t"));
  const std::string a = MakeArtifact(scratch, "a.mlpackage", 40 << 10, 'a');
  ASSERT_TRUE((*cache)->Store(keys[0], a, Files(a), Report(0)).ok());
  ASSERT_TRUE((*cache)->Store(keys[1], a, Files(a), Report(1)).ok());
  // Use the first, so the second is the least recently used.
  ASSERT_TRUE((*cache)->Lookup(keys[0], scratch.Join("j0")).ok());
  ASSERT_TRUE((*cache)->Store(keys[2], a, Files(a), Report(2)).ok());
  EXPECT_LE((*cache)->bytes(), uint64_t{100} << 10);
  EXPECT_EQ((*cache)->entries(), 2u);
  EXPECT_TRUE((*cache)->Lookup(keys[0], scratch.Join("j1")).ok());
  EXPECT_EQ((*cache)->Lookup(keys[1], scratch.Join("j2")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*cache)->Lookup(keys[2], scratch.Join("j3")).ok());
  EXPECT_NE(Metrics(registry).find("coremlz_cache_evictions_total 1"), std::string::npos) << Metrics(registry);
  // A served copy survives the eviction of its entry (hard links or copies).
  EXPECT_EQ(TreeText(scratch.Join("j0/model.mlpackage")), TreeText(a));
  // An entry larger than the whole cache is not stored (and evicts nothing).
  const std::string big = MakeArtifact(scratch, "big.mlpackage", 200 << 10);
  const std::string big_key = ResultCacheKey(Header(std::string(64, '9')), Palettize(4), "t");
  ASSERT_TRUE((*cache)->Store(big_key, big, Files(big), Report(9)).ok());
  EXPECT_EQ((*cache)->entries(), 2u);
}

TEST(ResultCacheTest, EntriesSurviveARestartAndLeftoversAreCleaned) {
  ScratchDir scratch;
  const std::string key = ResultCacheKey(Header(), Palettize(4), "t");
  {
    auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20});
    ASSERT_TRUE(cache.ok());
    const std::string artifact = MakeArtifact(scratch, "o.mlpackage", 3000);
    ASSERT_TRUE((*cache)->Store(key, artifact, Files(artifact), Report(3)).ok());
  }
  // A write that died half-way, and a stray file, as a killed process leaves them.
  ASSERT_TRUE(MakeDirectories(scratch.Join("cache/.tmp-0123-dead/artifact")).ok());
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("cache/.tmp-0123-dead/artifact/x"), "partial").ok());
  auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20});
  ASSERT_TRUE(cache.ok());
  EXPECT_FALSE(PathExists(scratch.Join("cache/.tmp-0123-dead")));
  EXPECT_EQ((*cache)->entries(), 1u);
  auto hit = (*cache)->Lookup(key, scratch.Join("job"));
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(hit->report.summary().weights_compressed(), 3);
}

TEST(ResultCacheTest, IdenticalCallsInFlightComputeOnce) {
  ScratchDir scratch;
  auto cache = ResultCache::Open({scratch.Join("cache"), 1 << 20});
  ASSERT_TRUE(cache.ok());
  const std::string key = ResultCacheKey(Header(), Palettize(4), "t");
  int woken = 0;
  EXPECT_TRUE((*cache)->Lead(key, [&] { ++woken; })) << "the first leads";
  EXPECT_FALSE((*cache)->Lead(key, [&] { ++woken; })) << "the second waits";
  EXPECT_FALSE((*cache)->Lead(key, [&] { ++woken; }));
  const std::string other = ResultCacheKey(Header(), Palettize(6), "t");
  EXPECT_TRUE((*cache)->Lead(other, [] {})) << "a different call is independent";
  EXPECT_EQ(woken, 0);
  (*cache)->Release(key);
  EXPECT_EQ(woken, 2);
  EXPECT_TRUE((*cache)->Lead(key, [] {})) << "after release the next call leads again";
  (*cache)->Release(key);
  (*cache)->Release(other);
}

TEST(ResultCacheTest, RefusesAnUnwritableDirectory) {
  auto cache = ResultCache::Open({"", 1 << 20});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::service
