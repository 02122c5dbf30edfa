// `coremlz run` and `coremlz compare` as a user runs them: real processes on
// real models, .npy files in and out, checked against PyTorch's outputs.
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "execute/compare.h"
#include "execute/npy.h"
#include "format/package.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

std::string Cli() { return BinaryPath("clients/coremlz"); }

std::vector<float> ReadF32(const std::string& path) {
  auto bytes = ReadFile(path, 64 << 20);
  EXPECT_TRUE(bytes.ok()) << path;
  std::vector<float> v(bytes.ok() ? bytes->size() / 4 : 0);
  if (bytes.ok()) std::memcpy(v.data(), bytes->data(), v.size() * 4);
  return v;
}

google::protobuf::Struct Json(const std::string& text) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &s).ok()) << text;
  return s;
}

struct Reference {
  std::string model, input, output;
  execute::Shape input_shape;
};

TEST(ExecuteCliTest, RunMatchesPyTorchThroughNpyFiles) {
  const std::string refs = SharedDir() + "/reference_outputs";
  if (!PathExists(refs)) GTEST_SKIP() << "no " << refs;
  const Reference cases[] = {
      {"mobilenetv2_randinit", "input", "var_824", {1, 3, 224, 224}},
      {"transformer_encoder_randinit", "input", "var_375", {1, 32, 64}},
  };
  for (const Reference& r : cases) {
    ScratchDir scratch;
    const std::string package = ModelsDir() + "/" + r.model + "/" + r.model + ".mlpackage";
    ASSERT_TRUE(MakeDirectories(scratch.Join("in")).ok());
    ASSERT_TRUE(execute::WriteNpyFile(scratch.Join("in/" + r.input + ".npy"),
                                      execute::Tensor::Float(r.input_shape, ReadF32(refs + "/" + r.model + "/input_0.f32")))
                    .ok());
    auto run = RunProgram({Cli(), "run", package, "--inputs", scratch.Join("in"), "--outputs", scratch.Join("out")});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.out.find("not Core ML"), std::string::npos) << "labelled as the reference executor";
    auto out = execute::ReadNpyFile(scratch.Join("out/" + r.output + ".npy"));
    ASSERT_TRUE(out.ok()) << out.status();
    const std::vector<float> expected = ReadF32(refs + "/" + r.model + "/output_0.f32");
    auto c = execute::CompareOutputs(expected, out->floats());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_GE(c->psnr_db, 60) << r.model;
  }
}

TEST(ExecuteCliTest, CompareOrdersPalettizationsByBits) {
  ScratchDir scratch;
  const std::string model = ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage";
  if (!PathExists(model)) GTEST_SKIP() << "no " << model;
  double psnr[2] = {0, 0};
  int i = 0;
  for (const char* bits : {"4", "8"}) {
    const std::string out = scratch.Join(absl::StrCat("p", bits, ".mlpackage"));
    auto c = RunProgram({Cli(), "compress", model, "-o", out, "--palettize", bits, "--quiet"});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    auto cmp = RunProgram({Cli(), "compare", model, out, "--samples", "2", "--json"});
    ASSERT_EQ(cmp.exit_code, 0) << cmp.err;
    const auto j = Json(cmp.out);
    const auto& o = j.fields().at("outputs").list_value().values(0).struct_value().fields();
    EXPECT_EQ(o.at("name").string_value(), "var_824");
    psnr[i++] = o.at("psnr_db").number_value();
    EXPECT_GT(o.at("cosine").number_value(), 0.5);
    EXPECT_TRUE(o.count("top1_agreement")) << "class scores";
  }
  EXPECT_GT(psnr[1], psnr[0] + 10) << "8-bit palettes keep the outputs far closer than 4-bit";
  // A model compared with itself is exact.
  auto same = RunProgram({Cli(), "compare", model, model, "--samples", "1", "--json"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_TRUE(Json(same.out).fields().at("outputs").list_value().values(0).struct_value().fields().at("exact").bool_value());
}

TEST(ExecuteCliTest, SyntheticInputsAreReproducibleFromTheSeed) {
  ScratchDir scratch;
  const std::string model = SourceDir() + "/models/silero_vad/silero-vad-unified-v6.0.0.mlpackage";
  std::string outs[3];
  int k = 0;
  for (const char* seed : {"5", "5", "6"}) {
    const std::string dir = scratch.Join(absl::StrCat("o", k));
    auto run = RunProgram({Cli(), "run", model, "--seed", seed, "--outputs", dir});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    outs[k++] = ReadFile(dir + "/vad_output.npy", 1 << 20).value_or("missing");
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_NE(outs[0], outs[2]);
}

TEST(ExecuteCliTest, ClearErrors) {
  ScratchDir scratch;
  const std::string vad = scratch.Join("vad.mlpackage");
  CopyTree(SourceDir() + "/models/silero_vad/silero-vad-unified-v6.0.0.mlpackage", vad);
  // A missing input file names the input and its shape.
  ASSERT_TRUE(MakeDirectories(scratch.Join("in")).ok());
  auto missing = RunProgram({Cli(), "run", vad, "--inputs", scratch.Join("in")});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("audio_input"), std::string::npos) << missing.err;
  // A wrongly shaped input is refused, not run.
  ASSERT_TRUE(execute::WriteNpyFile(scratch.Join("in/audio_input.npy"), execute::Tensor::Float({1, 5}, std::vector<float>(5))).ok());
  ASSERT_TRUE(execute::WriteNpyFile(scratch.Join("in/hidden_state.npy"), execute::Tensor::Float({1, 128}, std::vector<float>(128))).ok());
  ASSERT_TRUE(execute::WriteNpyFile(scratch.Join("in/cell_state.npy"), execute::Tensor::Float({1, 128}, std::vector<float>(128))).ok());
  auto shaped = RunProgram({Cli(), "run", vad, "--inputs", scratch.Join("in")});
  EXPECT_EQ(shaped.exit_code, 2) << shaped.err;
  // Outputs are never written into the model.
  auto inside = RunProgram({Cli(), "run", vad, "--outputs", vad + "/Data"});
  EXPECT_EQ(inside.exit_code, 2) << inside.err;
  EXPECT_FALSE(PathExists(vad + "/Data/vad_output.npy"));
  // NeuralNetwork models run too (a small one).
  const std::string nn = ModelsDir() + "/mnist_swiftbrain/MNIST.mlmodel";
  if (PathExists(nn)) {
    auto run = RunProgram({Cli(), "run", nn});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.out.find("prediction"), std::string::npos) << run.out;
  }
  EXPECT_EQ(RunProgram({Cli(), "compare", vad}).exit_code, 1) << "two models needed";
}

}  // namespace
}  // namespace coremlz::testing

