// What coremlz's HTML pages share so they look alike: the stylesheet and the
// page's frame, escaping, and the small drawings (cards, size bars, quality
// colours) the compression report and the plan report are built from.
// Everything is inline - no script, no font, nothing fetched.
#ifndef COREMLZ_CLIENTS_HTML_PAGE_H_
#define COREMLZ_CLIENTS_HTML_PAGE_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace coremlz::cli {

// Text made safe for HTML element content and attribute values.
std::string HtmlEscape(absl::string_view text);

// From the doctype to the opened <body>, with the shared stylesheet and a
// page's own rules after it; the title is escaped. HtmlPageEnd closes what
// it opened.
std::string HtmlPageStart(absl::string_view title, absl::string_view extra_style = "");
std::string HtmlPageEnd();

// A labelled figure in the row of cards at the top of a page.
std::string HtmlCard(absl::string_view label, absl::string_view value);

// Decibels as a person reads them: "exact" for no error, "-" for none.
std::string HtmlDb(double db);

// Quality bands in dB: below good-20 damaged (red), then amber, light green,
// and good or exact (green).
const char* QualityColor(double db, double good_db);

// Two horizontal bars on one scale: size before (grey) and after (blue), so
// a glance down a column shows where the bytes went.
std::string SizeBars(uint64_t before, uint64_t after, uint64_t scale);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_HTML_PAGE_H_
