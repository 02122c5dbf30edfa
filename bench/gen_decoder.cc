// Generates a decoder-shaped ML Program package of any size, the shape of
// on-device LLM packages (../shared/golden/llm_like): token ids -> gather
// embedding -> per layer q/k/v/o and MLP up/down linears with a KV cache
// state (read_state, slice_update, write_state) and attention by matmul and
// softmax -> lm_head. Two functions, "prefill" (--prefill tokens) and
// "decode" (one token, the default), read the same blobs of one weight.bin.
// iOS18 (specification 9, opset CoreML8).
//
//   build/bench/gen_decoder --out D.mlpackage --layers 24 --width 4096 --mlp-width 11008 --vocab 32000
//       [--dtype fp16|fp32] [--seed 1] [--context 16] [--prefill 8]
//
// Weights are N(0, 0.02) from a seeded generator, written as real data (no
// sparse holes), one tensor at a time: memory is one tensor, not the model.
// Prints the weight file's size and the largest tensor's element count.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "common/byte_sink.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "coreml/model.pb.h"
#include "format/blob_storage.h"
#include "format/fp16.h"
#include "format/manifest.h"
#include "format/package.h"
#include "format/package_writer.h"
#include "format/tensor.h"

namespace {
namespace mil = CoreML::Specification::MILSpec;
namespace spec = CoreML::Specification;
using coremlz::format::ElementType;
using coremlz::format::Shape;

constexpr char kWeightFile[] = "@model_path/weights/weight.bin";
constexpr char kWeightPath[] = "Data/com.apple.CoreML/weights/weight.bin";
constexpr char kModelPath[] = "Data/com.apple.CoreML/model.mlmodel";
constexpr char kOpset[] = "CoreML8";
constexpr char kState[] = "cache";

struct Config {
  int64_t layers = 2, width = 64, mlp_width = 192, vocab = 256;
  int64_t context = 16, prefill = 8;
  ElementType dtype = ElementType::kFloat16;
  uint64_t seed = 1;
};

// splitmix64 seeding xoshiro256**, Box-Muller: fast enough that writing
// gigabytes is bound by the disk, and the same bytes for the same seed on
// every machine (std::normal_distribution is not specified bit for bit).
class Normal {
 public:
  explicit Normal(uint64_t seed) {
    for (uint64_t& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  // Fills `out` with N(0, stddev^2).
  void Fill(float* out, size_t n, float stddev) {
    size_t i = 0;
    for (; i + 1 < n; i += 2) Pair(out + i, stddev);
    if (i < n) {
      float two[2];
      Pair(two, stddev);
      out[i] = two[0];
    }
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  void Pair(float* out, float stddev) {
    const uint64_t r = Next();
    // Two 32-bit uniforms in (0, 1].
    const double u1 = (static_cast<double>(r >> 32) + 1.0) * (1.0 / 4294967296.0);
    const double u2 = (static_cast<double>(r & 0xffffffffu) + 1.0) * (1.0 / 4294967296.0);
    const double radius = std::sqrt(-2.0 * std::log(u1)) * stddev;
    const double angle = 6.283185307179586 * u2;
    out[0] = static_cast<float>(radius * std::cos(angle));
    out[1] = static_cast<float>(radius * std::sin(angle));
  }
  uint64_t s_[4];
};

// One weight: its name, shape and the offset of its blob once written.
struct Weight {
  std::string name;
  Shape shape;
  uint64_t offset = 0;
};

std::vector<Weight> WeightList(const Config& c) {
  std::vector<Weight> w;
  w.push_back({"embed_tokens_weight", {c.vocab, c.width}});
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = absl::StrCat("layers_", l, "_");
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      w.push_back({absl::StrCat(p, proj, "_weight"), {c.width, c.width}});
    }
    w.push_back({p + "up_proj_weight", {c.mlp_width, c.width}});
    w.push_back({p + "down_proj_weight", {c.width, c.mlp_width}});
  }
  w.push_back({"lm_head_weight", {c.vocab, c.width}});
  return w;
}

// Writes weight.bin tensor by tensor; fills in each weight's blob offset.
absl::Status WriteWeights(const Config& c, const std::string& path, std::vector<Weight>* weights,
                          uint64_t* file_size) {
  ASSIGN_OR_RETURN(std::unique_ptr<coremlz::FileSink> sink, coremlz::FileSink::Create(path));
  coremlz::format::BlobStorageWriter writer(sink.get(), static_cast<uint32_t>(weights->size()));
  Normal rng(c.seed);
  std::vector<float> values;
  std::string bytes;
  for (Weight& w : *weights) {
    const uint64_t n = static_cast<uint64_t>(w.shape[0]) * static_cast<uint64_t>(w.shape[1]);
    values.resize(n);
    rng.Fill(values.data(), n, 0.02f);
    if (c.dtype == ElementType::kFloat16) {
      bytes.resize(n * 2);
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t h = coremlz::format::FloatToHalf(values[i]);
        std::memcpy(&bytes[2 * i], &h, 2);  // little-endian hosts only, as the rest of coremlz
      }
    } else {
      bytes.resize(n * 4);
      std::memcpy(bytes.data(), values.data(), n * 4);
    }
    ASSIGN_OR_RETURN(w.offset, writer.Append(c.dtype, bytes, n));
  }
  RETURN_IF_ERROR(writer.Finish());
  *file_size = sink->size();
  return sink->Close();
}

// Builds one function's block; every op is named after its output.
class FunctionBuilder {
 public:
  FunctionBuilder(mil::Function* f, ElementType dtype) : f_(f), dtype_(dtype) {
    f_->set_opset(kOpset);
    block_ = &(*f_->mutable_block_specializations())[kOpset];
  }

