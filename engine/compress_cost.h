// How much CPU a compression config costs per input byte, relative to int8
// per-channel linear quantization: what the service's early start
// (api/stream_admission.h) divides its int8 rate by, so that a slow
// technique, which consumes an arriving upload slowly, starts sooner.
//
// The factors are whole-model CPU-time ratios measured on the fp16 bench
// model (bench/issue14_bench.sh; docs/performance.md): per-block int4 1.25,
// magnitude pruning 1.5, per-tensor k-means 1.8, grouped-channel k-means 13,
// vector k-means 4 (2-bit 2-D) and 6.5 (the rest).
// Techniques not measured there take the factor of a measured one they are
// at least as slow as. A wrong factor costs only overlap or idle time,
// never a result, so the estimate leans low: an underestimated cost starts
// the job later (less overlap), an overestimate could leave a worker
// waiting for bytes - the outcome the admission rule exists to avoid.
// (Passes add up: joint pruning + 4-bit k-means is 3.3 by the sum, 2.95
// measured.)
#ifndef COREMLZ_ENGINE_COMPRESS_COST_H_
#define COREMLZ_ENGINE_COMPRESS_COST_H_

#include "engine/config.h"

namespace coremlz::engine {

// Whether each pass's configs share one relative cost, so that the config's
// cost is what every weight it compresses costs. The service's learned rate
// (api/learned_stream_rate.h) learns only from such jobs: a pass that mixes
// costs counts at its cheapest, which would file a slow job under a fast
// cost and lower that cost's rate.
bool HasOneCostPerPass(const CompressionConfig& config);

// The relative cost of one op config (>= 1).
double RelativeCost(const OpConfig& config);

// Of a whole config: the passes add up (each one reads every weight); within
// a pass, where different weights may take different configs, the cheapest
// config present counts. 1 when the config compresses nothing.
double RelativeCost(const CompressionConfig& config);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_COMPRESS_COST_H_
