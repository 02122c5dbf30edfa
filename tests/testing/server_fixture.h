// An in-process coremlzd on a loopback port for tests, plus raw-stream and
// HTTP helpers to poke at it.
#ifndef COREMLZ_TESTS_TESTING_SERVER_FIXTURE_H_
#define COREMLZ_TESTS_TESTING_SERVER_FIXTURE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "api/job_server.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {

// Starts a server on 127.0.0.1:0 with /metrics on 127.0.0.1:0 and job
// directories under a scratch work dir (so tests can see leftovers).
class TestServer {
 public:
  // options.cache_dir set: a result cache there, as coremlzd --cache-dir.
  // The /metrics endpoint is off unless `metrics`: prometheus-cpp's HTTP
  // server takes two seconds to stop, which adds up over many tests.
  explicit TestServer(api::ServerOptions options = {}, std::unique_ptr<engine::WorkerPool> pool = nullptr,
                      std::shared_ptr<api::Validator> validator = nullptr, bool metrics = false);
  ~TestServer();

  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }
  std::shared_ptr<grpc::Channel> Channel() const;
  std::unique_ptr<v1::Compressor::Stub> Stub() const { return v1::Compressor::NewStub(Channel()); }
  api::JobServer* server() { return server_.get(); }
  const std::string& work_dir() const { return work_.path(); }
  // Entries left in the work dir (job dirs that were not cleaned up).
  int LeftoverJobDirs() const;
  // GET /metrics.
  std::string ScrapeMetrics() const;

 private:
  ScratchDir work_;
  std::unique_ptr<api::JobServer> server_;
};

// The value of one Prometheus series in a scrape ("name{a="b",...}" exactly
// as exposed, labels sorted by name); 0 when absent.
double MetricValue(const std::string& scrape, const std::string& series);

// A Compress call driven message by message.
struct CompressOutcome {
  grpc::Status status;
  std::vector<v1::CompressResponse> responses;
  int Count(v1::CompressResponse::MsgCase kind) const;
};

// Header for uploading `model` (all its files) with a YAML config.
v1::CompressRequest HeaderFor(const std::string& model, const std::string& config_yaml, std::string* root,
                              std::vector<v1::FileInfo>* files);
// Chunks of the model's files (1 MiB).
std::vector<v1::CompressRequest> ChunksFor(const std::string& root, const std::vector<v1::FileInfo>& files,
                                           uint64_t chunk_bytes = 1 << 20);
// Sends `requests` (then half-closes) and reads everything back.
CompressOutcome RunCompress(v1::Compressor::Stub* stub, const std::vector<v1::CompressRequest>& requests,
                            absl::Duration deadline = absl::Seconds(120));

// Writes the artifact files of a successful call under `dir`.
absl::Status SaveArtifact(const CompressOutcome& outcome, const std::string& dir);

// Every file under `dir`: relative path -> contents.
std::map<std::string, std::string> ReadTree(const std::string& dir);

}  // namespace coremlz::testing

#endif  // COREMLZ_TESTS_TESTING_SERVER_FIXTURE_H_
