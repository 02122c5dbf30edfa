#include "common/memory_release.h"

#include <malloc.h>

// Defined by tcmalloc (gperftools' C API) when a program links it; weak, so
// that programs without it still link and fall back to glibc.
extern "C" void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));

namespace coremlz {

void ReleaseFreeMemory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    MallocExtension_ReleaseFreeMemory();
  } else {
    malloc_trim(0);
  }
}

}  // namespace coremlz
