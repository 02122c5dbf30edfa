#include "format/neural_network_weights.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "format/fp16.h"
#include "format/nn_bit_packing.h"

namespace coremlz::format {
namespace spec = CoreML::Specification;
namespace {

bool IsEmpty(const spec::WeightParams& w) {
  return w.floatvalue_size() == 0 && w.float16value().empty() && w.rawvalue().empty() && w.int8rawvalue().empty();
}

struct Collector {
  std::vector<NeuralNetworkWeight> weights;

  absl::Status Add(const std::string& layer, const std::string& type, const std::string& field,
                   spec::WeightParams* wp, Shape shape, int output_axis = 0) {
    NeuralNetworkWeight w;
    w.layer = layer;
    w.layer_type = type;
    w.field = field;
    w.params = wp;
    w.output_axis = output_axis;
    const bool has_float = wp->floatvalue_size() > 0;
    const bool has_half = !wp->float16value().empty();
    const bool has_raw = !wp->rawvalue().empty();
    const bool has_int8 = !wp->int8rawvalue().empty();
    const int kinds = int{has_float} + int{has_half} + int{has_raw} + int{has_int8};
    auto fail = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("layer \"", layer, "\" (", type, ") ", field,
                                                     ": ", what));
    };
    if (kinds > 1) return fail("more than one of floatValue/float16Value/rawValue/int8RawValue is set");
    uint64_t count = 0;
    if (kinds == 0) {
      w.storage = WeightStorage::kEmpty;
      w.bits = 0;
    } else if (has_float) {
      w.storage = WeightStorage::kFloat32;
      count = static_cast<uint64_t>(wp->floatvalue_size());
      w.stored_bytes = 4 * count;
    } else if (has_half) {
      if (wp->float16value().size() % 2 != 0) return fail("float16Value has an odd number of bytes");
      w.storage = WeightStorage::kFloat16;
      w.bits = 16;
      count = wp->float16value().size() / 2;
      w.stored_bytes = wp->float16value().size();
    } else if (has_int8) {
      w.storage = WeightStorage::kInt8;
      w.bits = 8;
      count = wp->int8rawvalue().size();
      w.stored_bytes = count;
    } else {
      w.stored_bytes = wp->rawvalue().size();
      if (!wp->has_quantization()) {
        w.storage = WeightStorage::kRawUnquantized;
        w.bits = 8;
        count = wp->rawvalue().size();
      } else {
        const spec::QuantizationParams& q = wp->quantization();
        if (q.numberofbits() < 1 || q.numberofbits() > 8) {
          return fail(absl::StrCat("numberOfBits ", q.numberofbits(), " is not in 1..8"));
        }
        w.bits = static_cast<int>(q.numberofbits());
        if (q.has_linearquantization()) {
          w.storage = WeightStorage::kLinearQuantized;
        } else if (q.has_lookuptablequantization()) {
          w.storage = WeightStorage::kLookupTable;
          const uint64_t want = uint64_t{1} << w.bits;
          if (static_cast<uint64_t>(q.lookuptablequantization().floatvalue_size()) != want) {
            return fail(absl::StrCat("lookup table has ", q.lookuptablequantization().floatvalue_size(),
                                     " entries; ", w.bits, " bits need ", want));
          }
        } else {
          return fail("quantization parameters name neither linear nor lookup-table quantization");
        }
        // The element count comes from the shape for packed codes.
        auto n = ElementCount(shape);
        if (!n.ok() || shape.empty()) return fail("quantized weights need a known shape");
        count = *n;
        const uint64_t want_bytes = (count * static_cast<uint64_t>(w.bits) + 7) / 8;
        if (wp->rawvalue().size() != want_bytes) {
          return fail(absl::StrCat("rawValue has ", wp->rawvalue().size(), " bytes; ", count,
                                   " codes of ", w.bits, " bits need ", want_bytes));
        }
        if (w.storage == WeightStorage::kLinearQuantized) {
          const auto& lq = q.linearquantization();
          const int channels = shape.empty() ? 1 : static_cast<int>(shape[output_axis]);
          auto ok_len = [&](int n) { return n == 1 || n == channels; };
          if (!ok_len(lq.scale_size())) {
            return fail(absl::StrCat("linear quantization has ", lq.scale_size(),
                                     " scales; expected 1 or ", channels));
          }
          if (lq.bias_size() != 0 && !ok_len(lq.bias_size())) {
            return fail(absl::StrCat("linear quantization has ", lq.bias_size(),
                                     " biases; expected 1 or ", channels));
          }
        }
      }
    }
    w.element_count = count;
    if (w.storage != WeightStorage::kEmpty) {
      auto expected = ElementCount(shape);
      if (shape.empty() || !expected.ok()) {
        w.shape = {static_cast<int64_t>(count)};
      } else if (*expected != count) {
        return fail(absl::StrCat("holds ", count, " values but the layer's shape ", ShapeString(shape),
                                 " needs ", *expected));
      } else {
        w.shape = std::move(shape);
      }
    }
    weights.push_back(std::move(w));
    return absl::OkStatus();
  }

