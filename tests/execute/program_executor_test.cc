// End to end: the shared models against PyTorch's outputs, the golden
// originals and their compressed forms through the same executor, and the
// executor's errors (unimplemented ops, malformed programs, bad inputs).
#include "execute/program_executor.h"

#include <dirent.h>

#include <cmath>
#include <fstream>
#include <random>

#include "absl/strings/match.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "execute/compare.h"
#include "execute/loaded_model.h"
#include "format/mil_program.h"
#include "format/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::execute {
namespace {

namespace MIL = CoreML::Specification::MILSpec;

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  in.seekg(0, std::ios::end);
  const size_t bytes = in.tellg();
  in.seekg(0);
  std::vector<float> v(bytes / 4);
  in.read(reinterpret_cast<char*>(v.data()), bytes);
  return v;
}

// Random inputs of the declared shapes (unknown dims as 1): floats in
// [-1, 1), integers (token ids) in [0, 32).
std::map<std::string, Tensor> RandomInputs(const ProgramExecutor& ex, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::map<std::string, Tensor> in;
  for (const InputDecl& d : ex.inputs()) {
    if (d.is_state) continue;
    Shape s = d.shape;
    for (int64_t& v : s) v = v < 0 ? 1 : v;
    if (d.dtype == DType::kInt32) {
      std::vector<int32_t> ids(NumElements(s));
      for (int32_t& v : ids) v = static_cast<int32_t>(rng() % 32);
      in[d.name] = Tensor::Int(s, std::move(ids));
      continue;
    }
    std::vector<float> values(NumElements(s));
    for (float& v : values) v = u(rng);
    in[d.name] = Tensor::Float(s, std::move(values));
  }
  return in;
}

struct ReferenceModel {
  std::string name, input, output;
  Shape input_shape;
  int64_t classes;
};

class ReferenceOutputsTest : public ::testing::TestWithParam<ReferenceModel> {};

