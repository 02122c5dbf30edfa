#include "tests/clients/headless_chromium.h"

#include <zlib.h>

#include <cstdlib>
#include <map>

#include "common/file_util.h"

namespace coremlz::testing {

std::string FindChromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (PathExists(p)) return p;
  }
  return "";
}

std::vector<std::string> HeadlessChromium(const std::string& chromium, const std::string& profile_dir) {
  return {chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
          "--user-data-dir=" + profile_dir};
}

int DistinctColors(const std::string& png, std::string* why, uint32_t* most_common) {
  if (png.size() < 33 || png.compare(1, 3, "PNG") != 0) return *why = "not a PNG", -1;
  auto be32 = [&](size_t p) {
    return (uint32_t{static_cast<uint8_t>(png[p])} << 24) | (uint32_t{static_cast<uint8_t>(png[p + 1])} << 16) |
           (uint32_t{static_cast<uint8_t>(png[p + 2])} << 8) | uint32_t{static_cast<uint8_t>(png[p + 3])};
  };
  const uint32_t width = be32(16), height = be32(20);
  const int depth = png[24], color = png[25], interlace = png[28];
  if (depth != 8 || (color != 2 && color != 6) || interlace != 0) return *why = "unexpected PNG format", -1;
  const size_t channels = color == 6 ? 4 : 3;
  std::string idat;
  for (size_t p = 8; p + 8 <= png.size();) {
    const uint32_t len = be32(p);
    if (p + 12 + len > png.size()) break;
    if (png.compare(p + 4, 4, "IDAT") == 0) idat.append(png, p + 8, len);
    p += 12 + len;
  }
  const size_t stride = width * channels;
  std::string raw((stride + 1) * height, '\0');
  uLongf raw_len = raw.size();
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_len, reinterpret_cast<const Bytef*>(idat.data()),
                 idat.size()) != Z_OK) {
    return *why = "inflate failed", -1;
  }
  // Undo the per-row filters (PNG spec: None, Sub, Up, Average, Paeth).
  std::vector<uint8_t> prev(stride, 0), cur(stride);
  std::map<uint32_t, uint64_t> colors;
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t filter = static_cast<uint8_t>(raw[y * (stride + 1)]);
    const auto* in = reinterpret_cast<const uint8_t*>(raw.data()) + y * (stride + 1) + 1;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= channels ? cur[x - channels] : 0, b = prev[x], c = x >= channels ? prev[x - channels] : 0;
      int pred = 0;
      switch (filter) {
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: break;
      }
      cur[x] = static_cast<uint8_t>(in[x] + pred);
    }
    for (size_t x = 0; x < stride; x += channels) ++colors[(cur[x] << 16) | (cur[x + 1] << 8) | cur[x + 2]];
    prev.swap(cur);
  }
  uint64_t best = 0;
  for (const auto& [rgb, n] : colors) {
    if (n > best) best = n, *most_common = rgb;
  }
  return static_cast<int>(colors.size());
}

}  // namespace coremlz::testing
