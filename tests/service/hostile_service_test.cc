// Issue 10, class 4, through real gRPC calls: a call cancelled while its
// worker is deep inside one huge weight frees that worker within about a
// second, so with one worker the next call runs at once.
#include <cstdio>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/server_fixture.h"

namespace coremlz::testing {
namespace {

using v1::CompressResponse;

std::vector<v1::CompressRequest> Upload(const std::string& model, const std::string& yaml) {
  std::string root;
  std::vector<v1::FileInfo> files;
  std::vector<v1::CompressRequest> msgs = {HeaderFor(model, yaml, &root, &files)};
  for (auto& c : ChunksFor(root, files)) msgs.push_back(std::move(c));
  return msgs;
}

TEST(HostileServiceTest, CancellingAHugeWeightFreesTheOnlyWorker) {
  ScratchDir scratch;
  // One 4096x4096 fp16 weight; vector palettization of it takes many seconds.
  ProgramBuilder b(9);
  b.AddInput("x", format::ElementType::kFloat16, {1, 4096});
  const std::string y = b.Linear("fc", "x", 4096, 4096, {1, 4096}, format::ElementType::kFloat16, 11);
  b.AddOutput(y, format::ElementType::kFloat16, {1, 4096});
  ASSERT_TRUE(b.WritePackage(scratch.Join("huge.mlpackage")).ok());
  ASSERT_TRUE(WriteMixedTestPackage(scratch.Join("small.mlpackage"), format::ElementType::kFloat16, 9).ok());

  api::ServerOptions options;
  options.worker_threads = 1;
  TestServer server(options);
  auto stub = server.Stub();
  const auto huge = Upload(scratch.Join("huge.mlpackage"),
                           "config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, cluster_dim: 4}\n");
  grpc::ClientContext ctx;
  auto stream = stub->Compress(&ctx);
  std::thread writer([&] {
    for (const auto& m : huge) {
      if (!stream->Write(m)) break;
    }
    stream->WritesDone();
  });
  // The job has started on its only weight.
  CompressResponse r;
  bool compressing = false;
  while (stream->Read(&r)) {
    if (r.has_progress() && r.progress().phase() == v1::Progress::COMPRESS) {
      compressing = true;
      break;
    }
  }
  ASSERT_TRUE(compressing);
  absl::SleepFor(absl::Milliseconds(500));
  const absl::Time cancelled_at = absl::Now();
  ctx.TryCancel();
  writer.join();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);

  // The next call needs the same (only) worker.
  auto next = RunCompress(stub.get(), Upload(scratch.Join("small.mlpackage"),
                                             "config_type: OpLinearQuantizerConfig\nglobal_config: {}\n"));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(next.Count(CompressResponse::kSummary), 1);
  // A behaviour bound, generous for a loaded machine: without polling inside
  // the weight the worker stays busy for the whole palettization (>10 s).
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(4));
  std::printf("the next call finished %.3f s after the cancel\n", absl::ToDoubleSeconds(absl::Now() - cancelled_at));
  for (int i = 0; i < 100 && server.LeftoverJobDirs() > 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(server.LeftoverJobDirs(), 0);
}

}  // namespace
}  // namespace coremlz::testing