TEST_P(ReferenceOutputsTest, EveryCaseAtLeast60Db) {
  const ReferenceModel& m = GetParam();
  const std::string dir = testing::SharedDir() + "/reference_outputs/" + m.name;
  auto package = format::MlPackage::Open(testing::ModelsDir() + "/" + m.name + "/" + m.name + ".mlpackage");
  ASSERT_TRUE(package.ok()) << package.status();
  auto ex = ProgramExecutor::Load(package->get());
  ASSERT_TRUE(ex.ok()) << ex.status();
  for (int i = 0; i < 3; ++i) {
    std::map<std::string, Tensor> inputs;
    inputs[m.input] = Tensor::Float(m.input_shape, ReadF32(dir + "/input_" + std::to_string(i) + ".f32"));
    RunStats stats;
    auto out = (*ex)->Run(inputs, &stats);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->count(m.output), 1u);
    const Tensor& got = out->at(m.output);
    const std::vector<float> want = ReadF32(dir + "/output_" + std::to_string(i) + ".f32");
    auto c = CompareOutputs(want, got.floats());
    ASSERT_TRUE(c.ok()) << c.status();
    auto k = CompareClassScores(want, got.floats(), m.classes);
    ASSERT_TRUE(k.ok());
    std::printf("%s case %d: PSNR %.2f dB, SNR %.2f dB, cosine %.9f, max abs err %.3g, top-1 %.3f, top-5 %.3f, KL %.3g; "
                "%lld ops, at most %lld intermediates (%lld bytes) alive\n",
                m.name.c_str(), i, c->psnr_db, c->snr_db, c->cosine, c->max_abs_error, k->top1_agreement,
                k->top5_overlap, k->mean_kl, static_cast<long long>(stats.ops_run),
                static_cast<long long>(stats.peak_live_tensors), static_cast<long long>(stats.peak_live_bytes));
    EXPECT_GE(c->psnr_db, 60.0) << "case " << i;
    // Intermediates are freed after their last use: only a handful are
    // ever alive at once (a residual branch and its input).
    EXPECT_LE(stats.peak_live_tensors, 8);
    EXPECT_GT(stats.second_largest_intermediate_bytes, 0);
    EXPECT_LE(stats.second_largest_intermediate_bytes, stats.largest_intermediate_bytes);
    EXPECT_LE(stats.largest_intermediate_bytes + stats.second_largest_intermediate_bytes, stats.peak_live_bytes * 2);
    EXPECT_LE(stats.largest_intermediate_bytes, stats.peak_live_bytes);
    if (m.name == "mobilenetv2_randinit") {
      // MobileNetV2's widest activation is the first block's 6x expansion
      // at 112x112: 96 channels of float32.
      EXPECT_EQ(stats.largest_intermediate_bytes, int64_t{96} * 112 * 112 * 4);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, ReferenceOutputsTest,
                         ::testing::Values(ReferenceModel{"mobilenetv2_randinit", "input", "var_824", {1, 3, 224, 224}, 1000},
                                           ReferenceModel{"transformer_encoder_randinit", "input", "var_375", {1, 32, 64}, 1000}),
                         [](const auto& info) { return info.param.name; });

std::vector<std::string> GoldenPackages() {
  std::vector<std::string> out;
  DIR* d = opendir(testing::GoldenDir().c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (absl::EndsWith(name, ".mlpackage")) out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::map<std::string, Tensor>> RunPackage(const std::string& path, const std::map<std::string, Tensor>* inputs,
                                                         std::map<std::string, Tensor>* used_inputs = nullptr) {
  auto package = format::MlPackage::Open(path);
  if (!package.ok()) return package.status();
  auto ex = ProgramExecutor::Load(package->get());
  if (!ex.ok()) return ex.status();
  std::map<std::string, Tensor> in = inputs ? *inputs : RandomInputs(**ex, 7);
  if (used_inputs) *used_inputs = in;
  return (*ex)->Run(in);
}

// Every compressed golden package runs through the executor, its constexpr
// ops decoded at load, and gives exactly what the same program gives with
// coremltools' own dense weights (golden/<case>.decompressed) put in place
// of the constexpr ops: the compressed form runs the same code as a dense one.
// Closeness to the original is printed; it measures the compression, not the
// executor (2-bit palettization and 50% pruning of this small random model
// move its outputs a lot), so it is only bounded loosely.
TEST(CompressedModels, GoldenPackagesMatchTheirDenseWeights) {
  const std::vector<std::string> packages = GoldenPackages();
  ASSERT_GE(packages.size(), 12u);
  int checked = 0;
  for (const std::string& name : packages) {
    if (absl::StrContains(name, "original")) continue;
    SCOPED_TRACE(name);
    const std::string stem = name.substr(0, name.size() - std::string(".mlpackage").size());
    const std::string decompressed = testing::GoldenDir() + "/" + stem + ".decompressed";
    auto package = format::MlPackage::Open(testing::GoldenDir() + "/" + name);
    ASSERT_TRUE(package.ok()) << package.status();
    MIL::Program dense = (*package)->model().mlprogram();
    MIL::Block& block = dense.mutable_functions()->at("main").mutable_block_specializations()->begin()->second;
    int replaced = 0;
    for (MIL::Operation& op : *block.mutable_operations()) {
      if (!format::IsConstexprOp(op.type()) || op.outputs_size() != 1) continue;
      const std::string file = decompressed + "/" + op.outputs(0).name() + ".f32";
      if (!std::ifstream(file).good()) continue;
      auto info = format::ReadTensorType(op.outputs(0).type());
      ASSERT_TRUE(info.ok());
      const std::vector<float> values = ReadF32(file);
      format::Tensor t{format::ElementType::kFloat32, info->shape,
                       std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4)};
      auto val = format::EncodeImmediateTensor(format::View(t));
      ASSERT_TRUE(val.ok()) << val.status();
      const std::string out_name = op.outputs(0).name();
      op.Clear();
      op.set_type("const");
      auto* out = op.add_outputs();
      out->set_name(out_name);
      *out->mutable_type() = format::MakeTensorType(format::ElementType::kFloat32, info->shape);
      (*op.mutable_attributes())["val"] = *val;
      ++replaced;
    }
    EXPECT_EQ(replaced, 2);
    engine::PackageValueReader reader(package->get());
    auto dense_ex = ProgramExecutor::Load(dense, &reader, "main");
    ASSERT_TRUE(dense_ex.ok()) << dense_ex.status();
    auto compressed_ex = ProgramExecutor::Load(package->get());
    ASSERT_TRUE(compressed_ex.ok()) << compressed_ex.status();
    const auto inputs = RandomInputs(**compressed_ex, 7);
    auto want = (*dense_ex)->Run(inputs);
    auto got = (*compressed_ex)->Run(inputs);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    const std::string original = testing::GoldenDir() + "/" + name.substr(0, 5) + "_original.mlpackage";
    auto ref = RunPackage(original, &inputs);
    ASSERT_TRUE(ref.ok()) << ref.status();
    for (const auto& [out_name, t] : *want) {
      const Tensor& g = got->at(out_name);
      ASSERT_EQ(g.shape(), t.shape());
      for (int64_t i = 0; i < t.size(); ++i) ASSERT_EQ(g.floats()[i], t.floats()[i]) << out_name << "[" << i << "]";
      auto c = CompareOutputs(ref->at(out_name).floats(), g.floats());
      ASSERT_TRUE(c.ok());
      std::printf("%-48s vs original: PSNR %6.2f dB, SNR %6.2f dB, cosine %.6f\n", name.c_str(), c->psnr_db, c->snr_db,
                  c->cosine);
      EXPECT_GT(c->cosine, 0.5);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 11);
}

// A model compressed by our engine in the test runs through the same code.
TEST(CompressedModels, EngineOutputRunsThroughTheExecutor) {
  testing::ScratchDir scratch;
  const std::string original = testing::GoldenDir() + "/ios18_original.mlpackage";
  struct Case {
    const char* yaml;
    double min_psnr;
  };
  for (const Case& c : {Case{"config_type: OpLinearQuantizerConfig\nglobal_config: {mode: linear_symmetric, dtype: int8, "
                             "granularity: per_channel, weight_threshold: 512}\n", 30},
                        Case{"config_type: OpPalettizerConfig\nglobal_config: {mode: kmeans, nbits: 4, weight_threshold: 512}\n", 15}}) {
    auto config = engine::ParseCompressionConfig(c.yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    const std::string out = scratch.Join("out.mlpackage");
    auto report = engine::CompressModelPath(original, out, *config, {}, {engine::WriteOptions{true}});
    ASSERT_TRUE(report.ok()) << report.status();
    std::map<std::string, Tensor> inputs;
    auto ref = RunPackage(original, nullptr, &inputs);
    ASSERT_TRUE(ref.ok()) << ref.status();
    auto got = RunPackage(out, &inputs);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const auto& [name, t] : *ref) {
      auto cmp = CompareOutputs(t.floats(), got->at(name).floats());
      std::printf("engine-compressed ios18_original (%s): PSNR %.2f dB, cosine %.6f\n",
                  absl::StrContains(c.yaml, "Palettizer") ? "palettize 4-bit k-means" : "int8 per-channel", cmp->psnr_db,
                  cmp->cosine);
      EXPECT_GE(cmp->psnr_db, c.min_psnr);
    }
  }
}

// The shared Silero VAD (conv + LSTM) and its three compressed variants,
// made by others, on the same random audio: the variants land near the
// original (the 4-bit palettized one much less near: its LSTM states keep a
// cosine of about 0.82).
TEST(CompressedModels, SileroVariantsRunCloseToTheOriginal) {
  const std::string models = testing::ModelsDir();
  std::map<std::string, Tensor> inputs;
  auto ref = RunPackage(models + "/silero_vad_unified/silero-vad-unified-v6.0.0.mlpackage", nullptr, &inputs);
  ASSERT_TRUE(ref.ok()) << ref.status();
  for (const std::string variant : {"silero_vad_int8/unified_int8", "silero_vad_palette4/unified_palette_4bit",
                                    "silero_vad_pruned_int8/unified_pruned_int8"}) {
    auto got = RunPackage(models + "/" + variant + ".mlpackage", &inputs);
    ASSERT_TRUE(got.ok()) << variant << ": " << got.status();
    for (const auto& [name, t] : *ref) {
      ASSERT_EQ(got->count(name), 1u) << name;
      auto c = CompareOutputs(t.floats(), got->at(name).floats());
      ASSERT_TRUE(c.ok());
      std::printf("%-45s %-12s vs original: PSNR %6.2f dB, cosine %.6f\n", variant.c_str(), name.c_str(), c->psnr_db, c->cosine);
      EXPECT_GT(c->cosine, absl::StrContains(variant, "palette4") ? 0.75 : 0.99) << variant << " " << name;
    }
  }
}

// ---- state ---------------------------------------------------------------

// golden/llm_like: prefill (8 tokens) then decode (1 token) sharing a KV
// cache state; the compressed packages run the same way.
TEST(StatefulModels, KvCachePersistsAcrossRunsOfOneSession) {
  const std::string dir = testing::GoldenDir() + "/llm_like/";
  std::map<std::string, Tensor> reference_logits;
  for (const std::string name : {"llm_like_multifunction", "llm_like_multifunction_int4_block32",
                                 "llm_like_multifunction_palettize4_grouped16"}) {
    SCOPED_TRACE(name);
    auto package = format::MlPackage::Open(dir + name + ".mlpackage");
    ASSERT_TRUE(package.ok()) << package.status();
    auto prefill = ProgramExecutor::Load(package->get(), "prefill");
    ASSERT_TRUE(prefill.ok()) << prefill.status();
    auto decode = ProgramExecutor::Load(package->get());  // the default function
    ASSERT_TRUE(decode.ok()) << decode.status();
    EXPECT_EQ((*decode)->function(), "decode");
    EXPECT_TRUE((*decode)->is_stateful());

    Session session;
    auto p = (*prefill)->Run(RandomInputs(**prefill, 11), &session);
    ASSERT_TRUE(p.ok()) << p.status();
    const Tensor* cache = session.state("cache");
    ASSERT_NE(cache, nullptr);
    double energy = 0;
    for (float v : cache->floats()) energy += v * v;
    EXPECT_GT(energy, 0) << "prefill wrote the cache";

    const auto token = RandomInputs(**decode, 12);
    Session after_prefill = session;
    auto d1 = (*decode)->Run(token, &session);
    ASSERT_TRUE(d1.ok()) << d1.status();
    auto d1_again = (*decode)->Run(token, &after_prefill);
    ASSERT_TRUE(d1_again.ok());
    const Tensor& logits = d1->begin()->second;
    EXPECT_EQ(logits.floats(), d1_again->begin()->second.floats()) << "same state, same result";
    auto cold = (*decode)->Run(token);  // a fresh, zero state
    ASSERT_TRUE(cold.ok());
    EXPECT_NE(logits.floats(), cold->begin()->second.floats()) << "the cache changes the result";
    auto cold_again = (*decode)->Run(token);
    EXPECT_EQ(cold->begin()->second.floats(), cold_again->begin()->second.floats());

    if (reference_logits.empty()) {
      reference_logits = *d1;
    } else {
      auto c = CompareOutputs(reference_logits.begin()->second.floats(), logits.floats());
      ASSERT_TRUE(c.ok());
      std::printf("%s decode after prefill vs original: PSNR %.2f dB, cosine %.6f\n", name.c_str(), c->psnr_db, c->cosine);
      EXPECT_GT(c->cosine, 0.95);
    }
  }
}

TEST(StatefulModels, StateOfTheWrongShapeIsInvalidArgument) {
  auto package = format::MlPackage::Open(testing::GoldenDir() + "/llm_like/llm_like_multifunction.mlpackage");
  ASSERT_TRUE(package.ok());
  auto decode = ProgramExecutor::Load(package->get());
  ASSERT_TRUE(decode.ok());
  Session session;
  session.SetState("cache", Tensor::Zeros(DType::kFloat32, {2, 2}));
  EXPECT_EQ((*decode)->Run(RandomInputs(**decode, 1), &session).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- errors ----------------------------------------------------------------

class ExecutorErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = format::MlPackage::Open(testing::GoldenDir() + "/ios16_original.mlpackage");
    ASSERT_TRUE(p.ok()) << p.status();
    package_ = std::move(*p);
    program_ = package_->model().mlprogram();
  }
  MIL::Block& Block() { return program_.mutable_functions()->at("main").mutable_block_specializations()->begin()->second; }
  absl::StatusOr<std::unique_ptr<ProgramExecutor>> Load(const std::string& function = "main") {
    engine::PackageValueReader reader(package_.get());
    return ProgramExecutor::Load(program_, &reader, function);
  }
  std::unique_ptr<format::MlPackage> package_;
  MIL::Program program_;
};

TEST_F(ExecutorErrorsTest, UnimplementedOpIsNamedWithItsLocation) {
  int index = -1;
  for (int i = 0; i < Block().operations_size(); ++i) {
    if (Block().operations(i).type() == "relu") index = i;
  }
  ASSERT_GE(index, 0);
  Block().mutable_operations(index)->set_type("frobnicate");
  auto ex = Load();
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.status().code(), absl::StatusCode::kUnimplemented);
  const std::string msg(ex.status().message());
  EXPECT_TRUE(absl::StrContains(msg, "(type frobnicate)")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "in function main, block CoreML")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "op #" + std::to_string(index))) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "is not implemented by the reference executor")) << msg;
}

