// libFuzzer target: compression configs (YAML/JSON). A parsed config must
// survive YAML output and parse back to the same thing.
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <string>

#include "engine/config_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz::engine;
  auto config = ParseCompressionConfig(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!config.ok()) return 0;
  const std::string yaml = CompressionConfigToYaml(*config);
  auto again = ParseCompressionConfig(yaml);
  if (!again.ok() || CompressionConfigToYaml(*again) != yaml) {
    std::fprintf(stderr, "config does not round-trip: %s\n--- first\n%s\n--- second\n%s\n",
                 again.ok() ? "different YAML" : std::string(again.status().message()).c_str(), yaml.c_str(),
                 again.ok() ? CompressionConfigToYaml(*again).c_str() : "");
    __builtin_trap();
  }
  return 0;
}
