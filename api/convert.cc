#include "api/convert.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/config_names.h"
#include "engine/config_parse.h"

namespace coremlz::api {
namespace {
using engine::Granularity;

// An empty field means the config's default.
absl::StatusOr<Granularity> GranularityField(const std::string& s, Granularity def) {
  if (s.empty()) return def;
  std::optional<Granularity> g = engine::ParseGranularity(s);
  if (!g) return absl::InvalidArgumentError(absl::StrCat("unknown granularity \"", s, "\""));
  return *g;
}

absl::StatusOr<engine::OpConfig> FromProto(const v1::OpConfig& p) {
  switch (p.config_case()) {
    case v1::OpConfig::kLinearQuantizer: {
      const auto& q = p.linear_quantizer();
      engine::LinearQuantizerConfig c;
      if (!q.mode().empty()) {
        std::optional<bool> symmetric = engine::QuantModeIsSymmetric(q.mode());
        if (!symmetric) return absl::InvalidArgumentError(absl::StrCat("linear_quantizer.mode: unknown \"", q.mode(), "\""));
        c.symmetric = *symmetric;
      }
      if (!q.dtype().empty()) {
        std::optional<engine::QuantDtype> dtype = engine::ParseQuantDtype(q.dtype());
        if (!dtype) return absl::InvalidArgumentError(absl::StrCat("linear_quantizer.dtype: unknown \"", q.dtype(), "\""));
        c.bits = dtype->bits;
        c.is_signed = dtype->is_signed;
      }
      ASSIGN_OR_RETURN(c.granularity, GranularityField(q.granularity(), Granularity::kPerChannel));
      if (q.block_size_size() > 0) c.block_size.assign(q.block_size().begin(), q.block_size().end());
      c.block_size_per_axis = q.block_size_per_axis();
      if (q.has_weight_threshold()) c.weight_threshold = q.weight_threshold();
      return c;
    }
    case v1::OpConfig::kPalettizer: {
      const auto& q = p.palettizer();
      engine::PalettizerConfig c;
      if (!q.mode().empty()) {
        std::optional<engine::PalettizerConfig::Mode> mode = engine::ParsePaletteMode(q.mode());
        if (!mode) return absl::InvalidArgumentError(absl::StrCat("palettizer.mode: unknown \"", q.mode(), "\""));
        c.mode = *mode;
      }
      if (q.has_nbits()) c.nbits = q.nbits();
      ASSIGN_OR_RETURN(c.granularity, GranularityField(q.granularity(), Granularity::kPerTensor));
      if (q.has_group_size()) c.group_size = q.group_size();
      if (q.has_channel_axis()) c.channel_axis = q.channel_axis();
      if (q.has_cluster_dim()) c.cluster_dim = q.cluster_dim();
      c.enable_per_channel_scale = q.enable_per_channel_scale();
      c.lut.assign(q.lut().begin(), q.lut().end());
      if (q.has_num_kmeans_workers()) c.num_kmeans_workers = q.num_kmeans_workers();
      if (q.has_weight_threshold()) c.weight_threshold = q.weight_threshold();
      return c;
    }
    case v1::OpConfig::kThresholdPruner: {
      const auto& q = p.threshold_pruner();
      engine::ThresholdPrunerConfig c;
      if (q.has_threshold()) c.threshold = q.threshold();
      if (q.has_minimum_sparsity_percentile()) c.minimum_sparsity_percentile = q.minimum_sparsity_percentile();
      if (q.has_weight_threshold()) c.weight_threshold = q.weight_threshold();
      return c;
    }
    case v1::OpConfig::kMagnitudePruner: {
      const auto& q = p.magnitude_pruner();
      engine::MagnitudePrunerConfig c;
      if (q.has_target_sparsity()) c.target_sparsity = q.target_sparsity();
      if (q.has_block_size()) c.block_size = q.block_size();
      if (q.n_m_ratio_size() == 2) c.n_m_ratio = std::make_pair(q.n_m_ratio(0), q.n_m_ratio(1));
      else if (q.n_m_ratio_size() != 0) return absl::InvalidArgumentError("magnitude_pruner.n_m_ratio must hold two integers [n, m]");
      if (q.has_dim()) c.dim = q.dim();
      if (q.has_weight_threshold()) c.weight_threshold = q.weight_threshold();
      return c;
    }
    case v1::OpConfig::kFp16: {
      engine::Fp16Config c;
      if (p.fp16().has_weight_threshold()) c.weight_threshold = p.fp16().weight_threshold();
      return c;
    }
    default:
      return absl::InvalidArgumentError("OpConfig sets no config kind");
  }
}

v1::OpConfig ToProto(const engine::OpConfig& c) {
  v1::OpConfig p;
  if (auto* q = std::get_if<engine::LinearQuantizerConfig>(&c)) {
    auto* o = p.mutable_linear_quantizer();
    o->set_mode(engine::QuantModeName(q->symmetric));
    o->set_dtype(engine::QuantDtypeName(q->bits, q->is_signed));
    o->set_granularity(engine::GranularityName(q->granularity));
    for (int64_t b : q->block_size) o->add_block_size(b);
    o->set_block_size_per_axis(q->block_size_per_axis);
    o->set_weight_threshold(q->weight_threshold);
  } else if (auto* q = std::get_if<engine::PalettizerConfig>(&c)) {
    auto* o = p.mutable_palettizer();
    o->set_mode(engine::PaletteModeName(q->mode));
    if (q->nbits) o->set_nbits(*q->nbits);
    o->set_granularity(engine::GranularityName(q->granularity));
    o->set_group_size(q->group_size);
    if (q->channel_axis) o->set_channel_axis(*q->channel_axis);
    o->set_cluster_dim(q->cluster_dim);
    o->set_enable_per_channel_scale(q->enable_per_channel_scale);
    for (float v : q->lut) o->add_lut(v);
    o->set_num_kmeans_workers(q->num_kmeans_workers);
    o->set_weight_threshold(q->weight_threshold);
  } else if (auto* q = std::get_if<engine::ThresholdPrunerConfig>(&c)) {
    auto* o = p.mutable_threshold_pruner();
    o->set_threshold(q->threshold);
    o->set_minimum_sparsity_percentile(q->minimum_sparsity_percentile);
    o->set_weight_threshold(q->weight_threshold);
  } else if (auto* q = std::get_if<engine::MagnitudePrunerConfig>(&c)) {
    auto* o = p.mutable_magnitude_pruner();
    if (q->target_sparsity) o->set_target_sparsity(*q->target_sparsity);
    if (q->block_size) o->set_block_size(*q->block_size);
    if (q->n_m_ratio) {
      o->add_n_m_ratio(q->n_m_ratio->first);
      o->add_n_m_ratio(q->n_m_ratio->second);
    }
    if (q->dim) o->set_dim(*q->dim);
    o->set_weight_threshold(q->weight_threshold);
  } else if (auto* q = std::get_if<engine::Fp16Config>(&c)) {
    p.mutable_fp16()->set_weight_threshold(q->weight_threshold);
  }
  return p;
}

absl::StatusOr<std::optional<engine::OpConfig>> FromMaybe(const v1::MaybeOpConfig& m) {
  if (!m.has_config() || m.config().config_case() == v1::OpConfig::CONFIG_NOT_SET) return std::optional<engine::OpConfig>();
  ASSIGN_OR_RETURN(engine::OpConfig c, FromProto(m.config()));
  return std::optional<engine::OpConfig>(std::move(c));
}

}  // namespace

absl::StatusOr<engine::CompressionConfig> FromProto(const v1::CompressionConfig& proto) {
  engine::CompressionConfig config;
  for (const v1::CompressionPass& pp : proto.passes()) {
    engine::CompressionPass pass;
    pass.joint_compression = pp.joint_compression();
    const v1::OptimizationConfig& oc = pp.config();
    if (oc.has_global_config() && oc.global_config().config_case() != v1::OpConfig::CONFIG_NOT_SET) {
      ASSIGN_OR_RETURN(engine::OpConfig g, FromProto(oc.global_config()));
      pass.config.global = std::move(g);
    }
    for (const auto& [k, v] : oc.op_type_configs()) { ASSIGN_OR_RETURN(pass.config.op_type_configs[k], FromMaybe(v)); }
    for (const auto& [k, v] : oc.op_name_configs()) { ASSIGN_OR_RETURN(pass.config.op_name_configs[k], FromMaybe(v)); }
    config.passes.push_back(std::move(pass));
  }
  RETURN_IF_ERROR(engine::Validate(config));
  return config;
}

v1::CompressionConfig ToProto(const engine::CompressionConfig& config) {
  v1::CompressionConfig p;
  for (const engine::CompressionPass& pass : config.passes) {
    v1::CompressionPass* pp = p.add_passes();
    pp->set_joint_compression(pass.joint_compression);
    v1::OptimizationConfig* oc = pp->mutable_config();
    if (pass.config.global) *oc->mutable_global_config() = ToProto(*pass.config.global);
    for (const auto& [k, v] : pass.config.op_type_configs) {
      v1::MaybeOpConfig& m = (*oc->mutable_op_type_configs())[k];
      if (v) *m.mutable_config() = ToProto(*v);
    }
    for (const auto& [k, v] : pass.config.op_name_configs) {
      v1::MaybeOpConfig& m = (*oc->mutable_op_name_configs())[k];
      if (v) *m.mutable_config() = ToProto(*v);
    }
  }
  return p;
}

absl::StatusOr<engine::CompressionConfig> ConfigFromHeader(const v1::CompressHeader& header) {
  const bool typed = header.has_config() && header.config().passes_size() > 0;
  const bool text = !header.config_yaml().empty();
  if (typed && text) return absl::InvalidArgumentError("header sets both config and config_yaml; send one");
  if (!typed && !text) return absl::InvalidArgumentError("header has no compression config (config or config_yaml)");
  if (text) return engine::ParseCompressionConfig(header.config_yaml());
  return FromProto(header.config());
}

v1::WeightReport ToProto(const engine::WeightReport& w) {
  v1::WeightReport p;
  p.set_name(w.name);
  p.set_function(w.function);
  for (const auto& f : w.functions) p.add_functions(f);
  p.set_op_type(w.op_type);
  for (const auto& c : w.consumers) p.add_consumers(c);
  for (int64_t d : w.shape) p.add_shape(d);
  p.set_dtype(w.dtype);
  p.set_technique(w.technique);
  p.set_params(w.params);
  p.set_bytes_before(w.bytes_before);
  p.set_bytes_after(w.bytes_after);
  p.set_snr_db(w.error.snr_db);
  p.set_psnr_db(w.error.psnr_db);
  p.set_max_abs_error(w.error.max_abs_error);
  p.set_mse(w.error.mse);
  p.set_sparsity(w.sparsity);
  p.set_distinct_values(w.distinct_values);
  p.set_skipped_reason(w.skipped_reason);
  return p;
}

engine::WeightReport FromProto(const v1::WeightReport& p) {
  engine::WeightReport w;
  w.name = p.name();
  w.function = p.function();
  w.functions.assign(p.functions().begin(), p.functions().end());
  w.op_type = p.op_type();
  w.consumers.assign(p.consumers().begin(), p.consumers().end());
  w.shape.assign(p.shape().begin(), p.shape().end());
  w.dtype = p.dtype();
  w.technique = p.technique();
  w.params = p.params();
  w.bytes_before = p.bytes_before();
  w.bytes_after = p.bytes_after();
  w.error.snr_db = p.snr_db();
  w.error.psnr_db = p.psnr_db();
  w.error.max_abs_error = p.max_abs_error();
  w.error.mse = p.mse();
  w.sparsity = p.sparsity();
  w.distinct_values = p.distinct_values();
  w.skipped_reason = p.skipped_reason();
  return w;
}

v1::Summary SummaryOf(const engine::CompressionReport& r) {
  v1::Summary s;
  s.set_model_kind(r.model_kind);
  s.set_specification_version_before(r.spec_version_before);
  s.set_specification_version_after(r.spec_version_after);
  s.set_target(r.target);
  s.set_weights_compressed(r.weights_compressed);
  s.set_weights_skipped(r.weights_skipped);
  s.set_weight_bytes_before(r.weight_bytes_before);
  s.set_weight_bytes_after(r.weight_bytes_after);
  s.set_fp16_bytes(r.fp16_bytes);
  s.set_model_bytes_before(r.model_bytes_before);
  s.set_model_bytes_after(r.model_bytes_after);
  s.set_ratio_vs_original(r.RatioVsOriginal());
  s.set_ratio_vs_fp16(r.RatioVsFp16());
  s.set_seconds(r.seconds);
  for (const auto& w : r.warnings) s.add_warnings(w);
  s.set_check_samples(r.check_samples);
  s.set_check_executor(r.check_executor);
  s.set_check_error(r.check_error);
  for (const engine::OutputCheck& c : r.output_checks) {
    v1::OutputCheck* o = s.add_output_checks();
    o->set_name(c.name);
    o->set_psnr_db(c.psnr_db);
    o->set_snr_db(c.snr_db);
    o->set_cosine(c.cosine);
    o->set_max_abs_error(c.max_abs_error);
    o->set_class_scores(c.class_scores);
    o->set_top1_agreement(c.top1_agreement);
    o->set_top5_overlap(c.top5_overlap);
    o->set_kl_divergence(c.kl_divergence);
  }
  return s;
}

engine::CompressionReport ReportFrom(const std::vector<v1::WeightReport>& rows, const v1::Summary& s) {
  engine::CompressionReport r;
  for (const auto& row : rows) r.weights.push_back(FromProto(row));
  r.model_kind = s.model_kind();
  r.spec_version_before = s.specification_version_before();
  r.spec_version_after = s.specification_version_after();
  r.target = s.target();
  r.weights_compressed = s.weights_compressed();
  r.weights_skipped = s.weights_skipped();
  r.weight_bytes_before = s.weight_bytes_before();
  r.weight_bytes_after = s.weight_bytes_after();
  r.fp16_bytes = s.fp16_bytes();
  r.model_bytes_before = s.model_bytes_before();
  r.model_bytes_after = s.model_bytes_after();
  r.seconds = s.seconds();
  r.warnings.assign(s.warnings().begin(), s.warnings().end());
  r.check_samples = s.check_samples();
  r.check_executor = s.check_executor();
  r.check_error = s.check_error();
  for (const v1::OutputCheck& o : s.output_checks()) {
    r.output_checks.push_back({o.name(), o.psnr_db(), o.snr_db(), o.cosine(), o.max_abs_error(), o.class_scores(),
                               o.top1_agreement(), o.top5_overlap(), o.kl_divergence()});
  }
  return r;
}

v1::Inventory ToProto(const engine::Inventory& inv) {
  v1::Inventory p;
  p.set_path(inv.path);
  p.set_kind(inv.kind);
  p.set_specification_version(inv.spec_version);
  p.set_opset(inv.opset);
  for (const auto& f : inv.inputs) {
    auto* o = p.add_inputs();
    o->set_name(f.name);
    o->set_type(f.type);
  }
  for (const auto& f : inv.outputs) {
    auto* o = p.add_outputs();
    o->set_name(f.name);
    o->set_type(f.type);
  }
  for (const auto& e : inv.weights) {
    auto* o = p.add_weights();
    o->set_name(e.name);
    o->set_function(e.function);
    o->set_op_type(e.op_type);
    for (const auto& c : e.consumers) o->add_consumers(c);
    for (int64_t d : e.shape) o->add_shape(d);
    o->set_dtype(e.dtype);
    o->set_storage(e.storage);
    o->set_bytes(e.bytes);
    o->set_share(e.share);
    o->set_has_statistics(e.has_statistics);
    o->set_sparsity(e.sparsity);
    o->set_distinct_values(e.distinct_values);
  }
  p.set_weight_bytes(inv.weight_bytes);
  p.set_model_bytes(inv.model_bytes);
  return p;
}

engine::Inventory FromProto(const v1::Inventory& p) {
  engine::Inventory inv;
  inv.path = p.path();
  inv.kind = p.kind();
  inv.spec_version = p.specification_version();
  inv.opset = p.opset();
  for (const auto& f : p.inputs()) inv.inputs.push_back({f.name(), f.type()});
  for (const auto& f : p.outputs()) inv.outputs.push_back({f.name(), f.type()});
  for (const auto& o : p.weights()) {
    engine::InventoryEntry e;
    e.name = o.name();
    e.function = o.function();
    e.op_type = o.op_type();
    e.consumers.assign(o.consumers().begin(), o.consumers().end());
    e.shape.assign(o.shape().begin(), o.shape().end());
    e.dtype = o.dtype();
    e.storage = o.storage();
    e.bytes = o.bytes();
    e.share = o.share();
    e.has_statistics = o.has_statistics();
    e.sparsity = o.sparsity();
    e.distinct_values = o.distinct_values();
    inv.weights.push_back(std::move(e));
  }
  inv.weight_bytes = p.weight_bytes();
  inv.model_bytes = p.model_bytes();
  return inv;
}

}  // namespace coremlz::api
