// libFuzzer target: Manifest.json parsing and re-serialisation.
#include <cstddef>
#include <cstdint>

#include "format/manifest.h"
#include "format/package.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz::format;
  auto m = Manifest::Parse(absl::string_view(reinterpret_cast<const char*>(data), size), "Manifest.json");
  if (!m.ok()) return 0;
  // What we write must parse back to the same manifest.
  auto again = Manifest::Parse(m->Serialize(), "again");
  if (!again.ok() || again->Serialize() != m->Serialize()) __builtin_trap();
  (void)PackageLayout::FromManifest(*m);
  return 0;
}
