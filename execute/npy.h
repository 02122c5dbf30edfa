// NumPy .npy files, the executor's exchange format for inputs and outputs:
// simple enough to write by hand, and what every Python user can produce
// (np.save) and read (np.load). Version 1.0/2.0/3.0 headers, C order only.
// Read: little-endian float16/32/64, int8/16/32/64, uint8/16/32, bool
// (widened to the executor's float32 / int32 compute types; integers must fit
// int32). Write: float32 for float tensors, int32 for integer ones, bool,
// and strings (a classifier's label) as fixed-width unicode ('<U<n>').
#ifndef COREMLZ_EXECUTE_NPY_H_
#define COREMLZ_EXECUTE_NPY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// Parses .npy bytes; `label` names the source in errors (a file path).
absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes, const std::string& label);
absl::StatusOr<std::string> SerializeNpy(const Tensor& tensor);

absl::StatusOr<Tensor> ReadNpyFile(const std::string& path);
absl::Status WriteNpyFile(const std::string& path, const Tensor& tensor);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_NPY_H_
