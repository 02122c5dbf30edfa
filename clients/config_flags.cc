#include "clients/config_flags.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "engine/config_names.h"
#include "engine/config_parse.h"

namespace coremlz::cli {
using engine::Granularity;

const std::set<std::string>& ConfigValueFlags() {
  static const std::set<std::string> flags = {"config", "palettize", "mode", "granularity", "group-size", "cluster-dim",
                                              "quantize", "quant-mode", "block-size", "prune", "prune-threshold",
                                              "n-m", "prune-block-size", "weight-threshold", "channel-axis"};
  return flags;
}

const std::set<std::string>& ConfigBoolFlags() {
  static const std::set<std::string> flags = {"fp16", "per-channel-scale"};
  return flags;
}

namespace {

// The flag takes a config name as written, or with '-' for each '_'
// ("per-channel").
absl::StatusOr<Granularity> GranularityFlag(const std::string& s) {
  for (Granularity g : engine::kGranularities) {
    const std::string name = engine::GranularityName(g);
    if (s == name || s == absl::StrReplaceAll(name, {{"_", "-"}})) return g;
  }
  return absl::InvalidArgumentError(absl::StrCat("--granularity: unknown value \"", s,
                                                 "\" (per_tensor, per_channel, per_grouped_channel, per_block)"));
}

}  // namespace

absl::StatusOr<engine::CompressionConfig> ConfigFromFlags(const Args& args) {
  bool any_shortcut = false;
  for (const std::string& f : ConfigValueFlags()) any_shortcut |= f != "config" && args.Has(f);
  for (const std::string& f : ConfigBoolFlags()) any_shortcut |= args.Has(f);
  if (auto path = args.Value("config")) {
    if (any_shortcut) {
      return absl::InvalidArgumentError("--config cannot be combined with technique flags; put everything in the file");
    }
    ASSIGN_OR_RETURN(std::string text, ReadFile(*path, 1 << 20));
    auto config = engine::ParseCompressionConfig(text);
    if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat(*path, ": ", config.status().message()));
    return config;
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> threshold, args.Int("weight-threshold"));
  std::optional<engine::OpConfig> prune, compress;

  if (args.Has("prune") || args.Has("prune-threshold") || args.Has("n-m")) {
    if (auto t = args.Value("prune-threshold")) {
      engine::ThresholdPrunerConfig c;
      ASSIGN_OR_RETURN(std::optional<double> v, args.Double("prune-threshold"));
      c.threshold = *v;
      c.minimum_sparsity_percentile = 0.0;
      if (threshold) c.weight_threshold = *threshold;
      prune = c;
    } else {
      engine::MagnitudePrunerConfig c;
      if (auto nm = args.Value("n-m")) {
        std::vector<std::string> parts = absl::StrSplit(*nm, ':');
        int n = 0, m = 0;
        if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &n) || !absl::SimpleAtoi(parts[1], &m)) {
          return absl::InvalidArgumentError(absl::StrCat("--n-m expects N:M such as 2:4, got \"", *nm, "\""));
        }
        c.n_m_ratio = std::make_pair(n, m);
      } else {
        ASSIGN_OR_RETURN(c.target_sparsity, args.Double("prune"));
      }
      ASSIGN_OR_RETURN(std::optional<int64_t> bs, args.Int("prune-block-size"));
      if (bs) c.block_size = static_cast<int>(*bs);
      if (threshold) c.weight_threshold = *threshold;
      prune = c;
    }
  }
  const int techniques = int{args.Has("palettize")} + int{args.Has("quantize")} + int{args.Bool("fp16")};
  if (techniques > 1) return absl::InvalidArgumentError("choose one of --palettize, --quantize and --fp16");
  if (args.Has("palettize")) {
    engine::PalettizerConfig c;
    const std::string mode = absl::AsciiStrToLower(args.Value("mode").value_or("kmeans"));
    // A custom palette needs a "lut", which only a config file can give.
    std::optional<engine::PalettizerConfig::Mode> m = engine::ParsePaletteMode(mode);
    if (!m || *m == engine::PalettizerConfig::Mode::kCustom) {
      return absl::InvalidArgumentError(absl::StrCat("--mode for --palettize: kmeans, uniform or unique; got \"", mode, "\""));
    }
    c.mode = *m;
    const std::string bits = *args.Value("palettize");
    if (c.mode != engine::PalettizerConfig::Mode::kUnique) {
      int n = 0;
      if (!absl::SimpleAtoi(bits, &n)) return absl::InvalidArgumentError(absl::StrCat("--palettize expects a bit count, got \"", bits, "\""));
      c.nbits = n;
    }
    if (auto g = args.Value("granularity")) { ASSIGN_OR_RETURN(c.granularity, GranularityFlag(*g)); }
    ASSIGN_OR_RETURN(std::optional<int64_t> gs, args.Int("group-size"));
    if (gs) {
      c.group_size = *gs;
      if (!args.Has("granularity")) c.granularity = Granularity::kPerGroupedChannel;
    }
    ASSIGN_OR_RETURN(std::optional<int64_t> cd, args.Int("cluster-dim"));
    if (cd) c.cluster_dim = static_cast<int>(*cd);
    ASSIGN_OR_RETURN(std::optional<int64_t> axis, args.Int("channel-axis"));
    if (axis) c.channel_axis = static_cast<int>(*axis);
    c.enable_per_channel_scale = args.Bool("per-channel-scale");
    if (threshold) c.weight_threshold = *threshold;
    compress = c;
  } else if (args.Has("quantize")) {
    engine::LinearQuantizerConfig c;
    const std::string dtype = absl::AsciiStrToLower(*args.Value("quantize"));
    std::optional<engine::QuantDtype> d = engine::ParseQuantDtype(dtype);
    if (!d) return absl::InvalidArgumentError(absl::StrCat("--quantize expects int8, uint8, int4 or uint4; got \"", dtype, "\""));
    c.bits = d->bits;
    c.is_signed = d->is_signed;
    const std::string mode = absl::AsciiStrToLower(args.Value("quant-mode").value_or("linear_symmetric"));
    std::optional<bool> symmetric = engine::QuantModeIsSymmetric(mode);
    if (mode == "symmetric" || mode == "asymmetric") symmetric = mode == "symmetric";  // the flag's plain words
    if (!symmetric) return absl::InvalidArgumentError(absl::StrCat("--quant-mode expects linear_symmetric or linear; got \"", mode, "\""));
    c.symmetric = *symmetric;
    if (auto g = args.Value("granularity")) { ASSIGN_OR_RETURN(c.granularity, GranularityFlag(*g)); }
    ASSIGN_OR_RETURN(std::optional<int64_t> bs, args.Int("block-size"));
    if (bs) {
      c.block_size = {*bs};
      if (!args.Has("granularity")) c.granularity = Granularity::kPerBlock;
    }
    if (threshold) c.weight_threshold = *threshold;
    compress = c;
  } else if (args.Bool("fp16")) {
    engine::Fp16Config c;
    if (threshold) c.weight_threshold = *threshold;
    compress = c;
  }
  if (!prune && !compress) {
    return absl::InvalidArgumentError(
        "no compression requested: pass --config FILE or a technique flag (--palettize N, --quantize int8, "
        "--prune SPARSITY, --fp16)");
  }
  engine::CompressionConfig config;
  if (prune) config.passes.push_back({{prune, {}, {}}, false});
  if (compress) config.passes.push_back({{compress, {}, {}}, prune.has_value()});
  RETURN_IF_ERROR(engine::Validate(config));
  return config;
}

}  // namespace coremlz::cli
