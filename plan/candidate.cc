#include "plan/candidate.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace coremlz::plan {
namespace {

Candidate Palettize(int bits, int64_t weight_threshold) {
  engine::PalettizerConfig p;
  p.mode = engine::PalettizerConfig::Mode::kKMeans;
  p.nbits = bits;
  p.weight_threshold = weight_threshold;
  return {absl::StrCat("palettize", bits), p};
}

Candidate Linear(int bits, int block, int64_t weight_threshold) {
  engine::LinearQuantizerConfig q;
  q.bits = bits;
  q.weight_threshold = weight_threshold;
  if (block > 0) {
    q.granularity = engine::Granularity::kPerBlock;
    q.block_size = {block};
    return {absl::StrCat("int", bits, "-block", block), q};
  }
  return {absl::StrCat("int", bits), q};
}

}  // namespace

absl::StatusOr<std::vector<Candidate>> ParseCandidates(absl::string_view list, int64_t weight_threshold) {
  std::vector<Candidate> out;
  std::set<std::string> seen;
  for (absl::string_view raw : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    const std::string entry(absl::StripAsciiWhitespace(raw));
    int n = 0, block = 0;
    absl::string_view rest = entry;
    std::optional<Candidate> c;
    if (entry == "keep") {
      c = Candidate{"keep", std::nullopt};
    } else if (absl::ConsumePrefix(&rest, "palettize") && absl::SimpleAtoi(rest, &n) && n >= 1 && n <= 8) {
      c = Palettize(n, weight_threshold);
    } else if (absl::ConsumePrefix(&rest, "int")) {
      std::vector<std::string> parts = absl::StrSplit(rest, absl::MaxSplits("-block", 1));
      const bool bits_ok = absl::SimpleAtoi(parts[0], &n) && (n == 4 || n == 8);
      const bool block_ok = parts.size() == 1 || (absl::SimpleAtoi(parts[1], &block) && block > 0);
      if (bits_ok && block_ok) c = Linear(n, block, weight_threshold);
    }
    if (!c) {
      return absl::InvalidArgumentError(absl::StrCat("unknown candidate \"", entry,
                                                     "\" (palettize1..palettize8, int8, int4, int8-blockB, int4-blockB, keep)"));
    }
    if (!seen.insert(c->name).second) return absl::InvalidArgumentError(absl::StrCat("candidate \"", c->name, "\" is listed twice"));
    out.push_back(std::move(*c));
  }
  if (out.empty()) return absl::InvalidArgumentError("--candidates lists no candidate");
  return out;
}

std::vector<Candidate> DefaultCandidates(engine::Target target, int64_t weight_threshold) {
  const bool ios18 = engine::HasIos18Ops(target);
  std::vector<Candidate> out;
  for (int bits : {8, 6, 4, 3, 2}) {
    if (bits == 3 && !ios18) continue;  // 3-bit LUTs are an iOS18 op
    out.push_back(Palettize(bits, weight_threshold));
  }
  out.push_back(Linear(8, 0, weight_threshold));
  if (ios18) out.push_back(Linear(4, 32, weight_threshold));
  out.push_back({"keep", std::nullopt});
  return out;
}

}  // namespace coremlz::plan