  void Input(const std::string& name, ElementType type, const Shape& shape, bool state) {
    mil::NamedValueType* in = f_->add_inputs();
    in->set_name(name);
    if (state) {
      *in->mutable_type()->mutable_statetype()->mutable_wrappedtype() = coremlz::format::MakeTensorType(type, shape);
    } else {
      *in->mutable_type() = coremlz::format::MakeTensorType(type, shape);
    }
  }
  std::string Blob(const Weight& w) {
    mil::Operation* op = NewOp("const", w.name, dtype_, w.shape);
    (*op->mutable_attributes())["val"] = coremlz::format::MakeBlobValue(dtype_, w.shape, kWeightFile, w.offset);
    return w.name;
  }
  std::string Ints(const std::string& name, const std::vector<int32_t>& v) {
    coremlz::format::Tensor t{ElementType::kInt32, {static_cast<int64_t>(v.size())}, std::string(v.size() * 4, '\0')};
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    return Immediate(name, t);
  }
  std::string Scalar(const std::string& name, int32_t v) {
    coremlz::format::Tensor t{ElementType::kInt32, {}, std::string(4, '\0')};
    std::memcpy(t.bytes.data(), &v, 4);
    return Immediate(name, t);
  }
  std::string Bool(const std::string& name, bool v) {
    coremlz::format::Tensor t{ElementType::kBool, {}, std::string(1, v ? 1 : 0)};
    return Immediate(name, t);
  }
  std::string Op(const std::string& type, const std::map<std::string, std::string>& inputs, const std::string& out,
                 const Shape& shape) {
    NewOp(type, out, dtype_, shape);
    mil::Operation* op = block_->mutable_operations(block_->operations_size() - 1);
    for (const auto& [param, source] : inputs) (*op->mutable_inputs())[param].add_arguments()->set_name(source);
    return out;
  }
  // An op without outputs (write_state).
  void Effect(const std::string& type, const std::map<std::string, std::string>& inputs) {
    mil::Operation* op = block_->add_operations();
    op->set_type(type);
    for (const auto& [param, source] : inputs) (*op->mutable_inputs())[param].add_arguments()->set_name(source);
  }
  void Output(const std::string& name) { block_->add_outputs(name); }