TEST_F(ExecutorErrorsTest, MalformedProgramsAreInvalidArgument) {
  // An input naming a value that does not exist.
  for (MIL::Operation& op : *Block().mutable_operations()) {
    if (op.type() != "relu") continue;
    op.mutable_inputs()->at("x").mutable_arguments(0)->set_name("no_such_value");
  }
  auto ex = Load();
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.status().code(), absl::StatusCode::kInvalidArgument) << ex.status();
  EXPECT_TRUE(absl::StrContains(ex.status().message(), "no_such_value"));
  EXPECT_EQ(Load("nope").status().code(), absl::StatusCode::kInvalidArgument);
}

// Every op of the program with each of its inputs removed in turn, and with
// its declared output shape changed: the executor answers with a status
// (INVALID_ARGUMENT for a missing required input or a wrong declaration;
// OK only when the input was optional), never a crash or a wrong shape.
TEST_F(ExecutorErrorsTest, DamagedOpsGiveAStatusNotACrash) {
  const MIL::Program pristine = program_;
  int damaged = 0, refused = 0;
  for (int i = 0; i < Block().operations_size(); ++i) {
    const MIL::Operation& op = Block().operations(i);
    if (op.type() == "const") continue;
    std::vector<std::string> names;
    for (const auto& [name, arg] : op.inputs()) names.push_back(name);
    for (int variant = 0; variant <= static_cast<int>(names.size()); ++variant) {
      program_ = pristine;
      MIL::Operation* target = Block().mutable_operations(i);
      if (variant < static_cast<int>(names.size())) {
        target->mutable_inputs()->erase(names[variant]);
      } else {
        // Declare an output one longer in its first dim.
        auto* dims = target->mutable_outputs(0)->mutable_type()->mutable_tensortype()->mutable_dimensions();
        if (dims->empty()) continue;
        dims->Mutable(0)->mutable_constant()->set_size(dims->Get(0).constant().size() + 1);
      }
      ++damaged;
      auto ex = Load();
      absl::Status status = ex.status();
      if (ex.ok()) status = (*ex)->Run(RandomInputs(**ex, 2)).status();
      if (!status.ok()) {
        ++refused;
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << op.type() << " variant " << variant << ": " << status;
      }
    }
  }
  EXPECT_GT(damaged, 10);
  EXPECT_GT(refused, damaged / 2);
}

