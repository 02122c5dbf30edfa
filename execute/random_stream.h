// The random stream of the executor's random ops and layers (ML Program
// random_*, NeuralNetwork categoricalDistribution). It does NOT reproduce
// Core ML's stream (which is not specified): it is this executor's own,
// deterministic so that a run can be repeated and a model compared with its
// compressed form. A 64-bit Mersenne Twister seeded from the seed and a
// name (an op's first output, a layer's name: two draws with the same
// default seed still differ), with the transforms written here rather than
// the standard library's implementation-defined distributions.
#ifndef COREMLZ_EXECUTE_RANDOM_STREAM_H_
#define COREMLZ_EXECUTE_RANDOM_STREAM_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

namespace coremlz::execute {

class RandomStream {
 public:
  RandomStream(const std::string& name, int64_t seed) {
    // FNV-1a: stable across builds and platforms, unlike absl::Hash.
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
    engine_.seed(h ^ static_cast<uint64_t>(seed) * 0x9e3779b97f4a7c15ull);
  }
  // Uniform in [0, 1), from 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Normal() {
    // Box-Muller; 1 - u keeps the log's argument in (0, 1].
    const double u = 1 - Uniform(), v = Uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * M_PI * v);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_RANDOM_STREAM_H_