  absl::Status AddIfSet(bool present, const std::string& layer, const std::string& type,
                        const std::string& field, spec::WeightParams* wp, Shape shape, int axis = 0) {
    if (!present) return absl::OkStatus();
    return Add(layer, type, field, wp, std::move(shape), axis);
  }

  absl::Status AddLstm(const std::string& layer, const std::string& type, const std::string& prefix,
                       spec::LSTMWeightParams* lw, int64_t in, int64_t out) {
    struct Field {
      const char* name;
      bool (spec::LSTMWeightParams::*has)() const;
      spec::WeightParams* (spec::LSTMWeightParams::*get)();
      Shape shape;
    };
    const Field fields[] = {
        {"inputGateWeightMatrix", &spec::LSTMWeightParams::has_inputgateweightmatrix, &spec::LSTMWeightParams::mutable_inputgateweightmatrix, {out, in}},
        {"forgetGateWeightMatrix", &spec::LSTMWeightParams::has_forgetgateweightmatrix, &spec::LSTMWeightParams::mutable_forgetgateweightmatrix, {out, in}},
        {"blockInputWeightMatrix", &spec::LSTMWeightParams::has_blockinputweightmatrix, &spec::LSTMWeightParams::mutable_blockinputweightmatrix, {out, in}},
        {"outputGateWeightMatrix", &spec::LSTMWeightParams::has_outputgateweightmatrix, &spec::LSTMWeightParams::mutable_outputgateweightmatrix, {out, in}},
        {"inputGateRecursionMatrix", &spec::LSTMWeightParams::has_inputgaterecursionmatrix, &spec::LSTMWeightParams::mutable_inputgaterecursionmatrix, {out, out}},
        {"forgetGateRecursionMatrix", &spec::LSTMWeightParams::has_forgetgaterecursionmatrix, &spec::LSTMWeightParams::mutable_forgetgaterecursionmatrix, {out, out}},
        {"blockInputRecursionMatrix", &spec::LSTMWeightParams::has_blockinputrecursionmatrix, &spec::LSTMWeightParams::mutable_blockinputrecursionmatrix, {out, out}},
        {"outputGateRecursionMatrix", &spec::LSTMWeightParams::has_outputgaterecursionmatrix, &spec::LSTMWeightParams::mutable_outputgaterecursionmatrix, {out, out}},
        {"inputGateBiasVector", &spec::LSTMWeightParams::has_inputgatebiasvector, &spec::LSTMWeightParams::mutable_inputgatebiasvector, {out}},
        {"forgetGateBiasVector", &spec::LSTMWeightParams::has_forgetgatebiasvector, &spec::LSTMWeightParams::mutable_forgetgatebiasvector, {out}},
        {"blockInputBiasVector", &spec::LSTMWeightParams::has_blockinputbiasvector, &spec::LSTMWeightParams::mutable_blockinputbiasvector, {out}},
        {"outputGateBiasVector", &spec::LSTMWeightParams::has_outputgatebiasvector, &spec::LSTMWeightParams::mutable_outputgatebiasvector, {out}},
        {"inputGatePeepholeVector", &spec::LSTMWeightParams::has_inputgatepeepholevector, &spec::LSTMWeightParams::mutable_inputgatepeepholevector, {out}},
        {"forgetGatePeepholeVector", &spec::LSTMWeightParams::has_forgetgatepeepholevector, &spec::LSTMWeightParams::mutable_forgetgatepeepholevector, {out}},
        {"outputGatePeepholeVector", &spec::LSTMWeightParams::has_outputgatepeepholevector, &spec::LSTMWeightParams::mutable_outputgatepeepholevector, {out}},
    };
    for (const Field& f : fields) {
      RETURN_IF_ERROR(AddIfSet((lw->*f.has)(), layer, type, prefix + f.name, (lw->*f.get)(), f.shape));
    }
    return absl::OkStatus();
  }