namespace coremlz::testing {
namespace {

// The PSNR of the first output in a compress report's output check.
double CheckedPsnr(const std::string& report_json, std::string* executor = nullptr) {
  const auto j = Json(report_json);
  if (!j.fields().count("output_check")) return -1;
  const auto& check = j.fields().at("output_check").struct_value().fields();
  if (executor) *executor = check.at("executor").string_value();
  if (check.at("outputs").list_value().values().empty()) return -1;
  return check.at("outputs").list_value().values(0).struct_value().fields().at("psnr_db").number_value();
}

TEST(ExecuteCliTest, CompressCheckGivesTheSameNumbersEmbeddedThroughCoremlzdAndARemoteWorker) {
  const std::string model = ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage";
  if (!PathExists(model)) GTEST_SKIP() << "no " << model;
  ScratchDir scratch;
  Daemon worker({BinaryPath("workers/coremlz-worker"), "--address", "127.0.0.1:0", "--metrics-address", "", "--workers", "1"},
                "coremlz-worker: serving gRPC on port ");
  ASSERT_TRUE(worker.ok()) << worker.log();
  Daemon front({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "", "--remote-workers",
                absl::StrCat("127.0.0.1:", worker.port())},
               "coremlzd: serving gRPC on port ");
  ASSERT_TRUE(front.ok()) << front.log();
  Daemon local({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "", "--workers", "1"},
               "coremlzd: serving gRPC on port ");
  ASSERT_TRUE(local.ok()) << local.log();

  double psnr[2] = {0, 0};
  int k = 0;
  for (const char* bits : {"4", "8"}) {
    std::vector<double> seen;
    for (const std::string& server : {std::string(), absl::StrCat("127.0.0.1:", local.port()),
                                     absl::StrCat("127.0.0.1:", front.port())}) {
      const std::string out = scratch.Join(absl::StrCat("m", bits, "_", seen.size(), ".mlpackage"));
      const std::string report = scratch.Join(absl::StrCat("r", bits, "_", seen.size(), ".json"));
      std::vector<std::string> argv = {Cli(), "compress", model, "-o", out, "--palettize", bits, "--check", "2",
                                       "--report", report, "--quiet"};
      if (!server.empty()) {
        argv.push_back("--server");
        argv.push_back(server);
      }
      auto run = RunProgram(argv);
      ASSERT_EQ(run.exit_code, 0) << server << ": " << run.err;
      std::string executor;
      seen.push_back(CheckedPsnr(ReadFile(report, 16 << 20).value_or("{}"), &executor));
      EXPECT_NE(executor.find("not Core ML"), std::string::npos) << executor;
    }
    // Embedded, through coremlzd, through a remote worker: the same numbers.
    EXPECT_GT(seen[0], 0);
    EXPECT_EQ(seen[0], seen[1]);
    EXPECT_EQ(seen[0], seen[2]);
    psnr[k++] = seen[0];
  }
  EXPECT_GT(psnr[1], psnr[0] + 10) << "8-bit keeps the outputs closer than 4-bit";
}

TEST(ExecuteCliTest, CompressCheckOnAModelItCannotRunSaysWhyWithoutFailing) {
  // MNIST with its softmax turned into a layer type the executor lacks
  // (simpleRecurrent).
  const std::string mnist = ModelsDir() + "/mnist_swiftbrain/MNIST.mlmodel";
  if (!PathExists(mnist)) GTEST_SKIP() << "no " << mnist;
  ScratchDir scratch;
  auto spec = format::ParseModelSpec(ReadFile(mnist).value_or(""), "MNIST");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto* last = spec->mutable_neuralnetwork()->mutable_layers(spec->neuralnetwork().layers_size() - 1);
  last->GetReflection()->MutableUnknownFields(last)->Clear();
  last->GetReflection()->MutableUnknownFields(last)->AddLengthDelimited(400, "");
  const std::string nn = scratch.Join("unrunnable.mlmodel");
  ASSERT_TRUE(WriteFileAtomically(nn, format::SerializeModelSpec(*spec)).ok());
  auto run = RunProgram({Cli(), "compress", nn, "-o", scratch.Join("e.mlmodel"), "--fp16", "--check", "--report",
                         scratch.Join("r.json")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("not run:"), std::string::npos) << run.out;
  const auto j = Json(ReadFile(scratch.Join("r.json"), 1 << 20).value_or("{}"));
  EXPECT_NE(j.fields().at("output_check").struct_value().fields().at("error").string_value().find("NeuralNetwork"),
            std::string::npos);
}

}  // namespace
}  // namespace coremlz::testing

namespace coremlz::testing {
namespace {

// Every file under a package directory: relative path -> bytes.
std::map<std::string, std::string> PackageFiles(const std::string& dir) {
  std::map<std::string, std::string> out;
  auto files = format::ListPackageFiles(dir);
  EXPECT_TRUE(files.ok()) << files.status();
  if (!files.ok()) return out;
  for (const std::string& rel : *files) out[rel] = ReadFile(JoinPath(dir, rel), 64 << 20).value_or("");
  return out;
}

// A NeuralNetwork inside an .mlpackage (PoseNet, as Xcode wrapped it) through
// the CLI as a user runs it: inspect, compress with --check embedded and
// through a real coremlzd (the same package back, the same numbers), and run
// the result.
TEST(ExecuteCliTest, NeuralNetworkPackageEmbeddedAndThroughCoremlzd) {
  const std::string model = ModelsDir() + "/posenet_mobilenet075_fp16/PoseNetMobileNet075S16FP16.mlpackage";
  if (!PathExists(model)) GTEST_SKIP() << "no " << model;
  ScratchDir scratch;
  auto inspect = RunProgram({Cli(), "inspect", model, "--json"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(Json(inspect.out).fields().at("kind").string_value(), "neuralnetwork");

  Daemon daemon({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "", "--workers", "1"},
                "coremlzd: serving gRPC on port ");
  ASSERT_TRUE(daemon.ok()) << daemon.log();
  std::vector<std::string> outs;
  std::vector<double> psnr;
  for (const std::string& server : {std::string(), absl::StrCat("127.0.0.1:", daemon.port())}) {
    const std::string out = scratch.Join(absl::StrCat("posenet", outs.size(), ".mlpackage"));
    const std::string report = scratch.Join(absl::StrCat("r", outs.size(), ".json"));
    std::vector<std::string> argv = {Cli(), "compress", model, "-o", out, "--quantize", "int8", "--check", "1",
                                     "--report", report, "--quiet"};
    if (!server.empty()) {
      argv.push_back("--server");
      argv.push_back(server);
    }
    auto run = RunProgram(argv);
    ASSERT_EQ(run.exit_code, 0) << server << ": " << run.err;
    const std::string text = ReadFile(report, 16 << 20).value_or("{}");
    EXPECT_EQ(Json(text).fields().at("model_kind").string_value(), "neuralnetwork");
    psnr.push_back(CheckedPsnr(text));
    outs.push_back(out);
  }
  EXPECT_GT(psnr[0], 20);
  EXPECT_EQ(psnr[0], psnr[1]);
  const auto embedded = PackageFiles(outs[0]);
  const auto remote = PackageFiles(outs[1]);
  EXPECT_EQ(embedded.size(), 4u) << "Manifest.json, the spec and two overlays";
  EXPECT_TRUE(embedded == remote) << "coremlzd returned a different package";
  EXPECT_EQ(embedded.at("Manifest.json"), ReadFile(model + "/Manifest.json").value_or(""));

  auto run = RunProgram({Cli(), "run", outs[1]});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("heatmap"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace coremlz::testing