TEST_F(ExecutorErrorsTest, BadInputsAreInvalidArgument) {
  auto ex = Load();
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto good = RandomInputs(**ex, 1);
  EXPECT_TRUE((*ex)->Run(good).ok());
  EXPECT_EQ((*ex)->Run({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto extra = good;
  extra["bogus"] = Tensor::FloatScalar(1);
  EXPECT_EQ((*ex)->Run(extra).status().code(), absl::StatusCode::kInvalidArgument);
  auto wrong_shape = good;
  Tensor& t = wrong_shape.begin()->second;
  t = Tensor::Float({t.size()}, std::vector<float>(t.floats().begin(), t.floats().end()));
  EXPECT_EQ((*ex)->Run(wrong_shape).status().code(), absl::StatusCode::kInvalidArgument);
  auto wrong_type = good;
  wrong_type.begin()->second = Tensor::Int(good.begin()->second.shape(), std::vector<int32_t>(good.begin()->second.size()));
  EXPECT_EQ((*ex)->Run(wrong_type).status().code(), absl::StatusCode::kInvalidArgument);
}

// Not an assertion on coverage: prints what the executor does with every
// shared package (the list of ops still missing).
TEST(SharedModels, Survey) {
  std::vector<std::string> paths;
  for (const std::string& root : {testing::ModelsDir(), testing::GoldenDir(), testing::GoldenDir() + "/llm_like"}) {
    DIR* d = opendir(root.c_str());
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name[0] == '.') continue;
      const std::string path = root + "/" + name;
      if (absl::EndsWith(name, ".mlpackage") || absl::EndsWith(name, ".mlmodel")) paths.push_back(path);
      DIR* sub = root == testing::ModelsDir() ? opendir(path.c_str()) : nullptr;
      if (!sub) continue;
      while (dirent* f = readdir(sub)) {
        const std::string n = f->d_name;
        if (absl::EndsWith(n, ".mlpackage") || absl::EndsWith(n, ".mlmodel")) paths.push_back(path + "/" + n);
      }
      closedir(sub);
    }
    closedir(d);
  }
  std::sort(paths.begin(), paths.end());
  // A NeuralNetwork: loading finds any layer the executor lacks; the runs
  // are nn_models_test's (EDSR takes seconds).
  auto survey_neural_network = [](const std::string& path, const std::string& label) {
    auto model = LoadModel(path, "");
    const std::string result = model.ok() ? "NeuralNetwork: loads" : std::string(model.status().message());
    std::printf("%-90s %s\n", label.c_str(), result.c_str());
  };
  for (const std::string& path : paths) {
    const std::string label = path.substr(testing::SharedDir().size() + 1);
    if (absl::EndsWith(path, ".mlmodel")) {
      survey_neural_network(path, label);
      continue;
    }
    auto package = format::MlPackage::Open(path);
    if (!package.ok()) {
      std::printf("%-90s open: %s\n", label.c_str(), std::string(package.status().message()).c_str());
      continue;
    }
    if (!(*package)->model().has_mlprogram()) {
      survey_neural_network(path, label);
      continue;
    }
    for (const auto& [fn, f] : (*package)->model().mlprogram().functions()) {
      auto ex = ProgramExecutor::Load(package->get(), fn);
      std::string result;
      if (!ex.ok()) {
        result = std::string(ex.status().message());
      } else {
        auto out = (*ex)->Run(RandomInputs(**ex, 3)).status();
        result = out.ok() ? "runs" : std::string(out.message());
      }
      std::printf("%-90s [%s] %s\n", label.c_str(), fn.c_str(), result.c_str());
    }
  }
}

}  // namespace
}  // namespace coremlz::execute
