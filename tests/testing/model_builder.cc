#include "tests/testing/model_builder.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/byte_sink.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "format/blob_storage.h"
#include "format/fp16.h"
#include "format/manifest.h"
#include "format/package.h"
#include "format/package_writer.h"

namespace coremlz::testing {
namespace mil = CoreML::Specification::MILSpec;
namespace spec = CoreML::Specification;
using format::ElementType;
using format::Shape;
using format::Tensor;

std::vector<float> RandomWeights(uint64_t count, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> out(count);
  for (float& v : out) v = dist(rng);
  return out;
}

Tensor FloatTensor(ElementType type, Shape shape, const std::vector<float>& values) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  if (type == ElementType::kFloat16) {
    t.bytes.resize(values.size() * 2);
    for (size_t i = 0; i < values.size(); ++i) {
      uint16_t h = format::FloatToHalf(values[i]);
      t.bytes[2 * i] = static_cast<char>(h & 0xff);
      t.bytes[2 * i + 1] = static_cast<char>(h >> 8);
    }
  } else {
    t.bytes.resize(values.size() * 4);
    std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  }
  return t;
}

namespace {

mil::Value StringValue(const std::string& s) {
  mil::Value v;
  v.mutable_type()->mutable_tensortype()->set_datatype(mil::STRING);
  v.mutable_immediatevalue()->mutable_tensor()->mutable_strings()->add_values(s);
  return v;
}

Tensor Int32Tensor(Shape shape, const std::vector<int32_t>& values) {
  Tensor t;
  t.type = ElementType::kInt32;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

}  // namespace

ProgramBuilder::ProgramBuilder(int spec_version) {
  opset_ = absl::StrCat("CoreML", spec_version - 1);
  model_.set_specificationversion(spec_version);
  mil::Program* program = model_.mutable_mlprogram();
  program->set_version(1);
  mil::Function& f = (*program->mutable_functions())["main"];
  f.set_opset(opset_);
  (*f.mutable_block_specializations())[opset_];
}

mil::Function* ProgramBuilder::function() { return &(*model_.mutable_mlprogram()->mutable_functions())["main"]; }
mil::Block* ProgramBuilder::block() { return &(*function()->mutable_block_specializations())[opset_]; }

void ProgramBuilder::AddInput(const std::string& name, ElementType type, Shape shape) {
  mil::NamedValueType* in = function()->add_inputs();
  in->set_name(name);
  *in->mutable_type() = format::MakeTensorType(type, shape);
  spec::FeatureDescription* fd = model_.mutable_description()->add_input();
  fd->set_name(name);
  auto* arr = fd->mutable_type()->mutable_multiarraytype();
  for (int64_t d : shape) arr->add_shape(d);
  arr->set_datatype(type == ElementType::kFloat16 ? spec::ArrayFeatureType::FLOAT16
                                                  : spec::ArrayFeatureType::FLOAT32);
}

void ProgramBuilder::AddOutput(const std::string& name, ElementType type, Shape shape) {
  block()->add_outputs(name);
  spec::FeatureDescription* fd = model_.mutable_description()->add_output();
  fd->set_name(name);
  auto* arr = fd->mutable_type()->mutable_multiarraytype();
  for (int64_t d : shape) arr->add_shape(d);
  arr->set_datatype(type == ElementType::kFloat16 ? spec::ArrayFeatureType::FLOAT16
                                                  : spec::ArrayFeatureType::FLOAT32);
}

std::string ProgramBuilder::Const(const std::string& name, const Tensor& value) {
  mil::Operation* op = block()->add_operations();
  op->set_type("const");
  mil::NamedValueType* out = op->add_outputs();
  out->set_name(name);
  *out->mutable_type() = format::MakeTensorType(value.type, value.shape);
  (*op->mutable_attributes())["name"] = StringValue(name);
  uint64_t count = value.element_count();
  if (count >= 10 && format::ToBlobDType(value.type).has_value()) {
    uint64_t offset = next_offset_;
    (*op->mutable_attributes())["val"] =
        format::MakeBlobValue(value.type, value.shape, "@model_path/weights/weight.bin", offset);
    blobs_.push_back(value);
    blob_offsets_.push_back(offset);
    next_offset_ = format::AlignUp(offset + 64 + value.bytes.size());
  } else {
    (*op->mutable_attributes())["val"] = *format::EncodeImmediateTensor(format::View(value));
  }
  return name;
}

std::string ProgramBuilder::Op(const std::string& type, const std::map<std::string, std::string>& inputs,
                               const std::string& output, ElementType out_type, Shape out_shape) {
  mil::Operation* op = block()->add_operations();
  op->set_type(type);
  for (const auto& [param, source] : inputs) {
    (*op->mutable_inputs())[param].add_arguments()->set_name(source);
  }
  mil::NamedValueType* out = op->add_outputs();
  out->set_name(output);
  *out->mutable_type() = format::MakeTensorType(out_type, out_shape);
  (*op->mutable_attributes())["name"] = StringValue(output);
  return output;
}

std::string ProgramBuilder::Conv(const std::string& prefix, const std::string& x, int64_t cin,
                                 int64_t cout, int64_t kernel, int64_t spatial, ElementType wt,
                                 uint32_t seed) {
  std::string w = Const(prefix + "_weight", FloatTensor(wt, {cout, cin, kernel, kernel},
                                                        RandomWeights(cout * cin * kernel * kernel, seed)));
  std::string b = Const(prefix + "_bias", FloatTensor(wt, {cout}, RandomWeights(cout, seed + 1, 0.01f)));
  std::string strides = Const(prefix + "_strides", Int32Tensor({2}, {1, 1}));
  std::string pad = Const(prefix + "_pad", Int32Tensor({4}, {0, 0, 0, 0}));
  std::string dil = Const(prefix + "_dilations", Int32Tensor({2}, {1, 1}));
  std::string groups = Const(prefix + "_groups", Int32Tensor({}, {1}));
  mil::Operation* pad_type = block()->add_operations();
  pad_type->set_type("const");
  pad_type->add_outputs()->set_name(prefix + "_pad_type");
  pad_type->mutable_outputs(0)->mutable_type()->mutable_tensortype()->set_datatype(mil::STRING);
  (*pad_type->mutable_attributes())["name"] = StringValue(prefix + "_pad_type");
  (*pad_type->mutable_attributes())["val"] = StringValue("same");
  return Op("conv",
            {{"x", x}, {"weight", w}, {"bias", b}, {"strides", strides}, {"pad", pad},
             {"pad_type", prefix + "_pad_type"}, {"dilations", dil}, {"groups", groups}},
            prefix, wt, {1, cout, spatial, spatial});
}

std::string ProgramBuilder::Linear(const std::string& prefix, const std::string& x, int64_t in,
                                   int64_t out, Shape x_shape, ElementType wt, uint32_t seed) {
  std::string w = Const(prefix + "_weight", FloatTensor(wt, {out, in}, RandomWeights(out * in, seed)));
  std::string b = Const(prefix + "_bias", FloatTensor(wt, {out}, RandomWeights(out, seed + 1, 0.01f)));
  x_shape.back() = out;
  return Op("linear", {{"x", x}, {"weight", w}, {"bias", b}}, prefix, wt, x_shape);
}

spec::Model ProgramBuilder::Build() const { return model_; }

absl::Status ProgramBuilder::WritePackage(const std::string& dir) const {
  ASSIGN_OR_RETURN(format::PackageWriter writer, format::PackageWriter::Begin(dir, /*overwrite=*/true));
  format::Manifest manifest = format::Manifest::ForNewPackage(dir);
  RETURN_IF_ERROR(writer.WriteFile("Manifest.json", manifest.Serialize()));
  RETURN_IF_ERROR(writer.WriteFile("Data/com.apple.CoreML/model.mlmodel", format::SerializeModelSpec(model_)));
  std::string weights;
  StringSink sink(&weights);
  format::BlobStorageWriter blob_writer(&sink, static_cast<uint32_t>(blobs_.size()));
  for (size_t i = 0; i < blobs_.size(); ++i) {
    ASSIGN_OR_RETURN(uint64_t offset, blob_writer.Append(blobs_[i].type, blobs_[i].bytes,
                                                         blobs_[i].element_count()));
    if (offset != blob_offsets_[i]) return absl::InternalError("blob offset bookkeeping is off");
  }
  RETURN_IF_ERROR(blob_writer.Finish());
  RETURN_IF_ERROR(writer.WriteFile("Data/com.apple.CoreML/weights/weight.bin", weights));
  return writer.Commit();
}

absl::Status WriteMixedTestPackage(const std::string& dir, ElementType wt, int spec_version) {
  ProgramBuilder b(spec_version);
  b.AddInput("x", wt, {1, 32, 8, 8});
  std::string h = b.Conv("conv1", "x", 32, 64, 3, 8, wt, 1);
  h = b.Conv("conv2", h, 64, 48, 1, 8, wt, 3);  // 48 output channels: not a power of two
  h = b.Op("reshape", {{"x", h}}, "flat", wt, {1, 64, 48});
  // A transformer block's projections (d_model 96, ffn 384).
  h = b.Linear("q_proj", h, 48, 96, {1, 64, 48}, wt, 5);
  h = b.Linear("ffn_up", h, 96, 384, {1, 64, 96}, wt, 7);
  h = b.Linear("ffn_down", h, 384, 96, {1, 64, 384}, wt, 9);
  b.AddOutput(h, wt, {1, 64, 96});
  return b.WritePackage(dir);
}

absl::Status WriteSplitScalePackage(const std::string& dir, float small, int64_t in) {
  ProgramBuilder b(7);
  b.AddInput("x", ElementType::kFloat32, {1, in});
  std::vector<float> w1 = RandomWeights(512 * in, 3);
  for (size_t i = 256 * in; i < w1.size(); ++i) w1[i] *= small;
  const std::string weight = b.Const("fc1_weight", FloatTensor(ElementType::kFloat32, {512, in}, w1));
  const std::string bias = b.Const("fc1_bias", FloatTensor(ElementType::kFloat32, {512}, std::vector<float>(512, 0.0f)));
  std::string h =
      b.Op("linear", {{"x", "x"}, {"weight", weight}, {"bias", bias}}, "fc1", ElementType::kFloat32, {1, 512});
  std::vector<float> gain(512, 1.0f);
  for (size_t i = 256; i < gain.size(); ++i) gain[i] = 1.0f / small;
  const std::string scale = b.Const("gain", FloatTensor(ElementType::kFloat32, {512}, gain));
  h = b.Op("mul", {{"x", h}, {"y", scale}}, "rescaled", ElementType::kFloat32, {1, 512});
  h = b.Linear("fc2", h, 512, 64, {1, 512}, ElementType::kFloat32, 5);
  b.AddOutput(h, ElementType::kFloat32, {1, 64});
  return b.WritePackage(dir);
}

spec::Model BuildNeuralNetworkModel(bool fp16, uint32_t seed) {
  spec::Model model;
  model.set_specificationversion(4);
  auto* in = model.mutable_description()->add_input();
  in->set_name("input");
  auto* arr = in->mutable_type()->mutable_multiarraytype();
  arr->add_shape(16);
  arr->add_shape(8);
  arr->add_shape(8);
  arr->set_datatype(spec::ArrayFeatureType::FLOAT32);
  auto* out = model.mutable_description()->add_output();
  out->set_name("output");
  out->mutable_type()->mutable_multiarraytype()->set_datatype(spec::ArrayFeatureType::FLOAT32);
  spec::NeuralNetwork* nn = model.mutable_neuralnetwork();

  auto set_weights = [&](spec::WeightParams* wp, const std::vector<float>& v) {
    if (fp16) {
      std::string bytes(v.size() * 2, '\0');
      for (size_t i = 0; i < v.size(); ++i) {
        uint16_t h = format::FloatToHalf(v[i]);
        bytes[2 * i] = static_cast<char>(h & 0xff);
        bytes[2 * i + 1] = static_cast<char>(h >> 8);
      }
      wp->set_float16value(bytes);
    } else {
      for (float f : v) wp->add_floatvalue(f);
    }
  };

  spec::NeuralNetworkLayer* conv = nn->add_layers();
  conv->set_name("conv1");
  conv->add_input("input");
  conv->add_output("conv1_out");
  auto* cp = conv->mutable_convolution();
  cp->set_outputchannels(32);
  cp->set_kernelchannels(16);
  cp->set_ngroups(1);
  cp->add_kernelsize(3);
  cp->add_kernelsize(3);
  cp->set_hasbias(true);
  set_weights(cp->mutable_weights(), RandomWeights(32 * 16 * 9, seed));
  set_weights(cp->mutable_bias(), RandomWeights(32, seed + 1));

  spec::NeuralNetworkLayer* bn = nn->add_layers();
  bn->set_name("bn1");
  bn->add_input("conv1_out");
  bn->add_output("bn1_out");
  auto* bp = bn->mutable_batchnorm();
  bp->set_channels(32);
  bp->set_epsilon(1e-5f);
  set_weights(bp->mutable_gamma(), std::vector<float>(32, 1.0f));
  set_weights(bp->mutable_beta(), std::vector<float>(32, 0.0f));
  set_weights(bp->mutable_mean(), RandomWeights(32, seed + 2));
  set_weights(bp->mutable_variance(), std::vector<float>(32, 1.0f));

  spec::NeuralNetworkLayer* fc = nn->add_layers();
  fc->set_name("fc1");
  fc->add_input("bn1_out");
  fc->add_output("output");
  auto* ip = fc->mutable_innerproduct();
  ip->set_inputchannels(32 * 8 * 8);
  ip->set_outputchannels(64);
  ip->set_hasbias(true);
  set_weights(ip->mutable_weights(), RandomWeights(64 * 32 * 8 * 8, seed + 3));
  set_weights(ip->mutable_bias(), RandomWeights(64, seed + 4));
  return model;
}

spec::Model BuildRunnableNeuralNetworkModel(bool fp16, uint32_t seed) {
  spec::Model model = BuildNeuralNetworkModel(fp16, seed);
  model.mutable_neuralnetwork()->mutable_layers(0)->mutable_convolution()->set_same("");
  return model;
}

}  // namespace coremlz::testing
