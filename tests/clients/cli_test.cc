// The coremlz CLI as CI uses it: real processes, exit codes, files, JSON.
#include <signal.h>

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "format/package.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

std::string Cli() { return BinaryPath("clients/coremlz"); }
std::string Daemond() { return BinaryPath("service/coremlzd"); }
std::string Mobilenet() { return ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }
std::string Golden16() { return GoldenDir() + "/ios16_original.mlpackage"; }
std::string Edsr() { return ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel"; }

bool IsJson(const std::string& text, google::protobuf::Struct* out) {
  return google::protobuf::util::JsonStringToMessage(text, out).ok();
}

TEST(CliTest, UsageAndHelp) {
  EXPECT_EQ(RunProgram({Cli()}).exit_code, 1);
  auto help = RunProgram({Cli(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("coremlz compress"), std::string::npos);
  auto compress_help = RunProgram({Cli(), "help", "compress"});
  EXPECT_EQ(compress_help.exit_code, 0);
  EXPECT_NE(compress_help.out.find("--palettize"), std::string::npos);
  EXPECT_EQ(RunProgram({Cli(), "frobnicate"}).exit_code, 1);
  EXPECT_EQ(RunProgram({Cli(), "compress", Golden16(), "--palettize", "4"}).exit_code, 1) << "no -o";
  EXPECT_EQ(RunProgram({Cli(), "compress", Golden16(), "-o", "/tmp/x", "--bogus"}).exit_code, 1);
  EXPECT_EQ(RunProgram({Cli(), "compress", Golden16(), "-o", "/tmp/x"}).exit_code, 1) << "no technique";
}

TEST(CliTest, ExitCodesPerFailureClass) {
  ScratchDir scratch;
  auto missing = RunProgram({Cli(), "compress", scratch.Join("nope.mlpackage"), "-o", scratch.Join("o"), "--palettize", "4"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("nope.mlpackage"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("bad.yaml"), "config_type: OpPalettizerConfig\nglobal_config: {nbits: 5}\n").ok());
  auto bad_config = RunProgram({Cli(), "compress", Golden16(), "-o", scratch.Join("o"), "--config", scratch.Join("bad.yaml")});
  EXPECT_EQ(bad_config.exit_code, 2) << bad_config.err;
  EXPECT_NE(bad_config.err.find("nbits"), std::string::npos) << bad_config.err;
  auto unsupported = RunProgram({Cli(), "compress", Golden16(), "-o", scratch.Join("o"), "--quantize", "int4"});
  EXPECT_EQ(unsupported.exit_code, 3) << unsupported.err;
  EXPECT_NE(unsupported.err.find("iOS18"), std::string::npos) << unsupported.err;
  EXPECT_FALSE(PathExists(scratch.Join("o")));
  auto unreachable = RunProgram({Cli(), "compress", Golden16(), "-o", scratch.Join("o"), "--palettize", "4", "--server",
                          "127.0.0.1:1", "--deadline", "3"});
  EXPECT_EQ(unreachable.exit_code, 4) << unreachable.err;
}

// Issue 10, class 5: wrong models and configs are refused (exit 2), naming
// the op or the config key, and nothing is written.
TEST(CliTest, WrongModelsAndConfigsAreRefusedNotWritten) {
  ScratchDir scratch;
  ProgramBuilder b(9);
  b.AddInput("x", format::ElementType::kFloat16, {1, 64});
  std::string h = b.Linear("fc1", "x", 64, 64, {1, 64}, format::ElementType::kFloat16, 1);
  b.Op("relu", {{"x", h}}, "fc1", format::ElementType::kFloat16, {1, 64});  // "fc1" defined twice
  b.AddOutput("fc1", format::ElementType::kFloat16, {1, 64});
  ASSERT_TRUE(b.WritePackage(scratch.Join("dup.mlpackage")).ok());
  auto dup = RunProgram({Cli(), "compress", scratch.Join("dup.mlpackage"), "-o", scratch.Join("o.mlpackage"),
                         "--palettize", "4"});
  EXPECT_EQ(dup.exit_code, 2) << dup.err;
  EXPECT_TRUE(absl::StrContains(dup.err, "op relu \"fc1\" defines \"fc1\"")) << dup.err;
  EXPECT_FALSE(PathExists(scratch.Join("o.mlpackage")));

  ASSERT_TRUE(WriteFileAtomically(scratch.Join("nan.yaml"),
                                  "config_type: OpPalettizerConfig\nglobal_config:\n  mode: custom\n"
                                  "  lut: [-0.5, 0.0, .nan, 0.5]\n")
                  .ok());
  auto nan = RunProgram({Cli(), "compress", Golden16(), "-o", scratch.Join("o.mlpackage"), "--config",
                         scratch.Join("nan.yaml")});
  EXPECT_EQ(nan.exit_code, 2) << nan.err;
  EXPECT_TRUE(absl::StrContains(nan.err, "global_config")) << nan.err;
  EXPECT_TRUE(absl::StrContains(nan.err, "\"lut\"[2] is nan")) << nan.err;
  EXPECT_FALSE(PathExists(scratch.Join("o.mlpackage")));
}

TEST(CliTest, WarningsReachThePersonWhateverTheOutputMode) {
  ScratchDir scratch;
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("typo.yaml"),
                                  "config_type: OpPalettizerConfig\nop_type_configs:\n  convolution: {nbits: 4}\n")
                  .ok());
  const std::string warning = "op_type_configs[\"convolution\"] matched no op";
  auto table = RunProgram({Cli(), "compress", Mobilenet(), "-o", scratch.Join("a.mlpackage"), "--config", scratch.Join("typo.yaml")});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(absl::StrContains(table.out, "warning: " + warning)) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "warning: the config selects no weights") ||
              absl::StrContains(table.out, "warning: no weight was compressed"))
      << table.out;

  auto json = RunProgram({Cli(), "compress", Mobilenet(), "-o", scratch.Join("b.mlpackage"), "--config",
                          scratch.Join("typo.yaml"), "--report", "-"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  google::protobuf::Struct report;
  ASSERT_TRUE(IsJson(json.out, &report)) << json.out;
  const auto& warnings = report.fields().at("warnings").list_value().values();
  ASSERT_FALSE(warnings.empty());
  EXPECT_TRUE(absl::StrContains(warnings[0].string_value(), warning)) << warnings[0].string_value();
  EXPECT_TRUE(absl::StrContains(json.err, "coremlz: warning: " + warning)) << json.err;

  auto quiet = RunProgram({Cli(), "compress", Mobilenet(), "-o", scratch.Join("c.mlpackage"), "--config",
                           scratch.Join("typo.yaml"), "--quiet"});
  EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_TRUE(absl::StrContains(quiet.err, "coremlz: warning: " + warning)) << quiet.err;
}

TEST(CliTest, EmbeddedCompressWritesModelAndJsonReport) {
  ScratchDir scratch;
  const std::string out = scratch.Join("m.mlpackage");
  auto r = RunProgram({Cli(), "compress", Mobilenet(), "-o", out, "--palettize", "4", "--report", scratch.Join("r.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("43 weights compressed"), std::string::npos) << r.out;
  EXPECT_TRUE(format::MlPackage::Open(out).ok());
  google::protobuf::Struct report;
  ASSERT_TRUE(IsJson(*ReadFile(scratch.Join("r.json")), &report));
  EXPECT_EQ(report.fields().at("totals").struct_value().fields().at("weights_compressed").number_value(), 43);
  EXPECT_GT(report.fields().at("totals").struct_value().fields().at("ratio_vs_fp16").number_value(), 3.8);
  // Existing output: refused without --force, replaced with it.
  EXPECT_EQ(RunProgram({Cli(), "compress", Mobilenet(), "-o", out, "--palettize", "4", "--quiet"}).exit_code, 2);
  EXPECT_EQ(RunProgram({Cli(), "compress", Mobilenet(), "-o", out, "--quantize", "int8", "--quiet", "--force"}).exit_code, 0);
  // --report - puts only JSON on stdout.
  auto stdout_json = RunProgram({Cli(), "compress", Edsr(), "-o", scratch.Join("e.mlmodel"), "--fp16", "--report", "-"});
  ASSERT_EQ(stdout_json.exit_code, 0) << stdout_json.err;
  EXPECT_TRUE(IsJson(stdout_json.out, &report)) << stdout_json.out;
}

TEST(CliTest, InspectTableAndJson) {
  auto table = RunProgram({Cli(), "inspect", Mobilenet()});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("79 weights"), std::string::npos);
  EXPECT_NE(table.out.find("classifier_1_weight_to_fp16"), std::string::npos);
  auto json = RunProgram({Cli(), "inspect", Edsr(), "--json"});
  ASSERT_EQ(json.exit_code, 0);
  google::protobuf::Struct inv;
  ASSERT_TRUE(IsJson(json.out, &inv));
  EXPECT_EQ(inv.fields().at("kind").string_value(), "neuralnetwork");
  EXPECT_EQ(inv.fields().at("weights").list_value().values_size(), 26);
}

// The line of the table that starts with `name`.
std::string TableRow(const std::string& out, const std::string& name) {
  for (size_t at = 0; at < out.size();) {
    const size_t end = std::min(out.find('\n', at), out.size());
    if (out.compare(at, name.size() + 1, name + " ") == 0) return out.substr(at, end - at);
    at = end + 1;
  }
  return "";
}

// ../shared/golden/llm_like: two functions read every weight from one blob.
// The table and the HTML page name both for each weight, embedded and
// through coremlzd (the report's functions field), and a weight left as it is
// still shows its size.
TEST(CliTest, MultifunctionWeightsNameTheirFunctions) {
  Daemon daemon({Daemond(), "--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0", "--workers", "1"},
                "serving gRPC on port ");
  ASSERT_TRUE(daemon.ok()) << daemon.log();
  ScratchDir scratch;
  const std::string model = GoldenDir() + "/llm_like/llm_like_multifunction.mlpackage";
  std::map<std::string, std::string> rows;
  for (const std::string mode : {"embedded", "remote"}) {
    SCOPED_TRACE(mode);
    std::vector<std::string> argv = {Cli(), "compress", model, "-o", scratch.Join(mode + ".mlpackage"), "--quantize", "int4",
                                     "--granularity", "per_block", "--block-size", "32", "--all", "--html",
                                     scratch.Join(mode + ".html")};
    if (mode == "remote") argv.insert(argv.end(), {"--server", absl::StrCat("127.0.0.1:", daemon.port())});
    auto r = RunProgram(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(absl::StartsWith(r.out, "weight ") && r.out.find("functions") < r.out.find('\n')) << r.out;
    const std::string logits = TableRow(r.out, "logits_weight_0");
    EXPECT_NE(logits.find("decode,prefill"), std::string::npos) << r.out;
    const std::string bias = TableRow(r.out, "linear_0_bias_0");
    EXPECT_NE(bias.find("decode,prefill"), std::string::npos) << r.out;
    EXPECT_NE(bias.find("256 B"), std::string::npos) << "a skipped weight keeps its size\n" << r.out;
    rows[mode] = logits + "\n" + bias;
    const std::string html = ReadFile(scratch.Join(mode + ".html")).value_or("");
    EXPECT_NE(html.find("<th>functions</th>"), std::string::npos);
    EXPECT_NE(html.find(">decode, prefill</td>"), std::string::npos);
  }
  EXPECT_EQ(rows["embedded"], rows["remote"]);
  // A single-function model's table has no functions column.
  auto single = RunProgram({Cli(), "compress", Golden16(), "-o", scratch.Join("single.mlpackage"), "--quantize", "int8"});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  EXPECT_EQ(single.out.substr(0, single.out.find('\n')).find("functions"), std::string::npos) << single.out;
}

TEST(CliTest, ConfigCommandPrintsJointPasses) {
  auto r = RunProgram({Cli(), "config", "--prune", "0.5", "--palettize", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("OpMagnitudePrunerConfig"), std::string::npos);
  EXPECT_NE(r.out.find("joint_compression: true"), std::string::npos) << r.out;
}

TEST(CliTest, ThroughADaemonLikeCi) {
  Daemon daemon({Daemond(), "--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0", "--workers", "2"},
                "serving gRPC on port ");
  ASSERT_TRUE(daemon.ok()) << daemon.log();
  const std::string server = absl::StrCat("127.0.0.1:", daemon.port());
  EXPECT_EQ(RunProgram({Cli(), "health", "--server", server}).exit_code, 0);
  ScratchDir scratch;
  auto remote = RunProgram({Cli(), "compress", Mobilenet(), "-o", scratch.Join("r.mlpackage"), "--palettize", "4", "--server",
                     server, "--report", scratch.Join("r.json")});
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  auto local = RunProgram({Cli(), "compress", Mobilenet(), "-o", scratch.Join("l.mlpackage"), "--palettize", "4", "--quiet"});
  ASSERT_EQ(local.exit_code, 0);
  for (const char* f : {"Manifest.json", "Data/com.apple.CoreML/model.mlmodel", "Data/com.apple.CoreML/weights/weight.bin"}) {
    EXPECT_EQ(*ReadFile(scratch.Join(std::string("r.mlpackage/") + f)), *ReadFile(scratch.Join(std::string("l.mlpackage/") + f))) << f;
  }
  auto remote_nn = RunProgram({Cli(), "compress", Edsr(), "-o", scratch.Join("e.mlmodel"), "--quantize", "uint8", "--quant-mode",
                        "linear", "--server", server});
  ASSERT_EQ(remote_nn.exit_code, 0) << remote_nn.err;
  EXPECT_TRUE(PathExists(scratch.Join("e.mlmodel")));
  auto remote_bad = RunProgram({Cli(), "compress", Golden16(), "-o", scratch.Join("x"), "--quantize", "int4", "--server", server});
  EXPECT_EQ(remote_bad.exit_code, 3) << remote_bad.err;
  EXPECT_FALSE(PathExists(scratch.Join("x")));
  auto remote_inspect = RunProgram({Cli(), "inspect", Golden16(), "--server", server, "--json"});
  EXPECT_EQ(remote_inspect.exit_code, 0) << remote_inspect.err;
  // SIGTERM: a clean, quick exit.
  EXPECT_EQ(daemon.Stop(SIGTERM), 0) << daemon.log();
  EXPECT_NE(daemon.log().find("stopped"), std::string::npos);
}

}  // namespace
}  // namespace coremlz::testing
