// Runs a fuzz target's entry point over files (regressions, seeds) in a
// normal build, so that every input that ever crashed a target stays tested.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "common/file_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int runs = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::string> files;
    if (coremlz::IsDirectory(argv[i])) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(argv[i], ec)) {
        if (e.path().filename().string()[0] != '.') files.push_back(e.path().string());
      }
      std::sort(files.begin(), files.end());
    } else if (coremlz::PathExists(argv[i])) {
      files.push_back(argv[i]);
    }
    for (const std::string& f : files) {
      auto data = coremlz::ReadFile(f);
      if (!data.ok()) {
        std::fprintf(stderr, "%s\n", std::string(data.status().message()).c_str());
        return 1;
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data->data()), data->size());
      ++runs;
    }
  }
  std::printf("replayed %d inputs\n", runs);
  return 0;
}
