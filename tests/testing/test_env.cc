#include "tests/testing/test_env.h"

#include <cstdlib>
#include <filesystem>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace coremlz::testing {

std::string SharedDir() {
  const char* env = std::getenv("COREMLZ_SHARED_DIR");
  if (env != nullptr && *env != '\0') return env;
  return COREMLZ_SHARED_DIR;
}
std::string GoldenDir() { return SharedDir() + "/golden"; }
std::string ModelsDir() { return SharedDir() + "/models"; }
std::string SourceDir() { return COREMLZ_SOURCE_DIR; }

ScratchDir::ScratchDir() {
  auto dir = MakeTempDirectory("coremlz-test-");
  if (!dir.ok()) {
    ADD_FAILURE() << dir.status();
    return;
  }
  path_ = *dir;
}

ScratchDir::~ScratchDir() {
  if (!path_.empty()) (void)RemoveAll(path_);
}

void CopyTree(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive, ec);
  ASSERT_FALSE(ec) << "copy " << from << " -> " << to << ": " << ec.message();
  // ../shared is read-only; copies must be writable.
  for (auto& entry : std::filesystem::recursive_directory_iterator(to)) {
    std::filesystem::permissions(entry.path(), std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::add, ec);
  }
  std::filesystem::permissions(to, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add, ec);
}

}  // namespace coremlz::testing
