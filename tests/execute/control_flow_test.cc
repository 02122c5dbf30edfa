// while_loop, cond and the list ops, on small programs built here whose
// results are known in closed form, and on DTLN (a TensorFlow LSTM model
// whose loops carry TensorArrays as MIL lists); and classify, whose class
// list is the one literal list a program binds to an op.
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/decompress.h"
#include "execute/program_executor.h"
#include "execute/synthetic_inputs.h"
#include "format/package.h"
#include "format/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::execute {
namespace {

namespace MIL = CoreML::Specification::MILSpec;

// Immediate values only: the programs here have no weight file.
class ImmediateReader : public engine::ValueReader {
 public:
  absl::StatusOr<format::Tensor> Read(const MIL::Value& value) override { return format::DecodeImmediateTensor(value); }
};

MIL::ValueType TensorType(MIL::DataType dtype, std::vector<int64_t> shape) {
  MIL::ValueType t;
  t.mutable_tensortype()->set_datatype(dtype);
  t.mutable_tensortype()->set_rank(static_cast<int64_t>(shape.size()));
  for (int64_t d : shape) t.mutable_tensortype()->add_dimensions()->mutable_constant()->set_size(d);
  return t;
}
MIL::ValueType Float(std::vector<int64_t> shape) { return TensorType(MIL::FLOAT32, std::move(shape)); }
MIL::ValueType Int() { return TensorType(MIL::INT32, {}); }
MIL::ValueType Bool() { return TensorType(MIL::BOOL, {}); }
MIL::ValueType List(std::vector<int64_t> element_shape) {
  MIL::ValueType t;
  *t.mutable_listtype()->mutable_type() = Float(std::move(element_shape));
  t.mutable_listtype()->mutable_length()->mutable_unknown();
  return t;
}

MIL::Value IntValue(int32_t v) {
  MIL::Value value;
  *value.mutable_type() = Int();
  value.mutable_immediatevalue()->mutable_tensor()->mutable_ints()->add_values(v);
  return value;
}
MIL::Value FloatValue(float v) {
  MIL::Value value;
  *value.mutable_type() = Float({});
  value.mutable_immediatevalue()->mutable_tensor()->mutable_floats()->add_values(v);
  return value;
}
MIL::Value StringValue(const std::string& s) {
  MIL::Value value;
  *value.mutable_type() = TensorType(MIL::STRING, {});
  value.mutable_immediatevalue()->mutable_tensor()->mutable_strings()->add_values(s);
  return value;
}

struct Arg {
  std::string input;
  std::vector<std::string> names;  // or one immediate value
  std::optional<MIL::Value> value;
};

MIL::Operation* AddOp(MIL::Block* block, const std::string& type, const std::vector<Arg>& args,
                      const std::vector<std::pair<std::string, MIL::ValueType>>& outputs) {
  MIL::Operation* op = block->add_operations();
  op->set_type(type);
  for (const Arg& a : args) {
    MIL::Argument& arg = (*op->mutable_inputs())[a.input];
    for (const std::string& n : a.names) arg.add_arguments()->set_name(n);
    if (a.value) *arg.add_arguments()->mutable_value() = *a.value;
  }
  for (const auto& [name, type_of] : outputs) {
    auto* o = op->add_outputs();
    o->set_name(name);
    *o->mutable_type() = type_of;
  }
  return op;
}

void AddInput(MIL::Block* block, const std::string& name, const MIL::ValueType& type) {
  auto* in = block->add_inputs();
  in->set_name(name);
  *in->mutable_type() = type;
}

struct Program {
  MIL::Program program;
  MIL::Block* main;
  Program(const std::vector<std::pair<std::string, MIL::ValueType>>& inputs, const std::string& opset = "CoreML5") {
    program.set_version(1);
    MIL::Function& fn = (*program.mutable_functions())["main"];
    fn.set_opset(opset);
    for (const auto& [name, type] : inputs) {
      auto* in = fn.add_inputs();
      in->set_name(name);
      *in->mutable_type() = type;
    }
    main = &(*fn.mutable_block_specializations())[opset];
  }
  absl::StatusOr<std::unique_ptr<ProgramExecutor>> Load() const {
    ImmediateReader reader;
    return ProgramExecutor::Load(program, &reader, "main");
  }
  absl::StatusOr<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& inputs) {
    auto ex = Load();
    if (!ex.ok()) return ex.status();
    return (*ex)->Run(inputs);
  }
};

