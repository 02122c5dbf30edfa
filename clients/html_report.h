// The compression report as one self-contained HTML page a person opens in a
// browser: totals, warnings, per-weight bars of size before/after and of
// reconstruction quality, the weights left alone, and the config used.
// Inline CSS and SVG only - no script, no font, nothing fetched - so the file
// can be attached to a CI run and opened anywhere, offline.
#ifndef COREMLZ_CLIENTS_HTML_REPORT_H_
#define COREMLZ_CLIENTS_HTML_REPORT_H_

#include <string>

#include "engine/report.h"

namespace coremlz::cli {

struct HtmlReportContext {
  std::string model;        // the input, as the user named it
  std::string output;       // where the compressed model went ("" for report-only)
  std::string config_yaml;  // the config that was applied
};

std::string RenderReportHtml(const engine::CompressionReport& report, const HtmlReportContext& context);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_HTML_REPORT_H_
