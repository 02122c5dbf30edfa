// Compression of legacy NeuralNetwork models (.mlmodel), in the forms that
// format can hold: fp16 weights (float16Value), n-bit linear quantization
// (rawValue + LinearQuantizationParams, per tensor or per output channel) and
// n-bit look-up tables (rawValue + LookUpTableQuantizationParams, one table
// per weight). Pruning and the iOS18 forms need an ML Program.
#ifndef COREMLZ_ENGINE_NEURAL_NETWORK_COMPRESSOR_H_
#define COREMLZ_ENGINE_NEURAL_NETWORK_COMPRESSOR_H_

#include "absl/status/statusor.h"
#include "coreml/model.pb.h"
#include "engine/config.h"
#include "engine/job_control.h"
#include "engine/ml_program_compressor.h"
#include "engine/report.h"

namespace coremlz::engine {

// Config matching uses the layer type ("convolution", "innerProduct", ...)
// as op type and the layer name as op name.
absl::StatusOr<CompressionReport> CompressNeuralNetwork(CoreML::Specification::Model* model,
                                                        const CompressionConfig& config,
                                                        const CompressOptions& options, JobControl* control);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_NEURAL_NETWORK_COMPRESSOR_H_
