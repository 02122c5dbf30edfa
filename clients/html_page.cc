#include "clients/html_page.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/render.h"

namespace coremlz::cli {
namespace {

constexpr char kStyle[] = R"(
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1c2430;margin:24px;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5f6b7a;margin-bottom:16px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #dde3ea;border-radius:8px;padding:10px 14px;min-width:150px;background:#f8fafc}
.card .label{color:#5f6b7a;font-size:12px}.card .value{font-size:18px;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e8ecf1;vertical-align:middle}
th{background:#f1f4f8;font-weight:600;position:sticky;top:0}td.num{text-align:right;white-space:nowrap}
td.name{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.warn{background:#fff8e1;border:1px solid #ffe082;border-radius:8px;padding:8px 14px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:10px;overflow:auto}
.bar{vertical-align:middle}
)";

}  // namespace

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string HtmlPageStart(absl::string_view title, absl::string_view extra_style) {
  return absl::StrCat("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", HtmlEscape(title),
                      "</title><style>", kStyle, extra_style, "</style></head><body>\n");
}

std::string HtmlPageEnd() { return "</body></html>\n"; }

std::string HtmlCard(absl::string_view label, absl::string_view value) {
  return absl::StrCat("<div class=\"card\"><div class=\"label\">", HtmlEscape(label), "</div><div class=\"value\">",
                      HtmlEscape(value), "</div></div>");
}

std::string HtmlDb(double db) {
  if (std::isinf(db)) return db > 0 ? "exact" : "-inf";
  if (std::isnan(db)) return "-";
  return absl::StrFormat("%.1f dB", db);
}

const char* QualityColor(double db, double good_db) {
  if (std::isinf(db) || db >= good_db) return "#2e7d32";
  if (db >= good_db - 10) return "#7cb342";
  if (db >= good_db - 20) return "#f9a825";
  return "#c62828";
}

std::string SizeBars(uint64_t before, uint64_t after, uint64_t scale) {
  constexpr double kWidth = 220;
  const double wb = scale ? kWidth * static_cast<double>(before) / static_cast<double>(scale) : 0;
  const double wa = scale ? kWidth * static_cast<double>(after) / static_cast<double>(scale) : 0;
  return absl::StrFormat(
      "<svg class=\"bar\" width=\"%d\" height=\"22\" role=\"img\" aria-label=\"%s to %s\">"
      "<rect x=\"0\" y=\"2\" width=\"%.1f\" height=\"8\" fill=\"#b0bec5\"/>"
      "<rect x=\"0\" y=\"12\" width=\"%.1f\" height=\"8\" fill=\"#1e88e5\"/></svg>",
      static_cast<int>(kWidth), HtmlEscape(HumanBytes(before)), HtmlEscape(HumanBytes(after)), std::max(wb, 1.0),
      std::max(wa, 1.0));
}

}  // namespace coremlz::cli