// i = 0; acc = x; while (i < n) { acc = acc * 2; i = i + 1 }  ->  x * 2^n, n
Program DoublingLoop() {
  Program p({{"x", Float({3})}, {"n", Int()}});
  MIL::Operation* zero = AddOp(p.main, "const", {}, {{"zero", Int()}});
  (*zero->mutable_attributes())["val"] = IntValue(0);
  MIL::Operation* loop = AddOp(p.main, "while_loop", {{"loop_vars", {"zero", "x"}}},
                               {{"i_out", Int()}, {"acc_out", Float({3})}});
  MIL::Block* cond = loop->add_blocks();
  AddInput(cond, "i", Int());
  AddInput(cond, "acc", Float({3}));
  AddOp(cond, "less", {{"x", {"i"}}, {"y", {"n"}}}, {{"go", Bool()}});
  cond->add_outputs("go");
  MIL::Block* body = loop->add_blocks();
  AddInput(body, "i", Int());  // the same names as the condition's: converters do that
  AddInput(body, "acc", Float({3}));
  AddOp(body, "add", {{"x", {"i"}}, {"y", {}, IntValue(1)}}, {{"i_next", Int()}});
  AddOp(body, "mul", {{"x", {"acc"}}, {"y", {}, FloatValue(2)}}, {{"acc_next", Float({3})}});
  body->add_outputs("i_next");
  body->add_outputs("acc_next");
  p.main->add_outputs("acc_out");
  p.main->add_outputs("i_out");
  return p;
}

TEST(WhileLoop, RunsTheBodyUntilTheConditionFails) {
  Program p = DoublingLoop();
  for (int n : {0, 1, 5}) {
    auto out = p.Run({{"x", Tensor::Float({3}, {1, -2, 0.5f})}, {"n", Tensor::IntScalar(n)}});
    ASSERT_TRUE(out.ok()) << out.status();
    const float k = static_cast<float>(1 << n);
    EXPECT_EQ(out->at("acc_out").floats()[0], k);
    EXPECT_EQ(out->at("acc_out").floats()[1], -2 * k);
    EXPECT_EQ(out->at("acc_out").floats()[2], 0.5f * k);
    EXPECT_EQ(out->at("i_out").ints()[0], n);
  }
}