 private:
  std::string Immediate(const std::string& name, const coremlz::format::Tensor& t) {
    mil::Operation* op = NewOp("const", name, t.type, t.shape);
    (*op->mutable_attributes())["val"] = *coremlz::format::EncodeImmediateTensor(coremlz::format::View(t));
    return name;
  }
  mil::Operation* NewOp(const std::string& type, const std::string& out, ElementType out_type, const Shape& shape) {
    mil::Operation* op = block_->add_operations();
    op->set_type(type);
    mil::NamedValueType* o = op->add_outputs();
    o->set_name(out);
    *o->mutable_type() = coremlz::format::MakeTensorType(out_type, shape);
    mil::Value name;
    name.mutable_type()->mutable_tensortype()->set_datatype(mil::STRING);
    name.mutable_immediatevalue()->mutable_tensor()->mutable_strings()->add_values(out);
    (*op->mutable_attributes())["name"] = name;
    return op;
  }
  mil::Function* f_;
  mil::Block* block_;
  ElementType dtype_;
};

spec::ArrayFeatureType::ArrayDataType ArrayType(ElementType t) {
  switch (t) {
    case ElementType::kFloat16: return spec::ArrayFeatureType::FLOAT16;
    case ElementType::kInt32: return spec::ArrayFeatureType::INT32;
    default: return spec::ArrayFeatureType::FLOAT32;
  }
}

void Describe(spec::FeatureDescription* fd, const std::string& name, ElementType t, const Shape& shape, bool state) {
  fd->set_name(name);
  spec::ArrayFeatureType* arr = state ? fd->mutable_type()->mutable_statetype()->mutable_arraytype()
                                      : fd->mutable_type()->mutable_multiarraytype();
  for (int64_t d : shape) arr->add_shape(d);
  arr->set_datatype(ArrayType(t));
}

// One function over `tokens` tokens, writing its keys and values into the
// cache at [position, position + tokens) and attending over the whole cache.
void BuildFunction(const Config& c, const std::vector<Weight>& weights, const std::string& name, int64_t tokens,
                   int64_t position, spec::Model* model) {
  const ElementType dt = c.dtype;
  const int64_t W = c.width, S = c.context, T = tokens;
  const Shape cache_shape = {2 * c.layers, 1, S, W};
  FunctionBuilder b(&(*model->mutable_mlprogram()->mutable_functions())[name], dt);
  b.Input("ids", ElementType::kInt32, {1, T}, false);
  b.Input(kState, dt, cache_shape, true);
  spec::FunctionDescription* fd = model->mutable_description()->add_functions();
  fd->set_name(name);
  Describe(fd->add_input(), "ids", ElementType::kInt32, {1, T}, false);
  Describe(fd->add_output(), "logits", dt, {1, T, c.vocab}, false);
  Describe(fd->add_state(), kState, dt, cache_shape, true);

  size_t next = 0;
  auto weight = [&]() { return b.Blob(weights[next++]); };
  std::string h = b.Op("gather", {{"x", weight()}, {"indices", "ids"}, {"axis", b.Scalar("gather_axis", 0)}},
                       "embeddings", {1, T, W});
  const std::string y_t = b.Bool("transpose_true", true);
  const std::string x_f = b.Bool("transpose_false", false);
  const std::string expand_axes = b.Ints("expand_axes", {0});
  const std::string softmax_axis = b.Scalar("softmax_axis", -1);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = absl::StrCat("layers_", l, "_");
    const std::string q = b.Op("linear", {{"x", h}, {"weight", weight()}}, p + "q", {1, T, W});
    const std::string k = b.Op("linear", {{"x", h}, {"weight", weight()}}, p + "k", {1, T, W});
    const std::string v = b.Op("linear", {{"x", h}, {"weight", weight()}}, p + "v", {1, T, W});
    // The cache holds layer l's keys at 2l and values at 2l+1.
    std::string cache = b.Op("read_state", {{"input", kState}}, p + "cache_in", cache_shape);
    for (int kv = 0; kv < 2; ++kv) {
      const std::string which = kv == 0 ? "k" : "v";
      const int32_t row = static_cast<int32_t>(2 * l + kv);
      const std::string update = b.Op("expand_dims", {{"x", kv == 0 ? k : v}, {"axes", expand_axes}},
                                      p + which + "_update", {1, 1, T, W});
      cache = b.Op("slice_update",
                   {{"x", cache},
                    {"update", update},
                    {"begin", b.Ints(p + which + "_begin", {row, 0, static_cast<int32_t>(position), 0})},
                    {"end", b.Ints(p + which + "_end",
                                   {row + 1, 1, static_cast<int32_t>(position + T), static_cast<int32_t>(W)})}},
                   p + which + "_cache", cache_shape);
    }
    b.Effect("write_state", {{"input", kState}, {"data", cache}});
    const std::string state = b.Op("read_state", {{"input", kState}}, p + "cache_out", cache_shape);
    std::string kv_all[2];
    for (int kv = 0; kv < 2; ++kv) {
      const std::string which = kv == 0 ? "keys" : "values";
      const int32_t row = static_cast<int32_t>(2 * l + kv);
      const std::string slice = b.Op(
          "slice_by_index",
          {{"x", state},
           {"begin", b.Ints(p + which + "_slice_begin", {row, 0, 0, 0})},
           {"end", b.Ints(p + which + "_slice_end", {row + 1, 1, static_cast<int32_t>(S), static_cast<int32_t>(W)})}},
          p + which + "_slice", {1, 1, S, W});
      kv_all[kv] = b.Op("squeeze", {{"x", slice}, {"axes", b.Ints(p + which + "_squeeze_axes", {0})}}, p + which,
                        {1, S, W});
    }
    const std::string scores = b.Op("matmul", {{"x", q}, {"y", kv_all[0]}, {"transpose_x", x_f}, {"transpose_y", y_t}},
                                    p + "scores", {1, T, S});
    const std::string probs = b.Op("softmax", {{"x", scores}, {"axis", softmax_axis}}, p + "probs", {1, T, S});
    const std::string ctx = b.Op("matmul", {{"x", probs}, {"y", kv_all[1]}, {"transpose_x", x_f}, {"transpose_y", x_f}},
                                 p + "context", {1, T, W});
    const std::string o = b.Op("linear", {{"x", ctx}, {"weight", weight()}}, p + "o", {1, T, W});
    h = b.Op("add", {{"x", h}, {"y", o}}, p + "attn_residual", {1, T, W});
    const std::string up = b.Op("linear", {{"x", h}, {"weight", weight()}}, p + "up", {1, T, c.mlp_width});
    const std::string act = b.Op("silu", {{"x", up}}, p + "act", {1, T, c.mlp_width});
    const std::string down = b.Op("linear", {{"x", act}, {"weight", weight()}}, p + "down", {1, T, W});
    h = b.Op("add", {{"x", h}, {"y", down}}, p + "mlp_residual", {1, T, W});
  }
  b.Op("linear", {{"x", h}, {"weight", weight()}}, "logits", {1, T, c.vocab});
  b.Output("logits");
}

