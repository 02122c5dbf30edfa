// Locations of reference data and scratch space for tests.
#ifndef COREMLZ_TESTS_TESTING_TEST_ENV_H_
#define COREMLZ_TESTS_TESTING_TEST_ENV_H_

#include <string>

namespace coremlz::testing {

// ../shared beside the checkout (or $COREMLZ_SHARED_DIR).
std::string SharedDir();
std::string GoldenDir();  // SharedDir()/golden
std::string ModelsDir();  // SharedDir()/models
std::string SourceDir();  // the repository root

// A fresh private directory removed when the object dies.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& relative) const { return path_ + "/" + relative; }

 private:
  std::string path_;
};

// Copies a directory tree (tests never write into ../shared).
void CopyTree(const std::string& from, const std::string& to);

}  // namespace coremlz::testing

#endif  // COREMLZ_TESTS_TESTING_TEST_ENV_H_