  absl::Status Walk(google::protobuf::RepeatedPtrField<spec::NeuralNetworkLayer>* layers,
                    const std::string& scope, int depth) {
    if (depth > 32) return absl::InvalidArgumentError("neural network control flow nests deeper than 32 levels");
    for (spec::NeuralNetworkLayer& l : *layers) {
      const std::string name = scope.empty() ? l.name() : absl::StrCat(scope, "/", l.name());
      using L = spec::NeuralNetworkLayer;
      switch (l.layer_case()) {
        case L::kConvolution: {
          auto* p = l.mutable_convolution();
          int64_t kh = p->kernelsize_size() > 0 ? p->kernelsize(0) : 3;
          int64_t kw = p->kernelsize_size() > 1 ? p->kernelsize(1) : 3;
          int64_t cout = p->outputchannels(), kc = p->kernelchannels();
          int64_t groups = p->ngroups() == 0 ? 1 : p->ngroups();
          // Deconvolution stores weights as [kernelChannels, outputChannels / groups, kH, kW].
          Shape shape = p->isdeconvolution() ? Shape{kc, cout / groups, kh, kw} : Shape{cout, kc, kh, kw};
          // Weights come from the layer's second input when it has one;
          // otherwise a convolution without weight values is not loadable.
          const bool static_weights = l.input_size() < 2;
          if (static_weights && (!p->has_weights() || IsEmpty(p->weights()))) {
            return absl::InvalidArgumentError(absl::StrCat("layer \"", name, "\" (convolution) has no weight values"));
          }
          RETURN_IF_ERROR(AddIfSet(p->has_weights(), name, "convolution", "weights", p->mutable_weights(), shape,
                                   p->isdeconvolution() ? 1 : 0));
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "convolution", "bias", p->mutable_bias(), {cout}));
          break;
        }
        case L::kInnerProduct: {
          auto* p = l.mutable_innerproduct();
          int64_t out = p->outputchannels(), in = p->inputchannels();
          if (!p->has_weights() || IsEmpty(p->weights())) {
            return absl::InvalidArgumentError(absl::StrCat("layer \"", name, "\" (innerProduct) has no weight values"));
          }
          RETURN_IF_ERROR(AddIfSet(p->has_weights(), name, "innerProduct", "weights", p->mutable_weights(), {out, in}));
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "innerProduct", "bias", p->mutable_bias(), {out}));
          break;
        }
        case L::kEmbedding: {
          auto* p = l.mutable_embedding();
          int64_t out = p->outputchannels(), in = p->inputdim();
          RETURN_IF_ERROR(AddIfSet(p->has_weights(), name, "embedding", "weights", p->mutable_weights(), {out, in}));
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "embedding", "bias", p->mutable_bias(), {out}));
          break;
        }
        case L::kEmbeddingND: {
          auto* p = l.mutable_embeddingnd();
          int64_t e = p->embeddingsize(), v = p->vocabsize();
          RETURN_IF_ERROR(AddIfSet(p->has_weights(), name, "embeddingND", "weights", p->mutable_weights(), {e, v}));
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "embeddingND", "bias", p->mutable_bias(), {e}));
          break;
        }
        case L::kBatchnorm: {
          auto* p = l.mutable_batchnorm();
          int64_t c = p->channels();
          RETURN_IF_ERROR(AddIfSet(p->has_gamma(), name, "batchnorm", "gamma", p->mutable_gamma(), {c}));
          RETURN_IF_ERROR(AddIfSet(p->has_beta(), name, "batchnorm", "beta", p->mutable_beta(), {c}));
          RETURN_IF_ERROR(AddIfSet(p->has_mean(), name, "batchnorm", "mean", p->mutable_mean(), {c}));
          RETURN_IF_ERROR(AddIfSet(p->has_variance(), name, "batchnorm", "variance", p->mutable_variance(), {c}));
          break;
        }
        case L::kLoadConstant: {
          auto* p = l.mutable_loadconstant();
          Shape shape(p->shape().begin(), p->shape().end());
          RETURN_IF_ERROR(AddIfSet(p->has_data(), name, "loadConstant", "data", p->mutable_data(), shape));
          break;
        }
        case L::kLoadConstantND: {
          auto* p = l.mutable_loadconstantnd();
          Shape shape(p->shape().begin(), p->shape().end());
          RETURN_IF_ERROR(AddIfSet(p->has_data(), name, "loadConstantND", "data", p->mutable_data(), shape));
          break;
        }
        case L::kScale: {
          auto* p = l.mutable_scale();
          RETURN_IF_ERROR(AddIfSet(p->has_scale(), name, "scale", "scale", p->mutable_scale(),
                                   Shape(p->shapescale().begin(), p->shapescale().end())));
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "scale", "bias", p->mutable_bias(),
                                   Shape(p->shapebias().begin(), p->shapebias().end())));
          break;
        }
        case L::kBias: {
          auto* p = l.mutable_bias();
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "bias", "bias", p->mutable_bias(),
                                   Shape(p->shape().begin(), p->shape().end())));
          break;
        }
        case L::kBatchedMatmul: {
          auto* p = l.mutable_batchedmatmul();
          int64_t cin = p->weightmatrixfirstdimension(), cout = p->weightmatrixseconddimension();
          // Weights are [C_in, C_out]: output channels run along axis 1.
          RETURN_IF_ERROR(AddIfSet(p->has_weights(), name, "batchedMatmul", "weights", p->mutable_weights(),
                                   {cin, cout}, 1));
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "batchedMatmul", "bias", p->mutable_bias(), {cout}));
          break;
        }
        case L::kActivation: {
          auto* p = l.mutable_activation();
          if (p->has_prelu()) {
            RETURN_IF_ERROR(AddIfSet(p->prelu().has_alpha(), name, "activation", "PReLU.alpha",
                                     p->mutable_prelu()->mutable_alpha(), {}));
          } else if (p->has_parametricsoftplus()) {
            auto* s = p->mutable_parametricsoftplus();
            RETURN_IF_ERROR(AddIfSet(s->has_alpha(), name, "activation", "parametricSoftplus.alpha", s->mutable_alpha(), {}));
            RETURN_IF_ERROR(AddIfSet(s->has_beta(), name, "activation", "parametricSoftplus.beta", s->mutable_beta(), {}));
          }
          break;
        }
        case L::kSimpleRecurrent: {
          auto* p = l.mutable_simplerecurrent();
          int64_t in = p->inputvectorsize(), out = p->outputvectorsize();
          RETURN_IF_ERROR(AddIfSet(p->has_weightmatrix(), name, "simpleRecurrent", "weightMatrix", p->mutable_weightmatrix(), {out, in}));
          RETURN_IF_ERROR(AddIfSet(p->has_recursionmatrix(), name, "simpleRecurrent", "recursionMatrix", p->mutable_recursionmatrix(), {out, out}));
          RETURN_IF_ERROR(AddIfSet(p->has_biasvector(), name, "simpleRecurrent", "biasVector", p->mutable_biasvector(), {out}));
          break;
        }
        case L::kGru: {
          auto* p = l.mutable_gru();
          int64_t in = p->inputvectorsize(), out = p->outputvectorsize();
          RETURN_IF_ERROR(AddIfSet(p->has_updategateweightmatrix(), name, "gru", "updateGateWeightMatrix", p->mutable_updategateweightmatrix(), {out, in}));
          RETURN_IF_ERROR(AddIfSet(p->has_resetgateweightmatrix(), name, "gru", "resetGateWeightMatrix", p->mutable_resetgateweightmatrix(), {out, in}));
          RETURN_IF_ERROR(AddIfSet(p->has_outputgateweightmatrix(), name, "gru", "outputGateWeightMatrix", p->mutable_outputgateweightmatrix(), {out, in}));
          RETURN_IF_ERROR(AddIfSet(p->has_updategaterecursionmatrix(), name, "gru", "updateGateRecursionMatrix", p->mutable_updategaterecursionmatrix(), {out, out}));
          RETURN_IF_ERROR(AddIfSet(p->has_resetgaterecursionmatrix(), name, "gru", "resetGateRecursionMatrix", p->mutable_resetgaterecursionmatrix(), {out, out}));
          RETURN_IF_ERROR(AddIfSet(p->has_outputgaterecursionmatrix(), name, "gru", "outputGateRecursionMatrix", p->mutable_outputgaterecursionmatrix(), {out, out}));
          RETURN_IF_ERROR(AddIfSet(p->has_updategatebiasvector(), name, "gru", "updateGateBiasVector", p->mutable_updategatebiasvector(), {out}));
          RETURN_IF_ERROR(AddIfSet(p->has_resetgatebiasvector(), name, "gru", "resetGateBiasVector", p->mutable_resetgatebiasvector(), {out}));
          RETURN_IF_ERROR(AddIfSet(p->has_outputgatebiasvector(), name, "gru", "outputGateBiasVector", p->mutable_outputgatebiasvector(), {out}));
          break;
        }
        case L::kUniDirectionalLSTM: {
          auto* p = l.mutable_unidirectionallstm();
          if (p->has_weightparams()) {
            RETURN_IF_ERROR(AddLstm(name, "uniDirectionalLSTM", "", p->mutable_weightparams(),
                                    p->inputvectorsize(), p->outputvectorsize()));
          }
          break;
        }
        case L::kBiDirectionalLSTM: {
          auto* p = l.mutable_bidirectionallstm();
          for (int i = 0; i < p->weightparams_size(); ++i) {
            RETURN_IF_ERROR(AddLstm(name, "biDirectionalLSTM", i == 0 ? "forward." : "backward.",
                                    p->mutable_weightparams(i), p->inputvectorsize(), p->outputvectorsize()));
          }
          break;
        }
        case L::kCustom: {
          auto* p = l.mutable_custom();
          for (int i = 0; i < p->weights_size(); ++i) {
            RETURN_IF_ERROR(Add(name, "custom", absl::StrCat("weights[", i, "]"), p->mutable_weights(i), {}));
          }
          break;
        }
        case L::kLayerNormalization: {
          auto* p = l.mutable_layernormalization();
          Shape shape(p->normalizedshape().begin(), p->normalizedshape().end());
          RETURN_IF_ERROR(AddIfSet(p->has_gamma(), name, "layerNormalization", "gamma", p->mutable_gamma(), shape));
          RETURN_IF_ERROR(AddIfSet(p->has_beta(), name, "layerNormalization", "beta", p->mutable_beta(), shape));
          break;
        }
        case L::kConvolution3D: {
          auto* p = l.mutable_convolution3d();
          int64_t groups = p->ngroups() == 0 ? 1 : p->ngroups();
          Shape shape = p->isdeconvolution()
                            ? Shape{p->inputchannels(), p->outputchannels() / groups, p->kerneldepth(), p->kernelheight(), p->kernelwidth()}
                            : Shape{p->outputchannels(), p->inputchannels() / groups, p->kerneldepth(), p->kernelheight(), p->kernelwidth()};
          RETURN_IF_ERROR(AddIfSet(p->has_weights(), name, "convolution3d", "weights", p->mutable_weights(), shape,
                                   p->isdeconvolution() ? 1 : 0));
          RETURN_IF_ERROR(AddIfSet(p->has_bias(), name, "convolution3d", "bias", p->mutable_bias(), {p->outputchannels()}));
          break;
        }
        case L::kBranch: {
          auto* p = l.mutable_branch();
          if (p->has_ifbranch()) RETURN_IF_ERROR(Walk(p->mutable_ifbranch()->mutable_layers(), name + "/if", depth + 1));
          if (p->has_elsebranch()) RETURN_IF_ERROR(Walk(p->mutable_elsebranch()->mutable_layers(), name + "/else", depth + 1));
          break;
        }
        case L::kLoop: {
          auto* p = l.mutable_loop();
          if (p->has_conditionnetwork()) RETURN_IF_ERROR(Walk(p->mutable_conditionnetwork()->mutable_layers(), name + "/condition", depth + 1));
          if (p->has_bodynetwork()) RETURN_IF_ERROR(Walk(p->mutable_bodynetwork()->mutable_layers(), name + "/body", depth + 1));
          break;
        }
        default:
          break;
      }
    }
    return absl::OkStatus();
  }
};

}  // namespace