absl::Status Generate(const Config& c, const std::string& out) {
  std::vector<Weight> weights = WeightList(c);
  ASSIGN_OR_RETURN(coremlz::format::PackageWriter writer, coremlz::format::PackageWriter::Begin(out, true));
  ASSIGN_OR_RETURN(std::string weight_path, writer.StagingPath(kWeightPath));
  uint64_t weight_bytes = 0;
  RETURN_IF_ERROR(WriteWeights(c, weight_path, &weights, &weight_bytes));

  spec::Model model;
  model.set_specificationversion(9);
  model.mutable_mlprogram()->set_version(1);
  BuildFunction(c, weights, "prefill", c.prefill, 0, &model);
  BuildFunction(c, weights, "decode", 1, c.prefill, &model);
  model.mutable_description()->set_defaultfunctionname("decode");
  RETURN_IF_ERROR(writer.WriteFile(kModelPath, coremlz::format::SerializeModelSpec(model)));
  RETURN_IF_ERROR(writer.WriteFile("Manifest.json", coremlz::format::Manifest::ForNewPackage(
                                                        absl::StrCat("gen_decoder-", c.seed)).Serialize()));
  RETURN_IF_ERROR(writer.Commit());
  uint64_t largest = 0;
  for (const Weight& w : weights) largest = std::max<uint64_t>(largest, w.shape[0] * w.shape[1]);
  std::printf("wrote %s: %zu weights, weight.bin %llu bytes, largest tensor %llu elements\n", out.c_str(),
              weights.size(), static_cast<unsigned long long>(weight_bytes), static_cast<unsigned long long>(largest));
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseConfig(const coremlz::Args& args) {
  Config c;
  for (auto [flag, field] : std::vector<std::pair<const char*, int64_t*>>{{"layers", &c.layers},
                                                                          {"width", &c.width},
                                                                          {"mlp-width", &c.mlp_width},
                                                                          {"vocab", &c.vocab},
                                                                          {"context", &c.context},
                                                                          {"prefill", &c.prefill}}) {
    ASSIGN_OR_RETURN(std::optional<int64_t> v, args.Int(flag));
    if (v) *field = *v;
    if (*field < 1 || *field > (int64_t{1} << 31)) return absl::InvalidArgumentError(absl::StrCat("--", flag, " out of range"));
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> seed, args.Int("seed"));
  if (seed) c.seed = static_cast<uint64_t>(*seed);
  const std::string dtype = args.Value("dtype").value_or("fp16");
  if (dtype == "fp16") c.dtype = ElementType::kFloat16;
  else if (dtype == "fp32") c.dtype = ElementType::kFloat32;
  else return absl::InvalidArgumentError("--dtype is fp16 or fp32");
  if (c.prefill + 1 > c.context) return absl::InvalidArgumentError("--context must exceed --prefill (decode writes after it)");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  auto args = coremlz::Args::Parse(
      argv_list, {"out", "layers", "width", "mlp-width", "vocab", "dtype", "seed", "context", "prefill"},
      {});
  if (!args.ok() || !args->Value("out")) {
    std::fprintf(stderr, "usage: gen_decoder --out DIR.mlpackage [--layers N --width W --mlp-width M --vocab V "
                         "--dtype fp16|fp32 --seed S --context C --prefill P]\n%s\n",
                 args.ok() ? "" : std::string(args.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<Config> config = ParseConfig(*args);
  if (!config.ok()) {
    std::fprintf(stderr, "gen_decoder: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  absl::Status s = Generate(*config, *args->Value("out"));
  if (!s.ok()) {
    std::fprintf(stderr, "gen_decoder: %s\n", s.ToString().c_str());
    return 2;
  }
  return 0;
}