TEST(WhileLoop, ALoopThatNeverEndsIsStopped) {
  Program p = DoublingLoop();
  // acc doubles to inf and the condition i < 2^31-1 outlives the cap.
  auto out = p.Run({{"x", Tensor::Float({3}, {1, 1, 1})}, {"n", Tensor::IntScalar(2147483647)}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_TRUE(absl::StrContains(out.status().message(), "while_loop")) << out.status();
}

TEST(WhileLoop, MalformedLoopsAreInvalidArgument) {
  Program p = DoublingLoop();
  p.main->mutable_operations(1)->mutable_blocks(1)->clear_outputs();  // the body returns nothing
  auto out = p.Run({{"x", Tensor::Float({3}, {1, 1, 1})}, {"n", Tensor::IntScalar(2)}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  Program q = DoublingLoop();
  q.main->mutable_operations(1)->mutable_blocks()->RemoveLast();  // no body
  out = q.Run({{"x", Tensor::Float({3}, {1, 1, 1})}, {"n", Tensor::IntScalar(2)}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnimplemented) << out.status();
}

// A stateful loop (iOS18 states): a cache starts at zero;
//   i = 0; y = x; while (i < n) { s = read_state(cache); y = s * w + y;
//   write_state(cache, y); i = i + 1 }; out = read_state(cache) * v
// w is read only inside the body, v only after the loop.
Program StatefulLoop(const std::vector<float>& w, const std::vector<float>& v) {
  MIL::ValueType state;
  *state.mutable_statetype()->mutable_wrappedtype() = Float({3});
  Program p({{"x", Float({3})}, {"n", Int()}, {"cache", state}}, "CoreML8");
  auto constant = [&](const std::string& name, const std::vector<float>& values) {
    MIL::Operation* c = AddOp(p.main, "const", {}, {{name, Float({3})}});
    MIL::Value value;
    *value.mutable_type() = Float({3});
    for (float f : values) value.mutable_immediatevalue()->mutable_tensor()->mutable_floats()->add_values(f);
    (*c->mutable_attributes())["val"] = value;
  };
  constant("w", w);
  constant("v", v);
  MIL::Operation* zero = AddOp(p.main, "const", {}, {{"zero", Int()}});
  (*zero->mutable_attributes())["val"] = IntValue(0);
  MIL::Operation* loop = AddOp(p.main, "while_loop", {{"loop_vars", {"zero", "x"}}},
                               {{"i_out", Int()}, {"y_out", Float({3})}});
  MIL::Block* cond = loop->add_blocks();
  AddInput(cond, "i", Int());
  AddInput(cond, "y", Float({3}));
  AddOp(cond, "less", {{"x", {"i"}}, {"y", {"n"}}}, {{"go", Bool()}});
  cond->add_outputs("go");
  MIL::Block* body = loop->add_blocks();
  AddInput(body, "i", Int());
  AddInput(body, "y", Float({3}));
  AddOp(body, "read_state", {{"input", {"cache"}}}, {{"s", Float({3})}});
  AddOp(body, "mul", {{"x", {"s"}}, {"y", {"w"}}}, {{"sw", Float({3})}});
  AddOp(body, "add", {{"x", {"sw"}}, {"y", {"y"}}}, {{"y_next", Float({3})}});
  AddOp(body, "write_state", {{"input", {"cache"}}, {"data", {"y_next"}}}, {});
  AddOp(body, "add", {{"x", {"i"}}, {"y", {}, IntValue(1)}}, {{"i_next", Int()}});
  body->add_outputs("i_next");
  body->add_outputs("y_next");
  AddOp(p.main, "read_state", {{"input", {"cache"}}}, {{"r", Float({3})}});
  AddOp(p.main, "mul", {{"x", {"r"}}, {"y", {"v"}}}, {{"out", Float({3})}});
  p.main->add_outputs("out");
  p.main->add_outputs("y_out");
  return p;
}

// The planner's trials on a loop whose body reads and writes a state: a
// replaced weight inside the body reruns the loop, one after it does not,
// and either way outputs and final state are a full run's of the program
// with that weight.
TEST(WhileLoop, IncrementalRunsFollowStatesInsideTheBody) {
  const std::vector<float> w = {0.5f, -1.f, 2.f}, v = {1.f, 3.f, -0.5f};
  const std::vector<float> w2 = {0.25f, 1.f, -2.f}, v2 = {2.f, -1.f, 4.f};
  auto loaded = StatefulLoop(w, v).Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::unique_ptr<ProgramExecutor>& ex = *loaded;
  ASSERT_GE(ex->ConstantSlot("w"), 0);
  ASSERT_GE(ex->ConstantSlot("v"), 0);
  for (int n : {0, 1, 4}) {
    SCOPED_TRACE(::testing::Message() << "n " << n);
    const std::map<std::string, Tensor> inputs = {{"x", Tensor::Float({3}, {1, -2, 0.5f})}, {"n", Tensor::IntScalar(n)}};
    auto kept = ex->RunKeeping(inputs);
    ASSERT_TRUE(kept.ok()) << kept.status();
    struct Case {
      const char* name;
      std::vector<float> w, v;
    };
    for (const Case& c : {Case{"w", w2, v}, Case{"v", w, v2}}) {
      SCOPED_TRACE(c.name);
      const std::vector<float>& value = std::string(c.name) == "w" ? c.w : c.v;
      RunStats stats;
      auto trial = ex->RunReplacing(
          *kept, {{ex->ConstantSlot(c.name), std::make_shared<const Tensor>(Tensor::Float({3}, value))}}, &stats);
      ASSERT_TRUE(trial.ok()) << trial.status();
      // The full run of the program with that value, from zeroed states.
      auto changed = StatefulLoop(c.w, c.v).Load();
      ASSERT_TRUE(changed.ok()) << changed.status();
      Session session;
      auto full = (*changed)->Run(inputs, &session);
      ASSERT_TRUE(full.ok()) << full.status();
      EXPECT_EQ(trial->at("out").floats(), full->at("out").floats());
      EXPECT_EQ(trial->at("y_out").floats(), full->at("y_out").floats());
      ASSERT_NE(session.state("cache"), nullptr);
      EXPECT_EQ(trial->at("state:cache").floats(), session.state("cache")->floats());
      // v is read after the loop: the loop is not rerun (only the final
      // mul is); w reruns it.
      if (std::string(c.name) == "v") {
        EXPECT_EQ(stats.ops_run, 1);
      } else {
        EXPECT_GE(stats.ops_run, 2);
      }
    }
  }
}

TEST(Cond, RunsTheChosenBranchOnly) {
  Program p({{"x", Float({2})}, {"flag", Bool()}});
  MIL::Operation* c = AddOp(p.main, "cond", {{"pred", {"flag"}}}, {{"y", Float({2})}});
  MIL::Block* then_block = c->add_blocks();
  AddOp(then_block, "mul", {{"x", {"x"}}, {"y", {}, FloatValue(10)}}, {{"t", Float({2})}});
  then_block->add_outputs("t");
  MIL::Block* else_block = c->add_blocks();
  AddOp(else_block, "sub", {{"x", {"x"}}, {"y", {}, FloatValue(1)}}, {{"e", Float({2})}});
  else_block->add_outputs("e");
  p.main->add_outputs("y");
  auto yes = p.Run({{"x", Tensor::Float({2}, {1, 2})}, {"flag", Tensor::Bool({}, {1})}});
  ASSERT_TRUE(yes.ok()) << yes.status();
  EXPECT_EQ(yes->at("y").floats()[1], 20);
  auto no = p.Run({{"x", Tensor::Float({2}, {1, 2})}, {"flag", Tensor::Bool({}, {0})}});
  ASSERT_TRUE(no.ok()) << no.status();
  EXPECT_EQ(no->at("y").floats()[1], 1);
}

// A TensorArray the TensorFlow way: scatter the rows of x into a list, loop
// reading row i and writing 3 * row into a second list, gather it back.
TEST(Lists, ScatterReadWriteGatherInsideALoop) {
  Program p({{"x", Float({4, 2})}});
  MIL::Block* m = p.main;
  AddOp(m, "make_list", {{"init_length", {}, IntValue(4)}, {"dtype", {}, StringValue("fp32")}}, {{"rows0", List({2})}});
  AddOp(m, "range_1d", {{"start", {}, IntValue(0)}, {"end", {}, IntValue(4)}, {"step", {}, IntValue(1)}},
        {{"idx", TensorType(MIL::INT32, {4})}});
  AddOp(m, "list_scatter", {{"ls", {"rows0"}}, {"indices", {"idx"}}, {"value", {"x"}}}, {{"rows", List({2})}});
  AddOp(m, "make_list", {{"init_length", {}, IntValue(0)}, {"dtype", {}, StringValue("fp32")}}, {{"acc0", List({2})}});
  AddOp(m, "list_length", {{"ls", {"rows"}}}, {{"n", Int()}});
  AddOp(m, "identity", {{"x", {}, IntValue(0)}}, {{"i0", Int()}});
  MIL::Operation* loop = AddOp(m, "while_loop", {{"loop_vars", {"i0", "acc0"}}}, {{"i_end", Int()}, {"acc_end", List({2})}});
  MIL::Block* cond = loop->add_blocks();
  AddInput(cond, "ci", Int());
  AddInput(cond, "cacc", List({2}));
  AddOp(cond, "less", {{"x", {"ci"}}, {"y", {"n"}}}, {{"go", Bool()}});
  cond->add_outputs("go");
  MIL::Block* body = loop->add_blocks();
  AddInput(body, "bi", Int());
  AddInput(body, "bacc", List({2}));
  AddOp(body, "list_read", {{"ls", {"rows"}}, {"index", {"bi"}}}, {{"row", Float({2})}});
  AddOp(body, "mul", {{"x", {"row"}}, {"y", {}, FloatValue(3)}}, {{"row3", Float({2})}});
  AddOp(body, "list_write", {{"ls", {"bacc"}}, {"index", {"bi"}}, {"value", {"row3"}}}, {{"bacc2", List({2})}});
  AddOp(body, "add", {{"x", {"bi"}}, {"y", {}, IntValue(1)}}, {{"bi2", Int()}});
  body->add_outputs("bi2");
  body->add_outputs("bacc2");
  AddOp(m, "list_gather", {{"ls", {"acc_end"}}, {"indices", {"idx"}}}, {{"y", Float({4, 2})}});
  m->add_outputs("y");
  m->add_outputs("n");

  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  auto out = p.Run({{"x", Tensor::Float({4, 2}, x)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("n").ints()[0], 4);
  ASSERT_EQ(out->at("y").shape(), (Shape{4, 2}));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out->at("y").floats()[i], 3 * x[i]) << i;

  // A list given to an op that does not take lists is refused, not read as
  // an empty tensor.
  AddOp(m, "relu", {{"x", {"rows"}}}, {{"bad", Float({4, 2})}});
  m->add_outputs("bad");
  out = p.Run({{"x", Tensor::Float({4, 2}, x)}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
}

TEST(Lists, ReadingAnElementNeverWrittenIsAnError) {
  Program p({{"x", Float({2})}});
  AddOp(p.main, "make_list", {{"init_length", {}, IntValue(2)}, {"dtype", {}, StringValue("fp32")}}, {{"ls", List({2})}});
  AddOp(p.main, "list_read", {{"ls", {"ls"}}, {"index", {}, IntValue(1)}}, {{"y", Float({2})}});
  p.main->add_outputs("y");
  auto out = p.Run({{"x", Tensor::Float({2}, {1, 2})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
}

// DTLN-AEC part 1 (../shared/models, MIT): log magnitudes -> two LSTMs
// converted from TensorFlow, each a while_loop over TensorArray lists ->
// a sigmoid mask. Synthetic magnitudes must be non-negative (they reach a log).
TEST(Dtln, RunsWithItsLoopsAndLists) {
  const std::string path = testing::ModelsDir() + "/dtln_aec_128_part1/DTLN_AEC_128_Part1.mlpackage";
  auto package = format::MlPackage::Open(path);
  ASSERT_TRUE(package.ok()) << package.status();
  auto ex = ProgramExecutor::Load(package->get());
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto specs = DescribeInputs((*package)->model(), **ex);
  ASSERT_TRUE(specs.ok()) << specs.status();
  for (const InputSpec& s : *specs) {
    if (absl::StrContains(s.name, "magnitude")) {
      EXPECT_TRUE(s.non_negative) << s.name;
    }
  }
  auto inputs = SyntheticInputs(*specs, 3, 0);
  auto out = (*ex)->Run(inputs);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  for (const auto& [name, t] : *out) {
    for (float v : t.floats()) ASSERT_TRUE(std::isfinite(v)) << name;
  }
  // The first output is a mask from a sigmoid; the second the LSTM states,
  // which the loop must have changed from what came in.
  const Tensor& mask = out->begin()->second;
  for (float v : mask.floats()) {
    EXPECT_GE(v, 0.f);
    EXPECT_LE(v, 1.f);
  }
  const Tensor& states_out = std::next(out->begin())->second;
  const Tensor& states_in = inputs.at("states_in");
  ASSERT_EQ(states_out.shape(), states_in.shape());
  double moved = 0;
  for (int64_t i = 0; i < states_in.size(); ++i) moved += std::fabs(states_out.floats()[i] - states_in.floats()[i]);
  EXPECT_GT(moved, 1.0);
  // An LSTM cell state moves, but h = o * tanh(c) stays within (-1, 1): the
  // h half of the state output is bounded.
  int64_t bounded = 0;
  for (float v : states_out.floats()) bounded += std::fabs(v) < 1.f;
  EXPECT_GE(bounded, states_out.size() / 2);
}

MIL::ValueType DictOf(MIL::DataType key) {
  MIL::ValueType t;
  *t.mutable_dictionarytype()->mutable_keytype() = TensorType(key, {});
  *t.mutable_dictionarytype()->mutable_valuetype() = TensorType(MIL::FLOAT64, {});
  return t;
}

// classify(probabilities=x, classes=<literal list>) -> label, dictionary.
Program Classifier(const MIL::Value& classes, MIL::DataType key) {
  Program p({{"x", Float({3})}});
  AddOp(p.main, "classify", {{"probabilities", {"x"}}, {"classes", {}, classes}},
        {{"label", TensorType(key, {})}, {"probs", DictOf(key)}});
  p.main->add_outputs("label");
  p.main->add_outputs("probs");
  return p;
}

TEST(Classify, LabelOfTheHighestProbabilityAndTheProbabilities) {
  MIL::Value names;
  for (const char* c : {"cat", "dog", "emu"}) {
    *names.mutable_immediatevalue()->mutable_list()->add_values() = StringValue(c);
  }
  Program p = Classifier(names, MIL::STRING);
  auto out = p.Run({{"x", Tensor::Float({3}, {0.2f, 0.5f, 0.3f})}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->at("label").dtype(), DType::kString);
  EXPECT_EQ(out->at("label").strings().at(0), "dog");
  ASSERT_EQ(out->at("probs").shape(), Shape{3});
  EXPECT_EQ(out->at("probs").floats()[2], 0.3f);

  MIL::Value ids;
  for (int64_t c : {10, 20, 30}) {
    MIL::Value v;
    *v.mutable_type() = TensorType(MIL::INT64, {});
    v.mutable_immediatevalue()->mutable_tensor()->mutable_longints()->add_values(c);
    *ids.mutable_immediatevalue()->mutable_list()->add_values() = v;
  }
  p = Classifier(ids, MIL::INT64);
  out = p.Run({{"x", Tensor::Float({3}, {0, 0, 1})}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->at("label").dtype(), DType::kInt32);
  EXPECT_EQ(out->at("label").ints().at(0), 30);

  // Fewer classes than probabilities; a list mixing strings and integers.
  MIL::Value two;
  for (const char* c : {"a", "b"}) *two.mutable_immediatevalue()->mutable_list()->add_values() = StringValue(c);
  p = Classifier(two, MIL::STRING);
  EXPECT_EQ(p.Run({{"x", Tensor::Float({3}, {0, 0, 1})}}).status().code(), absl::StatusCode::kInvalidArgument);
  MIL::Value mixed = two;
  *mixed.mutable_immediatevalue()->mutable_list()->add_values() = IntValue(3);
  p = Classifier(mixed, MIL::STRING);
  EXPECT_EQ(p.Run({{"x", Tensor::Float({3}, {0, 0, 1})}}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::execute