absl::string_view WeightStorageName(WeightStorage storage) {
  switch (storage) {
    case WeightStorage::kEmpty: return "empty";
    case WeightStorage::kFloat32: return "fp32";
    case WeightStorage::kFloat16: return "fp16";
    case WeightStorage::kLinearQuantized: return "linear";
    case WeightStorage::kLookupTable: return "lut";
    case WeightStorage::kInt8: return "int8";
    case WeightStorage::kRawUnquantized: return "raw";
  }
  return "?";
}

bool HasNeuralNetwork(const spec::Model& model) {
  return model.has_neuralnetwork() || model.has_neuralnetworkclassifier() || model.has_neuralnetworkregressor();
}

absl::StatusOr<std::vector<NeuralNetworkWeight>> ListNeuralNetworkWeights(spec::Model* model) {
  Collector c;
  if (model->has_neuralnetwork()) {
    RETURN_IF_ERROR(c.Walk(model->mutable_neuralnetwork()->mutable_layers(), "", 0));
  } else if (model->has_neuralnetworkclassifier()) {
    RETURN_IF_ERROR(c.Walk(model->mutable_neuralnetworkclassifier()->mutable_layers(), "", 0));
  } else if (model->has_neuralnetworkregressor()) {
    RETURN_IF_ERROR(c.Walk(model->mutable_neuralnetworkregressor()->mutable_layers(), "", 0));
  } else {
    return absl::InvalidArgumentError("model is not a NeuralNetwork");
  }
  return std::move(c.weights);
}

