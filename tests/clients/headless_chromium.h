// Opening a page the way a person would, in headless Chromium, for the HTML
// report tests: finding the browser, its command line, and telling a real
// screenshot from a blank one.
#ifndef COREMLZ_TESTS_CLIENTS_HEADLESS_CHROMIUM_H_
#define COREMLZ_TESTS_CLIENTS_HEADLESS_CHROMIUM_H_

#include <cstdint>
#include <string>
#include <vector>

namespace coremlz::testing {

// The installed Chromium, or "" (tests then skip).
std::string FindChromium();

// The arguments every headless run shares; add --dump-dom or --screenshot=
// and the page's file:// URL. `profile_dir` keeps runs from sharing state.
std::vector<std::string> HeadlessChromium(const std::string& chromium, const std::string& profile_dir);

// Decodes an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) and
// returns how many distinct colours it has (a blank page has one or two) and
// the most frequent one (the page background, which proves the decoding);
// -1 with *why when it cannot.
int DistinctColors(const std::string& png, std::string* why, uint32_t* most_common);

}  // namespace coremlz::testing

#endif  // COREMLZ_TESTS_CLIENTS_HEADLESS_CHROMIUM_H_
