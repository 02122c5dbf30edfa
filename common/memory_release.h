// Hands freed heap memory back to the operating system. Jobs allocate and
// free tensors of hundreds of MB; the allocator keeps them for the next job
// (that is what makes it fast), and this is called when a server goes idle
// so that an idle server's RSS drops back instead of staying at its peak.
#ifndef COREMLZ_COMMON_MEMORY_RELEASE_H_
#define COREMLZ_COMMON_MEMORY_RELEASE_H_

namespace coremlz {

// tcmalloc's ReleaseFreeMemory when the program links tcmalloc, else glibc's
// malloc_trim. Cheap when there is nothing to release.
void ReleaseFreeMemory();

}  // namespace coremlz

#endif  // COREMLZ_COMMON_MEMORY_RELEASE_H_