absl::StatusOr<std::vector<float>> DecodeWeightParams(const NeuralNetworkWeight& w) {
  const spec::WeightParams& wp = *w.params;
  std::vector<float> out;
  switch (w.storage) {
    case WeightStorage::kEmpty:
      return out;
    case WeightStorage::kFloat32:
      out.assign(wp.floatvalue().begin(), wp.floatvalue().end());
      return out;
    case WeightStorage::kFloat16: {
      out.resize(w.element_count);
      const auto* p = reinterpret_cast<const unsigned char*>(wp.float16value().data());
      for (uint64_t i = 0; i < w.element_count; ++i) out[i] = HalfToFloat(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
      return out;
    }
    case WeightStorage::kInt8: {
      out.resize(w.element_count);
      const float scale = wp.quantization().linearquantization().scale_size() > 0
                              ? wp.quantization().linearquantization().scale(0) : 1.0f;
      for (uint64_t i = 0; i < w.element_count; ++i) out[i] = scale * static_cast<int8_t>(wp.int8rawvalue()[i]);
      return out;
    }
    case WeightStorage::kRawUnquantized:
      return absl::InvalidArgumentError(absl::StrCat("layer \"", w.layer, "\" ", w.field,
                                                     ": rawValue without quantization parameters"));
    case WeightStorage::kLinearQuantized:
    case WeightStorage::kLookupTable: {
      std::vector<uint8_t> codes(w.element_count);
      RETURN_IF_ERROR(UnpackNeuralNetworkCodes(wp.rawvalue(), w.bits, absl::MakeSpan(codes)));
      out.resize(w.element_count);
      if (w.storage == WeightStorage::kLookupTable) {
        const auto& lut = wp.quantization().lookuptablequantization().floatvalue();
        for (uint64_t i = 0; i < w.element_count; ++i) out[i] = lut[codes[i]];
        return out;
      }
      const auto& lq = wp.quantization().linearquantization();
      const int64_t channels = w.shape[w.output_axis];
      uint64_t inner = 1;
      for (size_t a = w.output_axis + 1; a < w.shape.size(); ++a) inner *= static_cast<uint64_t>(w.shape[a]);
      for (uint64_t i = 0; i < w.element_count; ++i) {
        const int64_t c = static_cast<int64_t>((i / inner) % static_cast<uint64_t>(channels));
        const float scale = lq.scale_size() == 1 ? lq.scale(0) : lq.scale(c);
        const float bias = lq.bias_size() == 0 ? 0.f : (lq.bias_size() == 1 ? lq.bias(0) : lq.bias(c));
        out[i] = scale * static_cast<float>(codes[i]) + bias;
      }
      return out;
    }
  }
  return out;
}

}  // namespace coremlz::format
