// The Compressor service through real gRPC calls on loopback: results equal
// the in-process engine's, every malformed stream gets its status and the
// server keeps serving, cancellation and deadlines clean up, limits hold,
// metrics move.
#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/match.h"
#include "api/convert.h"
#include "api/credentials.h"
#include "api/grpc_wire.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "engine/inventory.h"
#include "engine/worker_pool.h"
#include "format/manifest.h"
#include "api/server_flags.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/server_fixture.h"

namespace coremlz::testing {
namespace {

using v1::CompressResponse;

std::string Mobilenet() { return ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }
std::string Transformer() { return ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage"; }
std::string Edsr() { return ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel"; }
std::string Golden16() { return GoldenDir() + "/ios16_original.mlpackage"; }
// A NeuralNetwork inside an .mlpackage, as Xcode wraps .mlmodel files.
std::string PoseNet() { return ModelsDir() + "/posenet_mobilenet075_fp16/PoseNetMobileNet075S16FP16.mlpackage"; }

const char kPalettize4[] = "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n";

// Slows every weight down so that a call can be cancelled mid-compression.
class SlowControl : public engine::JobControl {
 public:
  SlowControl(std::shared_ptr<engine::JobControl> inner, absl::Duration delay) : inner_(std::move(inner)), delay_(delay) {}
  bool Cancelled() const override { return inner_->Cancelled(); }
  void OnProgress(const engine::Progress& p) override {
    inner_->OnProgress(p);
    absl::SleepFor(delay_);
  }

 private:
  std::shared_ptr<engine::JobControl> inner_;
  absl::Duration delay_;
};

// A local pool whose jobs run slowly, and that counts what it was given.
class SlowPool : public engine::WorkerPool {
 public:
  SlowPool(absl::Duration delay, int threads, int queue)
      : inner_(engine::MakeLocalWorkerPool({threads, queue, 0})), delay_(delay) {}
  absl::Status Submit(engine::CompressJob job) override {
    job.control = std::make_shared<SlowControl>(job.control, delay_);
    auto done = std::move(job.done);
    job.done = [this, done](absl::StatusOr<engine::CompressionReport> r) {
      finished.fetch_add(1);
      last_code.store(static_cast<int>(r.status().code()));
      done(std::move(r));
    };
    submitted.fetch_add(1);
    return inner_->Submit(std::move(job));
  }
  int busy() const override { return inner_->busy(); }
  int queue_depth() const override { return inner_->queue_depth(); }
  int threads() const override { return inner_->threads(); }
  void Shutdown(absl::Duration grace) override { inner_->Shutdown(grace); }
  std::atomic<int> submitted{0}, finished{0}, last_code{-1};

 private:
  std::unique_ptr<engine::WorkerPool> inner_;
  absl::Duration delay_;
};

std::vector<v1::CompressRequest> Upload(const std::string& model, const std::string& yaml) {
  std::string root;
  std::vector<v1::FileInfo> files;
  std::vector<v1::CompressRequest> msgs = {HeaderFor(model, yaml, &root, &files)};
  for (auto& c : ChunksFor(root, files)) msgs.push_back(std::move(c));
  return msgs;
}

void ExpectServing(TestServer& server) {
  // The next valid call succeeds: the server survived whatever came before.
  auto outcome = RunCompress(server.Stub().get(), Upload(Golden16(), kPalettize4));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.Count(CompressResponse::kSummary), 1);
}

// --- results -------------------------------------------------------------

struct ModelConfig {
  std::string label, model, yaml;
};

class ServiceResultTest : public ::testing::TestWithParam<ModelConfig> {};

TEST_P(ServiceResultTest, MatchesTheInProcessEngineByteForByte) {
  TestServer server;
  const ModelConfig& c = GetParam();
  auto outcome = RunCompress(server.Stub().get(), Upload(c.model, c.yaml));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.responses.front().msg_case(), CompressResponse::kAccepted);
  EXPECT_FALSE(outcome.responses.front().accepted().job_id().empty());
  ScratchDir scratch;
  const bool package = IsDirectory(c.model);
  ASSERT_TRUE(SaveArtifact(outcome, scratch.Join("remote")).ok());
  auto config = engine::ParseCompressionConfig(c.yaml);
  const std::string local = scratch.Join(package ? "local.mlpackage" : "local.mlmodel");
  auto report = engine::CompressModelPath(c.model, local, *config, {}, {});
  ASSERT_TRUE(report.ok()) << report.status();
  auto remote_tree = ReadTree(scratch.Join("remote"));
  auto local_tree = ReadTree(local);
  if (!package) {
    // One .mlmodel file each; names differ (the upload's vs ours).
    ASSERT_EQ(remote_tree.size(), 1u);
    local_tree = {{remote_tree.begin()->first, local_tree.begin()->second}};
  }
  ASSERT_EQ(remote_tree.size(), local_tree.size());
  for (const auto& [path, bytes] : local_tree) {
    ASSERT_TRUE(remote_tree.count(path)) << path;
    EXPECT_TRUE(remote_tree[path] == bytes) << path << " differs";
  }
  // One report row per weight, in the engine's order, then the summary.
  EXPECT_EQ(outcome.Count(CompressResponse::kWeight), static_cast<int>(report->weights.size()));
  const auto& summary = outcome.responses.back();
  ASSERT_TRUE(summary.has_summary());
  EXPECT_EQ(summary.summary().weights_compressed(), report->weights_compressed);
  EXPECT_EQ(summary.summary().weight_bytes_after(), report->weight_bytes_after);
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Shared, ServiceResultTest,
    ::testing::Values(ModelConfig{"mobilenet_palettize4", Mobilenet(), kPalettize4},
                      ModelConfig{"mobilenet_int8", Mobilenet(), "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n"},
                      ModelConfig{"mobilenet_prune", Mobilenet(), "config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5}\n"},
                      ModelConfig{"transformer_joint", Transformer(),
                                  "passes:\n  - {config_type: OpMagnitudePrunerConfig, global_config: {target_sparsity: 0.5}}\n"
                                  "  - {config_type: OpPalettizerConfig, joint_compression: true, global_config: {nbits: 4}}\n"},
                      ModelConfig{"transformer_int4_block", Transformer(),
                                  "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: per_block, block_size: 32}\n"},
                      ModelConfig{"edsr_uint8", Edsr(), "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint8, mode: linear}\n"},
                      ModelConfig{"edsr_lut6", Edsr(), "config_type: OpPalettizerConfig\nglobal_config: {nbits: 6}\n"},
                      ModelConfig{"posenet_package_uint8", PoseNet(),
                                  "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: uint8, mode: linear}\n"},
                      ModelConfig{"posenet_package_lut4", PoseNet(), kPalettize4}),
    [](const auto& info) { return info.param.label; });

TEST(ServiceTest, StartsAndStopsQuickly) {
  const absl::Time start = absl::Now();
  { TestServer server; }
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST(ServiceTest, ReportOnlySendsNoArtifact) {
  TestServer server;
  auto msgs = Upload(Mobilenet(), kPalettize4);
  msgs[0].mutable_header()->set_report_only(true);
  auto outcome = RunCompress(server.Stub().get(), msgs);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.Count(CompressResponse::kArtifactFile), 0);
  EXPECT_EQ(outcome.Count(CompressResponse::kArtifactChunk), 0);
  EXPECT_GT(outcome.Count(CompressResponse::kWeight), 40);
  EXPECT_EQ(outcome.Count(CompressResponse::kSummary), 1);
}

TEST(ServiceTest, TypedConfigWorksLikeYaml) {
  TestServer server;
  auto msgs = Upload(Golden16(), kPalettize4);
  auto config = engine::ParseCompressionConfig(kPalettize4);
  msgs[0].mutable_header()->clear_config_yaml();
  *msgs[0].mutable_header()->mutable_config() = api::ToProto(*config);
  auto outcome = RunCompress(server.Stub().get(), msgs);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
}

TEST(ServiceTest, ArtifactDigestsAreCorrect) {
  TestServer server;
  auto outcome = RunCompress(server.Stub().get(), Upload(Golden16(), kPalettize4));
  ASSERT_TRUE(outcome.status.ok());
  // Recompute each artifact file's digest from its chunks.
  std::map<uint32_t, std::string> data;
  std::map<uint32_t, v1::FileInfo> info;
  for (const auto& r : outcome.responses) {
    if (r.has_artifact_file()) info[r.artifact_file().file_index()] = r.artifact_file().info();
    if (r.has_artifact_chunk()) data[r.artifact_chunk().file_index()] += r.artifact_chunk().data();
  }
  ASSERT_EQ(info.size(), 3u);
  for (const auto& [i, f] : info) {
    EXPECT_EQ(data[i].size(), f.size());
    EXPECT_EQ(Sha256Hex(data[i]), f.sha256()) << f.path();
  }
}

// --- malformed streams -----------------------------------------------------

struct Malformed {
  std::string label;
  std::function<void(std::vector<v1::CompressRequest>*)> mutate;
  grpc::StatusCode code;
  std::string message;
};

class MalformedStreamTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedStreamTest, GetsItsStatusAndTheServerKeepsServing) {
  api::ServerOptions options;
  options.limits.max_total_bytes = 50 << 20;
  options.limits.max_files = 10;
  TestServer server(options);
  auto msgs = Upload(Golden16(), kPalettize4);
  GetParam().mutate(&msgs);
  auto outcome = RunCompress(server.Stub().get(), msgs);
  EXPECT_EQ(outcome.status.error_code(), GetParam().code) << outcome.status.error_message();
  EXPECT_NE(outcome.status.error_message().find(GetParam().message), std::string::npos) << outcome.status.error_message();
  EXPECT_EQ(outcome.Count(CompressResponse::kArtifactChunk), 0) << "nothing may be returned for a bad upload";
  ExpectServing(server);
  // The failed call's job directory is gone.
  for (int i = 0; i < 50 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

v1::FileInfo* File(std::vector<v1::CompressRequest>* m, int i) { return (*m)[0].mutable_header()->mutable_files(i); }

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedStreamTest,
    ::testing::Values(
        Malformed{"empty_stream", [](auto* m) { m->clear(); }, grpc::StatusCode::INVALID_ARGUMENT, "without a header"},
        Malformed{"chunk_before_header", [](auto* m) { m->erase(m->begin()); }, grpc::StatusCode::INVALID_ARGUMENT, "first message must be a header"},
        Malformed{"second_header", [](auto* m) { m->insert(m->begin() + 1, (*m)[0]); }, grpc::StatusCode::INVALID_ARGUMENT, "second header"},
        Malformed{"bad_yaml", [](auto* m) { (*m)[0].mutable_header()->set_config_yaml("{{{not yaml"); }, grpc::StatusCode::INVALID_ARGUMENT, "YAML"},
        Malformed{"bad_config_value", [](auto* m) { (*m)[0].mutable_header()->set_config_yaml("config_type: OpPalettizerConfig\nglobal_config: {nbits: 5}\n"); }, grpc::StatusCode::INVALID_ARGUMENT, "nbits"},
        Malformed{"no_config", [](auto* m) { (*m)[0].mutable_header()->clear_config_yaml(); }, grpc::StatusCode::INVALID_ARGUMENT, "no compression config"},
        Malformed{"unknown_target", [](auto* m) { (*m)[0].mutable_header()->set_target("ios99"); }, grpc::StatusCode::INVALID_ARGUMENT, "deployment target"},
        Malformed{"target_below_model", [](auto* m) { (*m)[0].mutable_header()->set_target("ios15"); }, grpc::StatusCode::FAILED_PRECONDITION, "already requires iOS16"},
        Malformed{"wrong_digest", [](auto* m) { File(m, 2)->set_sha256(std::string(64, 'a')); }, grpc::StatusCode::DATA_LOSS, "SHA-256"},
        Malformed{"malformed_digest", [](auto* m) { File(m, 0)->set_sha256("xyz"); }, grpc::StatusCode::INVALID_ARGUMENT, "64 lowercase hex"},
        Malformed{"declared_smaller", [](auto* m) { File(m, 0)->set_size(File(m, 0)->size() - 1); }, grpc::StatusCode::INVALID_ARGUMENT, "past its declared size"},
        Malformed{"declared_larger", [](auto* m) { File(m, 2)->set_size(File(m, 2)->size() + 10); }, grpc::StatusCode::DATA_LOSS, "ended with file"},
        Malformed{"truncated_upload", [](auto* m) { m->pop_back(); }, grpc::StatusCode::DATA_LOSS, "ended with file"},
        Malformed{"out_of_order", [](auto* m) { std::swap((*m)[1], (*m)[2]); }, grpc::StatusCode::INVALID_ARGUMENT, "before file"},
        Malformed{"bad_offset", [](auto* m) { m->back().mutable_chunk()->set_offset(m->back().chunk().offset() + 1); }, grpc::StatusCode::INVALID_ARGUMENT, "chunks must be in order"},
        Malformed{"chunk_index_out_of_range", [](auto* m) { m->back().mutable_chunk()->set_file_index(9); }, grpc::StatusCode::INVALID_ARGUMENT, "only 3 files"},
        Malformed{"path_traversal", [](auto* m) { File(m, 1)->set_path("../../etc/passwd"); }, grpc::StatusCode::INVALID_ARGUMENT, "'..'"},
        Malformed{"absolute_path", [](auto* m) { File(m, 1)->set_path("/etc/passwd"); }, grpc::StatusCode::INVALID_ARGUMENT, "absolute"},
        Malformed{"duplicate_file", [](auto* m) { *(*m)[0].mutable_header()->add_files() = *File(m, 0); }, grpc::StatusCode::INVALID_ARGUMENT, "listed twice"},
        Malformed{"too_many_files", [](auto* m) {
                    for (int i = 0; i < 10; ++i) {
                      v1::FileInfo* f = (*m)[0].mutable_header()->add_files();
                      f->set_path(absl::StrCat("extra/", i));
                      f->set_sha256(std::string(64, '0'));
                    }
                  }, grpc::StatusCode::RESOURCE_EXHAUSTED, "10 files"},
        Malformed{"too_large", [](auto* m) { File(m, 2)->set_size(uint64_t{1} << 40); }, grpc::StatusCode::RESOURCE_EXHAUSTED, "limit of"},
        Malformed{"no_files", [](auto* m) { (*m)[0].mutable_header()->clear_files(); m->resize(1); }, grpc::StatusCode::INVALID_ARGUMENT, "lists no files"},
        Malformed{"not_a_model", [](auto* m) { File(m, 0)->set_path("README.txt"); }, grpc::StatusCode::INVALID_ARGUMENT, "neither an .mlpackage"},
        Malformed{"corrupt_spec", [](auto* m) {
                    // Replace model.mlmodel's bytes (and digest) with junk.
                    std::string junk(File(m, 1)->size(), '\xff');
                    File(m, 1)->set_sha256(Sha256Hex(junk));
                    for (auto& r : *m) {
                      if (r.has_chunk() && r.chunk().file_index() == 1) r.mutable_chunk()->set_data(junk.substr(r.chunk().offset(), r.chunk().data().size()));
                    }
                  }, grpc::StatusCode::INVALID_ARGUMENT, "not a valid Core ML model specification"}),
    [](const auto& info) { return info.param.label; });

TEST(ServiceTest, OversizedChunkIsRefused) {
  api::ServerOptions options;
  options.limits.max_chunk_bytes = 4096;
  TestServer server(options);
  auto outcome = RunCompress(server.Stub().get(), Upload(Golden16(), kPalettize4));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(outcome.status.error_message().find("chunk limit"), std::string::npos) << outcome.status.error_message();
}

TEST(ServiceTest, MessageAfterTheUploadIsRefused) {
  TestServer server;
  auto msgs = Upload(Golden16(), kPalettize4);
  msgs.push_back(msgs.back());
  auto outcome = RunCompress(server.Stub().get(), msgs);
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(outcome.status.error_message().find("after the upload"), std::string::npos) << outcome.status.error_message();
}

TEST(ServiceTest, UnsupportedTechniqueForTheTargetIsFailedPrecondition) {
  TestServer server;
  auto outcome = RunCompress(server.Stub().get(),
                             Upload(Mobilenet(), "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4}\n"));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(outcome.status.error_message().find("iOS18"), std::string::npos);
  ExpectServing(server);
}

// --- cancellation, deadlines, limits ---------------------------------------

TEST(ServiceTest, CancelMidUploadCleansUp) {
  TestServer server;
  auto msgs = Upload(Mobilenet(), kPalettize4);
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  auto stream = stub->Compress(&ctx);
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(stream->Write(msgs[i]));
  CompressResponse accepted;
  ASSERT_TRUE(stream->Read(&accepted));
  EXPECT_TRUE(accepted.has_accepted());
  ctx.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 100 && (server.LeftoverJobDirs() > 0 || server.server()->compressor()->active_calls() > 0); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
  EXPECT_EQ(server.server()->compressor()->active_calls(), 0);
  ExpectServing(server);
}

TEST(ServiceTest, CancelMidCompressStopsTheJob) {
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(100), 1, 4);
  SlowPool* slow = pool.get();
  TestServer server({}, std::move(pool), nullptr, /*metrics=*/true);
  auto msgs = Upload(Mobilenet(), kPalettize4);
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  auto stream = stub->Compress(&ctx);
  std::thread writer([&] {
    for (const auto& m : msgs) {
      if (!stream->Write(m)) break;
    }
    stream->WritesDone();
  });
  // Wait for compression progress, then cancel.
  CompressResponse r;
  bool compressing = false;
  while (stream->Read(&r)) {
    if (r.has_progress() && r.progress().phase() == v1::Progress::COMPRESS && r.progress().weights_done() >= 2) {
      compressing = true;
      break;
    }
  }
  ASSERT_TRUE(compressing);
  const absl::Time cancelled_at = absl::Now();
  ctx.TryCancel();
  writer.join();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The job notices within one weight and its directory goes away.
  for (int i = 0; i < 100 && slow->finished.load() == 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(slow->finished.load(), 1);
  EXPECT_EQ(slow->last_code.load(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(1)) << "mobilenet has 79 weights; 100 ms each would be ~8 s";
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
  const std::string scrape = server.ScrapeMetrics();
  EXPECT_EQ(MetricValue(scrape, "coremlz_jobs_total{outcome=\"cancelled\",technique=\"palettize\"}"), 1) << scrape;
}

TEST(ServiceTest, DeadlineExceededDuringCompression) {
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(50), 1, 4);
  SlowPool* slow = pool.get();
  TestServer server({}, std::move(pool));
  auto outcome = RunCompress(server.Stub().get(), Upload(Mobilenet(), kPalettize4), absl::Milliseconds(1500));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << outcome.status.error_message();
  for (int i = 0; i < 100 && slow->finished.load() == 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(slow->finished.load(), 1);
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

TEST(ServiceTest, FullQueueAnswersResourceExhausted) {
  // One worker, no queue: while one slow job runs, a second is refused.
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(30), 1, 0);
  TestServer server({}, std::move(pool));
  auto stub = server.Stub();
  std::thread first([&] {
    auto outcome = RunCompress(stub.get(), Upload(Mobilenet(), kPalettize4));
    EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  });
  for (int i = 0; i < 200 && server.server()->pool()->busy() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  auto second = RunCompress(stub.get(), Upload(Golden16(), kPalettize4));
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(second.status.error_message().find("retry"), std::string::npos) << second.status.error_message();
  first.join();
}

TEST(ServiceTest, WaitForWorkerQueuesInsteadOfRefusing) {
  api::ServerOptions options;
  options.wait_for_worker = true;
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(10), 1, 0);
  TestServer server(options, std::move(pool));
  auto stub = server.Stub();
  std::vector<std::thread> calls;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i) {
    calls.emplace_back([&] {
      auto outcome = RunCompress(stub.get(), Upload(Golden16(), kPalettize4), absl::Seconds(60));
      ok += outcome.status.ok();
    });
  }
  for (auto& t : calls) t.join();
  EXPECT_EQ(ok.load(), 3);
}

TEST(ServiceTest, MemoryBudgetRefusesJobsThatCannotFit) {
  api::ServerOptions options;
  options.memory_budget = 1 << 20;  // 1 MiB
  TestServer server(options);
  auto outcome = RunCompress(server.Stub().get(), Upload(Mobilenet(), kPalettize4));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(outcome.status.error_message().find("memory budget"), std::string::npos) << outcome.status.error_message();
}

TEST(ServiceTest, CallLimitIsEnforced) {
  api::ServerOptions options;
  options.max_concurrent_calls = 1;
  TestServer server(options);
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  auto held = stub->Compress(&ctx);
  auto msgs = Upload(Golden16(), kPalettize4);
  ASSERT_TRUE(held->Write(msgs[0]));
  CompressResponse r;
  ASSERT_TRUE(held->Read(&r));  // admitted and accepted
  auto second = RunCompress(stub.get(), msgs);
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ctx.TryCancel();
  held->Finish();
}

TEST(ServiceTest, ConcurrentClientsAllSucceed) {
  TestServer server;
  std::vector<std::thread> clients;
  std::vector<std::string> digests(6);
  std::atomic<int> failures{0};
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&, i] {
      auto stub = server.Stub();
      auto outcome = RunCompress(stub.get(), Upload(i % 2 ? Golden16() : Mobilenet(), kPalettize4));
      if (!outcome.status.ok()) {
        ADD_FAILURE() << "client " << i << ": " << outcome.status.error_message();
        ++failures;
        return;
      }
      for (const auto& r : outcome.responses) {
        if (r.has_artifact_file() && absl::EndsWith(r.artifact_file().info().path(), "weight.bin")) {
          digests[i] = r.artifact_file().info().sha256();
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int i = 2; i < 6; ++i) EXPECT_EQ(digests[i], digests[i % 2]) << "same input, same output";
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

// --- inspect, auth, health, reflection, metrics ----------------------------

TEST(ServiceTest, InspectReturnsTheInventory) {
  TestServer server;
  std::string root;
  std::vector<v1::FileInfo> files;
  auto header = HeaderFor(Mobilenet(), "", &root, &files);
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  v1::InspectResponse response;
  auto stream = stub->Inspect(&ctx, &response);
  v1::InspectRequest h;
  *h.mutable_header()->mutable_files() = header.header().files();
  ASSERT_TRUE(stream->Write(h));
  for (auto& c : ChunksFor(root, files)) {
    v1::InspectRequest r;
    *r.mutable_chunk() = c.chunk();
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.inventory().kind(), "mlprogram");
  EXPECT_EQ(response.inventory().weights_size(), 79);
  EXPECT_EQ(response.inventory().specification_version(), 7);
}

TEST(ServiceTest, InspectListsANeuralNetworkPackageLikeTheEngine) {
  TestServer server;
  std::string root;
  std::vector<v1::FileInfo> files;
  auto header = HeaderFor(PoseNet(), "", &root, &files);
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  v1::InspectResponse response;
  auto stream = stub->Inspect(&ctx, &response);
  v1::InspectRequest h;
  *h.mutable_header()->mutable_files() = header.header().files();
  ASSERT_TRUE(stream->Write(h));
  for (auto& c : ChunksFor(root, files)) {
    v1::InspectRequest r;
    *r.mutable_chunk() = c.chunk();
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  auto local = engine::InspectModel(PoseNet());
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(response.inventory().kind(), "neuralnetwork");
  ASSERT_EQ(response.inventory().weights_size(), static_cast<int>(local->weights.size()));
  ASSERT_GT(local->weights.size(), 30u);
  for (int i = 0; i < response.inventory().weights_size(); ++i) {
    EXPECT_EQ(response.inventory().weights(i).name(), local->weights[i].name);
  }
}

TEST(ServiceTest, NeuralNetworkPackageIsBudgetedAsItsSpec) {
  // The spec holds the weights: the job needs what the same bare .mlmodel
  // needs, not just the spec's parse.
  const std::string spec = PoseNet() + "/Data/com.apple.CoreML/PoseNetMobileNet075S16FP16.mlmodel";
  auto spec_size = FileSize(spec);
  ASSERT_TRUE(spec_size.ok());
  const uint64_t estimate = engine::EstimateModelFileMemory(*spec_size);
  api::ServerOptions tight;
  tight.memory_budget = estimate - 1;
  ASSERT_GT(tight.memory_budget, engine::MinimumSpecMemory(*spec_size));
  TestServer server(tight);
  auto refused = RunCompress(server.Stub().get(), Upload(PoseNet(), kPalettize4));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.status.error_message();
  api::ServerOptions fits;
  fits.memory_budget = estimate;
  TestServer roomy(fits);
  auto outcome = RunCompress(roomy.Stub().get(), Upload(PoseNet(), kPalettize4));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.Count(CompressResponse::kSummary), 1);
}

// --- budgets: Inspect as a job, checks before the upload completes --------------

// Uploads `model` to Inspect (all of it unless `files_to_send` says fewer
// files) and returns the call's status; `response` gets the inventory.
grpc::Status RunInspect(v1::Compressor::Stub* stub, const std::string& model, v1::InspectResponse* response,
                        absl::Duration deadline = absl::Seconds(60), grpc::ClientContext* ctx_out = nullptr) {
  std::string root;
  std::vector<v1::FileInfo> files;
  auto header = HeaderFor(model, "", &root, &files);
  grpc::ClientContext own;
  grpc::ClientContext* ctx = ctx_out ? ctx_out : &own;
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  auto stream = stub->Inspect(ctx, response);
  v1::InspectRequest h;
  *h.mutable_header()->mutable_files() = header.header().files();
  if (stream->Write(h)) {
    for (auto& c : ChunksFor(root, files)) {
      v1::InspectRequest r;
      *r.mutable_chunk() = c.chunk();
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  }
  return stream->Finish();
}

TEST(ServiceTest, InspectIsRefusedOverTheMemoryBudget) {
  api::ServerOptions options;
  options.memory_budget = 1 << 20;  // 1 MiB
  TestServer server(options);
  v1::InspectResponse response;
  grpc::Status s = RunInspect(server.Stub().get(), Mobilenet(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "--memory-budget-mb")) << s.error_message();
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

TEST(ServiceTest, InspectTakesAWorkerLikeCompress) {
  // One worker, no queue: while a slow compression runs, an Inspect call is
  // refused like a second compression would be.
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(30), 1, 0);
  SlowPool* slow = pool.get();
  TestServer server({}, std::move(pool));
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  auto stream = stub->Compress(&ctx);
  std::thread writer([&] {
    for (const auto& m : Upload(Mobilenet(), kPalettize4)) {
      if (!stream->Write(m)) break;
    }
    stream->WritesDone();
  });
  for (int i = 0; i < 500 && server.server()->pool()->busy() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(server.server()->pool()->busy(), 1);
  v1::InspectResponse response;
  grpc::Status s = RunInspect(stub.get(), Golden16(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "workers are busy")) << s.error_message();
  ctx.TryCancel();
  writer.join();
  stream->Finish();
  // The job's completion is seen (its done callback) a moment before the
  // pool frees its worker: wait for both.
  for (int i = 0; i < 500 && (slow->finished.load() < 1 || server.server()->pool()->busy() != 0); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(server.server()->pool()->busy(), 0);
  // With the worker free again, Inspect runs as a job of the pool.
  s = RunInspect(stub.get(), Golden16(), &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.inventory().kind(), "mlprogram");
  EXPECT_EQ(slow->submitted.load(), 3) << "the compression and both Inspect calls went to the pool";
}

TEST(ServiceTest, InspectQueuedPastItsDeadlineLeavesTheQueue) {
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(100), 1, 4);
  SlowPool* slow = pool.get();
  TestServer server({}, std::move(pool));
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  auto stream = stub->Compress(&ctx);
  std::thread writer([&] {
    for (const auto& m : Upload(Mobilenet(), kPalettize4)) {
      if (!stream->Write(m)) break;
    }
    stream->WritesDone();
  });
  for (int i = 0; i < 500 && server.server()->pool()->busy() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(server.server()->pool()->busy(), 1);
  // Mobilenet's 79 weights at 100 ms keep the worker for ~8 s; the Inspect
  // call waits in the queue until its deadline, then leaves it.
  v1::InspectResponse response;
  grpc::Status s = RunInspect(stub.get(), Golden16(), &response, absl::Milliseconds(1500));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  for (int i = 0; i < 100 && server.server()->pool()->queue_depth() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.server()->pool()->queue_depth(), 0);
  EXPECT_EQ(server.server()->pool()->busy(), 1) << "the compression is still running";
  EXPECT_EQ(slow->finished.load(), 1);
  EXPECT_EQ(slow->last_code.load(), static_cast<int>(absl::StatusCode::kCancelled));
  ctx.TryCancel();
  writer.join();
  stream->Finish();
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

TEST(ServiceTest, CancelledInspectStopsItsJob) {
  // A running inspection stops within one weight of the cancel.
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(100), 1, 4);
  SlowPool* slow = pool.get();
  TestServer server({}, std::move(pool));
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  std::thread canceller([&] {
    for (int i = 0; i < 500 && server.server()->pool()->busy() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
    absl::SleepFor(absl::Milliseconds(300));
    ctx.TryCancel();
  });
  v1::InspectResponse response;
  grpc::Status s = RunInspect(stub.get(), Mobilenet(), &response, absl::Seconds(60), &ctx);
  const absl::Time cancelled_at = absl::Now();
  canceller.join();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
  for (int i = 0; i < 100 && slow->finished.load() == 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(slow->finished.load(), 1);
  EXPECT_EQ(slow->last_code.load(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(1)) << "79 weights at 100 ms would be ~8 s";
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

// A package with one 2048 x 2048 fp16 weight (8 MiB of weight.bin): about
// 112 MiB of estimate, from a model spec of a few hundred bytes.
std::string BigWeightPackage(const ScratchDir& scratch) {
  const std::string dir = scratch.Join("big.mlpackage");
  ProgramBuilder b(7);
  b.AddInput("x", format::ElementType::kFloat16, {1, 2048});
  b.Linear("fc", "x", 2048, 2048, {1, 2048}, format::ElementType::kFloat16, 1);
  b.AddOutput("fc", format::ElementType::kFloat16, {1, 2048});
  EXPECT_TRUE(b.WritePackage(dir).ok());
  return dir;
}

TEST(ServiceTest, MemoryBudgetIsCheckedBeforeTheWeightsArrive) {
  // The budget fits the model spec but not the weight it declares: the call
  // is refused as soon as the spec is in, with weight.bin never sent.
  ScratchDir scratch;
  const std::string model = BigWeightPackage(scratch);
  auto estimate = engine::EstimateJobMemory(model);
  ASSERT_TRUE(estimate.ok());
  api::ServerOptions options;
  options.memory_budget = uint64_t{64} << 20;
  ASSERT_GT(*estimate, options.memory_budget);
  TestServer server(options);
  std::string root;
  std::vector<v1::FileInfo> files;
  auto header = HeaderFor(model, kPalettize4, &root, &files);
  ASSERT_EQ(files.size(), 3u);
  ASSERT_TRUE(absl::EndsWith(files[2].path(), "weight.bin"));
  auto chunks = ChunksFor(root, {files[0], files[1]});
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto stream = stub->Compress(&ctx);
  ASSERT_TRUE(stream->Write(header));
  for (const auto& c : chunks) ASSERT_TRUE(stream->Write(c));
  CompressResponse r;
  while (stream->Read(&r)) {
  }
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "memory budget of 64 MiB")) << s.error_message();
  // A budget that fits takes the whole upload.
  api::ServerOptions roomy;
  roomy.memory_budget = *estimate;
  TestServer fits(roomy);
  auto outcome = RunCompress(fits.Stub().get(), Upload(model, kPalettize4));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
}

TEST(ServiceTest, DeclaredSizesAreCheckedAgainstFreeDisk) {
  // A header declaring a petabyte (the upload limit raised to allow it) is
  // refused before any byte is sent, naming what is needed and what is free
  // but not the server's paths.
  api::ServerOptions options;
  options.limits.max_total_bytes = uint64_t{1} << 52;
  TestServer server(options);
  std::string root;
  std::vector<v1::FileInfo> files;
  auto header = HeaderFor(Golden16(), kPalettize4, &root, &files);
  for (auto& f : *header.mutable_header()->mutable_files()) {
    if (absl::EndsWith(f.path(), "weight.bin")) f.set_size(uint64_t{1} << 50);
  }
  auto outcome = RunCompress(server.Stub().get(), {header}, absl::Seconds(10));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << outcome.status.error_message();
  EXPECT_TRUE(absl::StrContains(outcome.status.error_message(), "MiB free")) << outcome.status.error_message();
  EXPECT_FALSE(absl::StrContains(outcome.status.error_message(), server.work_dir())) << outcome.status.error_message();
  EXPECT_EQ(outcome.Count(CompressResponse::kAccepted), 0);
  // Inspect too.
  v1::InspectResponse response;
  grpc::ClientContext ctx;
  auto stream = server.Stub()->Inspect(&ctx, &response);
  v1::InspectRequest h;
  *h.mutable_header()->mutable_files() = header.header().files();
  stream->Write(h);
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

TEST(ServiceTest, ManifestSizeLimitIsAFlag) {
  // A package whose Manifest.json is 1.5 MiB (a long item description): over
  // the default limit, accepted once --max-manifest-kb allows it.
  ScratchDir scratch;
  const std::string model = scratch.Join("long_manifest.mlpackage");
  CopyTree(Golden16(), model);
  auto manifest = format::Manifest::Parse(*ReadFile(model + "/Manifest.json"), "Manifest.json");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  manifest->items[0].description = std::string(3 << 19, 'd');
  ASSERT_TRUE(WriteFileAtomically(model + "/Manifest.json", manifest->Serialize()).ok());

  TestServer defaults;
  auto refused = RunCompress(defaults.Stub().get(), Upload(model, kPalettize4));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.status.error_message();
  EXPECT_TRUE(absl::StrContains(refused.status.error_message(), "--max-manifest-kb")) << refused.status.error_message();
  EXPECT_EQ(refused.Count(CompressResponse::kAccepted), 0) << "refused at the header";

  api::ServerOptions options;
  options.limits.max_manifest_bytes = uint64_t{4} << 20;
  TestServer raised(options);
  auto outcome = RunCompress(raised.Stub().get(), Upload(model, kPalettize4));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.Count(CompressResponse::kSummary), 1);
  v1::InspectResponse response;
  grpc::Status s = RunInspect(raised.Stub().get(), model, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();

  // And the flag sets it.
  auto args = Args::Parse({"--max-manifest-kb", "4096"}, api::ServerValueFlags(), api::ServerBoolFlags());
  ASSERT_TRUE(args.ok()) << args.status();
  auto parsed = api::OptionsFromFlags(*args);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->limits.max_manifest_bytes, uint64_t{4} << 20);
}

TEST(ServiceTest, BearerTokenIsRequiredWhenConfigured) {
  ScratchDir scratch;
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("tokens"), "# ci tokens\nsecret-1\nsecret-2\n").ok());
  api::ServerOptions options;
  options.token_file = scratch.Join("tokens");
  TestServer server(options);
  auto stub = server.Stub();
  auto msgs = Upload(Golden16(), kPalettize4);
  auto anonymous = RunCompress(stub.get(), msgs);
  EXPECT_EQ(anonymous.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  for (const char* token : {"wrong", "secret-2"}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    auto stream = stub->Compress(&ctx);
    for (const auto& m : msgs) stream->Write(m);
    stream->WritesDone();
    CompressResponse r;
    while (stream->Read(&r)) {
    }
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), std::string(token) == "wrong" ? grpc::StatusCode::UNAUTHENTICATED : grpc::StatusCode::OK)
        << token << ": " << s.error_message();
  }
  // Health stays open for probes.
  auto health = api::CheckHealth(server.Channel(), "", absl::Seconds(5));
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(*health, api::ServingStatus::kServing);
}

TEST(ServiceTest, HealthAndReflection) {
  TestServer server;
  auto health = api::CheckHealth(server.Channel(), "", absl::Seconds(5));
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, api::ServingStatus::kServing);
  auto services = api::ListServices(server.Channel(), absl::Seconds(5));
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_NE(std::find(services->begin(), services->end(), "coremlz.v1.Compressor"), services->end());
  EXPECT_NE(std::find(services->begin(), services->end(), "grpc.health.v1.Health"), services->end());
}

TEST(ServiceTest, MetricsMoveWithRealCalls) {
  TestServer server({}, nullptr, nullptr, /*metrics=*/true);
  const std::string before = server.ScrapeMetrics();
  ASSERT_NE(before.find("coremlz_workers_busy"), std::string::npos) << before;
  auto msgs = Upload(Golden16(), kPalettize4);
  uint64_t upload = 0;
  for (const auto& f : msgs[0].header().files()) upload += f.size();
  auto ok = RunCompress(server.Stub().get(), msgs);
  ASSERT_TRUE(ok.status.ok());
  auto bad = RunCompress(server.Stub().get(), {});
  ASSERT_FALSE(bad.status.ok());
  uint64_t artifact = 0;
  for (const auto& r : ok.responses) {
    if (r.has_artifact_chunk()) artifact += r.artifact_chunk().data().size();
  }
  const std::string after = server.ScrapeMetrics();
  const std::string labels = "grpc_method=\"Compress\",grpc_service=\"coremlz.v1.Compressor\",grpc_type=\"bidi_stream\"";
  EXPECT_EQ(MetricValue(after, "grpc_server_started_total{" + labels + "}"), 2) << after;
  EXPECT_EQ(MetricValue(after, "grpc_server_handled_total{grpc_code=\"OK\"," + labels + "}"), 1);
  EXPECT_EQ(MetricValue(after, "grpc_server_handled_total{grpc_code=\"INVALID_ARGUMENT\"," + labels + "}"), 1);
  EXPECT_EQ(MetricValue(after, "grpc_server_handling_seconds_count{" + labels + "}"), 2);
  EXPECT_EQ(MetricValue(after, "coremlz_upload_bytes_total"), static_cast<double>(upload));
  EXPECT_EQ(MetricValue(after, "coremlz_artifact_bytes_total"), static_cast<double>(artifact));
  EXPECT_EQ(MetricValue(after, "coremlz_jobs_total{outcome=\"ok\",technique=\"palettize\"}"), 1);
  EXPECT_EQ(MetricValue(after, "coremlz_job_seconds_count{technique=\"palettize\"}"), 1);
  EXPECT_EQ(MetricValue(after, "coremlz_compression_ratio_count"), 1);
  EXPECT_GT(MetricValue(after, "grpc_server_msg_received_total{" + labels + "}"), 2);
}

TEST(ServiceTest, GracefulShutdownDrainsInFlightCalls) {
  auto pool = std::make_unique<SlowPool>(absl::Milliseconds(5), 1, 4);
  TestServer server({}, std::move(pool));
  auto stub = server.Stub();
  std::atomic<bool> done{false};
  grpc::Status in_flight;
  std::thread call([&] {
    in_flight = RunCompress(stub.get(), Upload(Mobilenet(), kPalettize4)).status;
    done = true;
  });
  for (int i = 0; i < 200 && server.server()->pool()->busy() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  std::thread stopper([&] { server.server()->Shutdown(absl::Seconds(30)); });
  call.join();
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_message();
  // New calls are refused once shutdown began.
  auto late = RunCompress(stub.get(), Upload(Golden16(), kPalettize4), absl::Seconds(2));
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::UNAVAILABLE) << late.status.error_message();
  stopper.join();
}

}  // namespace
}  // namespace coremlz::testing
