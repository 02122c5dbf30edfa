#include "tests/testing/server_fixture.h"

#include <filesystem>
#include <regex>

#include "absl/strings/str_cat.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "service/result_cache.h"
#include "tests/testing/http_get.h"

namespace coremlz::testing {

TestServer::TestServer(api::ServerOptions options, std::unique_ptr<engine::WorkerPool> pool,
                       std::shared_ptr<api::Validator> validator, bool metrics) {
  options.address = "127.0.0.1:0";
  options.metrics_address = metrics ? "127.0.0.1:0" : "";
  options.work_dir = work_.path();
  if (options.worker_threads == 0) options.worker_threads = 2;
  api::JobServerParts parts;
  parts.pool = std::move(pool);
  parts.validator = std::move(validator);
  if (!options.cache_dir.empty()) {  // as coremlzd --cache-dir opens it
    const service::ResultCacheOptions cache{options.cache_dir, options.cache_max_bytes};
    parts.open_result_store = [cache](api::ServerMetrics* metrics) -> absl::StatusOr<std::unique_ptr<api::ResultStore>> {
      auto opened = service::ResultCache::Open(cache, metrics->registry().get());
      if (!opened.ok()) return opened.status();
      return std::unique_ptr<api::ResultStore>(std::move(*opened));
    };
  }
  auto server = api::JobServer::Start(options, std::move(parts));
  EXPECT_TRUE(server.ok()) << server.status();
  if (server.ok()) server_ = std::move(*server);
}

TestServer::~TestServer() {
  if (server_) server_->Shutdown(absl::Seconds(5));
}

std::shared_ptr<grpc::Channel> TestServer::Channel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  return grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), args);
}

int TestServer::LeftoverJobDirs() const {
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(work_.path())) {
    (void)e;
    ++n;
  }
  return n;
}

std::string TestServer::ScrapeMetrics() const { return HttpGet(server_->metrics_port(), "/metrics"); }

double MetricValue(const std::string& scrape, const std::string& series) {
  size_t pos = 0;
  while ((pos = scrape.find(series, pos)) != std::string::npos) {
    const bool line_start = pos == 0 || scrape[pos - 1] == '\n';
    const size_t after = pos + series.size();
    if (line_start && after < scrape.size() && scrape[after] == ' ') {
      return std::stod(scrape.substr(after + 1, scrape.find('\n', after) - after - 1));
    }
    pos = after;
  }
  return 0;
}

int CompressOutcome::Count(v1::CompressResponse::MsgCase kind) const {
  int n = 0;
  for (const auto& r : responses) n += r.msg_case() == kind;
  return n;
}

v1::CompressRequest HeaderFor(const std::string& model, const std::string& config_yaml, std::string* root,
                              std::vector<v1::FileInfo>* files) {
  auto described = api::DescribeModelFiles(model, root);
  EXPECT_TRUE(described.ok()) << described.status();
  *files = *described;
  v1::CompressRequest r;
  r.mutable_header()->set_config_yaml(config_yaml);
  for (const auto& f : *files) *r.mutable_header()->add_files() = f;
  return r;
}

std::vector<v1::CompressRequest> ChunksFor(const std::string& root, const std::vector<v1::FileInfo>& files,
                                           uint64_t chunk_bytes) {
  std::vector<v1::CompressRequest> out;
  absl::Status s = api::SendFiles(
      root, files, 0,
      [&](v1::FileChunk&& c) {
        v1::CompressRequest r;
        *r.mutable_chunk() = std::move(c);
        out.push_back(std::move(r));
        return true;
      },
      nullptr, chunk_bytes);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

CompressOutcome RunCompress(v1::Compressor::Stub* stub, const std::vector<v1::CompressRequest>& requests,
                            absl::Duration deadline) {
  CompressOutcome out;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  auto stream = stub->Compress(&ctx);
  std::thread writer([&] {
    for (const auto& r : requests) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  });
  v1::CompressResponse response;
  while (stream->Read(&response)) out.responses.push_back(response);
  writer.join();
  out.status = stream->Finish();
  return out;
}

absl::Status SaveArtifact(const CompressOutcome& outcome, const std::string& dir) {
  api::FileReceiver receiver(dir, api::TransferLimits{});
  for (const auto& r : outcome.responses) {
    if (r.has_artifact_file()) {
      absl::Status s = receiver.Declare(r.artifact_file().info());
      if (!s.ok()) return s;
    } else if (r.has_artifact_chunk()) {
      absl::Status s = receiver.Add(r.artifact_chunk());
      if (!s.ok()) return s;
    }
  }
  return receiver.Finish();
}

std::map<std::string, std::string> ReadTree(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!IsDirectory(dir)) {
    out[std::filesystem::path(dir).filename().string()] = *ReadFile(dir);
    return out;
  }
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    out[std::filesystem::relative(e.path(), dir).string()] = *ReadFile(e.path().string());
  }
  return out;
}

}  // namespace coremlz::testing
