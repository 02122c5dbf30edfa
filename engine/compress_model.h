// Whole-model entry points: compress an .mlpackage directory or an .mlmodel
// file on disk into a new one. The CLI's embedded mode uses these; the
// service drives the same compressors from uploaded streams.
#ifndef COREMLZ_ENGINE_COMPRESS_MODEL_H_
#define COREMLZ_ENGINE_COMPRESS_MODEL_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/arriving_input.h"
#include "engine/config.h"
#include "engine/job_control.h"
#include "engine/ml_program_compressor.h"
#include "engine/report.h"
#include "format/output_target.h"

namespace coremlz::engine {

struct WriteOptions {
  bool overwrite = false;
};

// `input` is an .mlpackage directory or an .mlmodel file; the output has the
// same form. `output` is checked before any work (format::OutputTarget: never
// the input, never anything but a model replaced, and that only with
// `write.overwrite`), and nothing is written there unless the whole job
// succeeds.
//
// `arriving` (coremlzd, a package whose upload is still streaming in): the
// weight files are read as their bytes arrive, and nothing is written until
// the whole upload was checked. Whatever cannot be read in order (a package
// the job cannot open yet, a weight file the upload does not declare, a
// NeuralNetwork) waits for the complete upload and then runs as it would
// have from the start. The output is byte-identical either way.
absl::StatusOr<CompressionReport> CompressModelPath(const std::string& input, const std::string& output,
                                                    const CompressionConfig& config, const CompressOptions& options,
                                                    const WriteOptions& write, JobControl* control = nullptr,
                                                    ArrivingInput* arriving = nullptr);
// The same into an output the caller has already checked.
absl::StatusOr<CompressionReport> CompressModelPath(const std::string& input, format::OutputTarget output,
                                                    const CompressionConfig& config, const CompressOptions& options,
                                                    JobControl* control = nullptr, ArrivingInput* arriving = nullptr);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_COMPRESS_MODEL_H_
