// A short run of the load client (bench/load_client.cc) against a real
// coremlzd process: concurrent streams, some cancelled on purpose, no errors,
// and the server's descriptors back to where they started once the clients
// are gone. The full 64-stream, 60-second run is scripts/load.sh; its numbers
// are in docs/reliability.md.
#include <csignal>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "yaml-cpp/yaml.h"

namespace coremlz::testing {
namespace {

TEST(LoadSmoke, ConcurrentStreamsWithCancellationsLeaveNothingBehind) {
  ScratchDir work;
  Daemon server({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "",
                 "--work-dir", work.path(), "--workers", "2"},
                "serving gRPC on port ");
  ASSERT_TRUE(server.ok()) << server.log();
  const std::string json = work.Join("load.json");
  CommandResult load = RunProgram(
      {BinaryPath("bench/coremlz-load"), "--server", absl::StrCat("127.0.0.1:", server.port()), "--pid",
       std::to_string(server.pid()), "--streams", "8", "--channels", "4", "--seconds", "6", "--cancel-every", "3",
       "--settle-seconds", "2", "--model", ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage",
       "--json", json},
      absl::Seconds(120));
  ASSERT_EQ(load.exit_code, 0) << load.out << load.err;
  const YAML::Node r = YAML::LoadFile(json);
  EXPECT_EQ(r["errors"].as<int>(), 0) << load.out;
  EXPECT_GT(r["calls_ok"].as<int>(), 8) << load.out;
  EXPECT_GT(r["calls_cancelled"].as<int>(), 0) << load.out;
  // Every connection, upload file and artifact file is closed again.
  EXPECT_EQ(r["server"]["fds_after"].as<int>(), r["server"]["fds_before"].as<int>()) << load.out;
  // Every job directory is gone.
  int left = 0;
  for (const auto& e : std::filesystem::directory_iterator(work.path())) left += e.path().filename() != "load.json";
  EXPECT_EQ(left, 0);
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.log();
}

}  // namespace
}  // namespace coremlz::testing
