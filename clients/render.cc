#include "clients/render.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/json_writer.h"

namespace coremlz::cli {
namespace {

// Left-aligned text columns sized to their widest cell. With a width limit
// (the terminal's), the last column - the free-text note - is cut to fit
// rather than let every line wrap. A first cell (a weight's name) longer
// than kLongName does not widen the column: it stands on a line of its own,
// whole so it can be copied, and its row follows on the next line.
class Table {
 public:
  static constexpr size_t kLongName = 64;

  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render(size_t max_width = 0) const {
    std::vector<size_t> width(rows_[0].size(), 0);
    for (const auto& r : rows_)
      for (size_t c = 0; c < r.size(); ++c) {
        if (c == 0 && r.size() > 1 && r[c].size() > kLongName) continue;
        width[c] = std::max(width[c], r[c].size());
      }
    size_t total = 0;
    for (size_t w : width) total += w + 2;
    total -= 2;
    // What the last column may take; never less than a readable stub.
    constexpr size_t kMinLast = 12;
    if (max_width > 0 && total > max_width && width.back() > kMinLast) {
      const size_t others = total - width.back();
      width.back() = std::max(kMinLast, max_width > others ? max_width - others : 0);
      total = others + width.back();
    }
    std::string out;
    for (size_t i = 0; i < rows_.size(); ++i) {
      std::string line;
      for (size_t c = 0; c < rows_[i].size(); ++c) {
        std::string cell = rows_[i][c];
        if (c == 0 && rows_[i].size() > 1 && cell.size() > width[0]) {
          out += cell + "\n";  // whole, on its own line
          cell.clear();
        }
        if (cell.size() > width[c]) cell = cell.substr(0, width[c] - 3) + "...";
        line += cell;
        if (c + 1 < rows_[i].size()) line += std::string(width[c] - cell.size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
      if (i == 0) out += std::string(total, '-') + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// A list cell (the ops reading a weight, the functions sharing it),
// shortened so one widely shared weight cannot widen the whole table: as
// many names as fit in `width`, then how many were left out (--json lists
// them all).
std::string ShortList(const std::vector<std::string>& items, size_t width) {
  auto more = [&](size_t shown) {
    return shown < items.size() ? absl::StrCat(",+", items.size() - shown, " more") : std::string();
  };
  std::string text;
  size_t shown = 0;
  for (; shown < items.size(); ++shown) {
    const std::string next = absl::StrCat(text.empty() ? "" : ",", items[shown]);
    if (text.size() + next.size() + more(shown + 1).size() > width) break;
    text += next;
  }
  // Not even the first name fits: keep its head rather than nothing.
  if (shown == 0 && !items.empty()) {
    text = items[0].size() > width / 2 ? items[0].substr(0, width / 2) + "..." : items[0];
    shown = 1;
  }
  return text + more(shown);
}

std::string ConsumersText(const std::vector<std::string>& consumers) { return ShortList(consumers, 40); }

// Multifunction packages: a column of the functions reading each weight, only
// when the model has more than one (a single-function table stays as it was).
constexpr size_t kFunctionsWidth = 32;

// The inventory names a shared weight's functions comma-separated.
std::vector<std::string> FunctionsOf(const engine::InventoryEntry& e) {
  if (e.function.empty()) return {};
  return absl::StrSplit(e.function, ',', absl::SkipEmpty());
}

bool SeveralFunctions(const std::vector<std::vector<std::string>>& per_weight) {
  std::set<std::string> all;
  for (const auto& fs : per_weight) all.insert(fs.begin(), fs.end());
  return all.size() > 1;
}

std::string ShapeText(const format::Shape& s) { return absl::StrCat("[", absl::StrJoin(s, "x"), "]"); }

std::string Db(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return absl::StrFormat("%.1f", v);
}

void WriteShape(JsonWriter& w, const format::Shape& s) {
  w.BeginArray();
  for (int64_t d : s) w.Int(d);
  w.EndArray();
}

void WriteDb(JsonWriter& w, double v) {
  // JSON has no infinity: an exact reconstruction is reported as null with
  // "exact": true beside it.
  if (std::isinf(v)) w.Null(); else w.Double(v);
}

}  // namespace

std::string HumanBytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b < 1024) return absl::StrCat(bytes, " B");
  if (b < 1024 * 1024) return absl::StrFormat("%.1f KiB", b / 1024);
  if (b < 1024.0 * 1024 * 1024) return absl::StrFormat("%.2f MiB", b / (1024 * 1024));
  return absl::StrFormat("%.2f GiB", b / (1024.0 * 1024 * 1024));
}

std::vector<std::string> FunctionsOf(const engine::WeightReport& w) {
  if (!w.functions.empty()) return w.functions;
  if (!w.function.empty()) return {w.function};
  return {};
}

std::string RenderInventoryTable(const engine::Inventory& inv, size_t max_width) {
  std::string out = absl::StrCat(inv.path, "\n  ", inv.kind, ", specification version ", inv.spec_version,
                                 inv.opset.empty() ? "" : absl::StrCat(", opset ", inv.opset), "\n");
  for (const auto& f : inv.inputs) absl::StrAppend(&out, "  input  ", f.name, ": ", f.type, "\n");
  for (const auto& f : inv.outputs) absl::StrAppend(&out, "  output ", f.name, ": ", f.type, "\n");
  absl::StrAppend(&out, "  ", inv.weights.size(), " weights, ", HumanBytes(inv.weight_bytes), " of ",
                  HumanBytes(inv.model_bytes), "\n\n");
  std::vector<std::vector<std::string>> functions;
  for (const auto& e : inv.weights) functions.push_back(FunctionsOf(e));
  const bool with_functions = SeveralFunctions(functions);
  std::vector<std::string> header = {"name", "op", "consumers", "shape", "storage", "bytes", "share", "sparsity", "unique"};
  if (with_functions) header.insert(header.begin() + 1, "functions");
  Table t(std::move(header));
  for (size_t i = 0; i < inv.weights.size(); ++i) {
    const auto& e = inv.weights[i];
    std::vector<std::string> row = {e.name, e.op_type, ConsumersText(e.consumers), ShapeText(e.shape), e.storage,
                                    HumanBytes(e.bytes), absl::StrFormat("%.1f%%", 100 * e.share),
                                    e.has_statistics ? absl::StrFormat("%.2f", e.sparsity) : "-",
                                    e.has_statistics ? absl::StrCat(e.distinct_values) : "-"};
    if (with_functions) row.insert(row.begin() + 1, ShortList(functions[i], kFunctionsWidth));
    t.Add(std::move(row));
  }
  return out + t.Render(max_width);
}

std::string RenderInventoryJson(const engine::Inventory& inv) {
  JsonWriter w;
  w.BeginObject();
  w.Key("path").String(inv.path);
  w.Key("kind").String(inv.kind);
  w.Key("specification_version").Int(inv.spec_version);
  w.Key("opset").String(inv.opset);
  for (const char* key : {"inputs", "outputs"}) {
    w.Key(key).BeginArray();
    for (const auto& f : std::string(key) == "inputs" ? inv.inputs : inv.outputs) {
      w.BeginObject().Key("name").String(f.name).Key("type").String(f.type).EndObject();
    }
    w.EndArray();
  }
  w.Key("weight_bytes").Uint(inv.weight_bytes);
  w.Key("model_bytes").Uint(inv.model_bytes);
  w.Key("weights").BeginArray();
  for (const auto& e : inv.weights) {
    w.BeginObject();
    w.Key("name").String(e.name);
    if (!e.function.empty()) w.Key("function").String(e.function);
    w.Key("op_type").String(e.op_type);
    w.Key("consumers").BeginArray();
    for (const auto& c : e.consumers) w.String(c);
    w.EndArray();
    w.Key("shape");
    WriteShape(w, e.shape);
    w.Key("dtype").String(e.dtype);
    w.Key("storage").String(e.storage);
    w.Key("bytes").Uint(e.bytes);
    w.Key("share").Double(e.share);
    if (e.has_statistics) {
      w.Key("sparsity").Double(e.sparsity);
      w.Key("unique_values").Uint(e.distinct_values);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.str() + "\n";
}

std::string RenderReportTable(const engine::CompressionReport& r, bool all_weights, size_t max_width) {
  std::vector<std::vector<std::string>> functions;
  for (const auto& w : r.weights) functions.push_back(FunctionsOf(w));
  const bool with_functions = SeveralFunctions(functions);
  std::vector<std::string> header = {"weight", "technique", "shape", "before", "after", "ratio", "SNR dB", "PSNR dB", "note"};
  if (with_functions) header.insert(header.begin() + 1, "functions");
  Table t(std::move(header));
  int hidden = 0;
  for (size_t i = 0; i < r.weights.size(); ++i) {
    const auto& w = r.weights[i];
    const bool compressed = w.skipped_reason.empty() && w.technique != "none";
    if (!compressed && !all_weights) {
      ++hidden;
      continue;
    }
    const double ratio = w.bytes_after ? static_cast<double>(w.bytes_before) / w.bytes_after : 0;
    std::vector<std::string> row = {w.name, w.technique, ShapeText(w.shape), HumanBytes(w.bytes_before),
                                    compressed ? HumanBytes(w.bytes_after) : "-",
                                    compressed ? absl::StrFormat("%.2fx", ratio) : "-",
                                    compressed ? Db(w.error.snr_db) : "-", compressed ? Db(w.error.psnr_db) : "-",
                                    compressed ? w.params : w.skipped_reason};
    if (with_functions) row.insert(row.begin() + 1, ShortList(functions[i], kFunctionsWidth));
    t.Add(std::move(row));
  }
  std::string out = t.Render(max_width);
  if (hidden) absl::StrAppend(&out, "(", hidden, " weights left as they were; --all lists them with the reason)\n");
  absl::StrAppend(&out, "\n", r.weights_compressed, " weights compressed, ", r.weights_skipped, " skipped; weights ",
                  HumanBytes(r.weight_bytes_before), " -> ", HumanBytes(r.weight_bytes_after),
                  absl::StrFormat(" (%.2fx vs original, %.2fx vs fp16)", r.RatioVsOriginal(), r.RatioVsFp16()),
                  "; model ", HumanBytes(r.model_bytes_before), " -> ", HumanBytes(r.model_bytes_after),
                  absl::StrFormat("; %.2f s", r.seconds), "\n");
  for (const auto& warning : r.warnings) absl::StrAppend(&out, "warning: ", warning, "\n");
  if (r.check_samples > 0) {
    absl::StrAppend(&out, "\noutput check: ", r.check_samples, " synthetic samples, ", r.check_executor, "\n");
    if (!r.check_error.empty()) absl::StrAppend(&out, "  not run: ", r.check_error, "\n");
    else absl::StrAppend(&out, RenderOutputChecks(r.output_checks));
  }
  for (const auto& line : r.validation_lines) absl::StrAppend(&out, "validation: ", line, "\n");
  return out;
}

std::string RenderReportJson(const engine::CompressionReport& r) {
  JsonWriter w;
  w.BeginObject();
  w.Key("model_kind").String(r.model_kind);
  w.Key("specification_version_before").Int(r.spec_version_before);
  w.Key("specification_version_after").Int(r.spec_version_after);
  w.Key("target").String(r.target);
  w.Key("weights").BeginArray();
  for (const auto& x : r.weights) {
    w.BeginObject();
    w.Key("name").String(x.name);
    if (!x.function.empty()) w.Key("function").String(x.function);
    if (x.functions.size() > 1) {  // a weight several functions share, listed once
      w.Key("functions").BeginArray();
      for (const auto& f : x.functions) w.String(f);
      w.EndArray();
    }
    w.Key("op_type").String(x.op_type);
    w.Key("consumers").BeginArray();
    for (const auto& c : x.consumers) w.String(c);
    w.EndArray();
    w.Key("shape");
    WriteShape(w, x.shape);
    w.Key("dtype").String(x.dtype);
    w.Key("technique").String(x.technique);
    w.Key("params").String(x.params);
    w.Key("bytes_before").Uint(x.bytes_before);
    w.Key("bytes_after").Uint(x.bytes_after);
    if (x.skipped_reason.empty()) {
      w.Key("snr_db");
      WriteDb(w, x.error.snr_db);
      w.Key("psnr_db");
      WriteDb(w, x.error.psnr_db);
      w.Key("exact").Bool(x.error.mse == 0);
      w.Key("max_abs_error").Double(x.error.max_abs_error);
      w.Key("sparsity").Double(x.sparsity);
      w.Key("unique_values").Uint(x.distinct_values);
    } else {
      w.Key("skipped_reason").String(x.skipped_reason);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("totals").BeginObject();
  w.Key("weights_compressed").Int(r.weights_compressed);
  w.Key("weights_skipped").Int(r.weights_skipped);
  w.Key("weight_bytes_before").Uint(r.weight_bytes_before);
  w.Key("weight_bytes_after").Uint(r.weight_bytes_after);
  w.Key("fp16_bytes").Uint(r.fp16_bytes);
  w.Key("model_bytes_before").Uint(r.model_bytes_before);
  w.Key("model_bytes_after").Uint(r.model_bytes_after);
  w.Key("ratio_vs_original").Double(r.RatioVsOriginal());
  w.Key("ratio_vs_fp16").Double(r.RatioVsFp16());
  w.Key("seconds").Double(r.seconds);
  w.EndObject();
  w.Key("warnings").BeginArray();
  for (const auto& x : r.warnings) w.String(x);
  w.EndArray();
  if (r.check_samples > 0) {
    w.Key("output_check").BeginObject();
    w.Key("samples").Int(r.check_samples);
    w.Key("executor").String(r.check_executor);
    if (!r.check_error.empty()) w.Key("error").String(r.check_error);
    w.Key("outputs").BeginArray();
    for (const auto& c : r.output_checks) WriteOutputCheckJson(c, w);
    w.EndArray();
    w.EndObject();
  }
  if (!r.validation_json.empty()) {
    w.Key("validation").BeginArray();
    for (const auto& v : r.validation_json) w.Raw(v);
    w.EndArray();
    w.Key("validation_passed").Bool(!r.validation_failed);
  }
  w.EndObject();
  return w.str() + "\n";
}

std::string RenderOutputChecks(const std::vector<engine::OutputCheck>& checks) {
  Table t({"output", "PSNR dB", "SNR dB", "cosine", "max abs err", "top-1", "top-5", "KL"});
  for (const auto& c : checks) {
    t.Add({c.name, Db(c.psnr_db), Db(c.snr_db), absl::StrFormat("%.6f", c.cosine), absl::StrFormat("%.4g", c.max_abs_error),
           c.class_scores ? absl::StrFormat("%.1f%%", 100 * c.top1_agreement) : "-",
           c.class_scores ? absl::StrFormat("%.1f%%", 100 * c.top5_overlap) : "-",
           c.class_scores ? absl::StrFormat("%.3g", c.kl_divergence) : "-"});
  }
  return t.Render();
}

void WriteOutputCheckJson(const engine::OutputCheck& c, JsonWriter& w) {
  w.BeginObject().Key("name").String(c.name);
  // JSON has no infinity: identical outputs are null with "exact": true.
  w.Key("exact").Bool(std::isinf(c.psnr_db) && c.psnr_db > 0);
  w.Key("psnr_db");
  WriteDb(w, c.psnr_db);
  w.Key("snr_db");
  WriteDb(w, c.snr_db);
  w.Key("cosine").Double(c.cosine).Key("max_abs_error").Double(c.max_abs_error);
  if (c.class_scores) {
    w.Key("top1_agreement").Double(c.top1_agreement).Key("top5_overlap").Double(c.top5_overlap);
    w.Key("kl_divergence").Double(c.kl_divergence);
  }
  w.EndObject();
}

}  // namespace coremlz::cli
