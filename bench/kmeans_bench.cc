// Benchmarks for the k-means kernels (bench/README.md explains how to run them).
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "benchmark/benchmark.h"
#include "compress/kmeans1d.h"
#include "compress/vector_kmeans.h"
#include "format/fp16.h"

namespace coremlz::compress {
namespace {

struct Histogram {
  std::vector<double> values;
  std::vector<double> weights;
};

// 0: fp16 histogram of 1M N(0, 0.02) samples (~22k distinct values, the
//    shape of real weights); 1: every finite fp16 value with pseudo-random
//    counts (63487 values); 2: 65536 uniform random doubles.
const Histogram& Data(int kind) {
  static const std::vector<Histogram> data = [] {
    std::vector<Histogram> out(3);
    std::mt19937_64 rng(1);
    std::normal_distribution<float> normal(0, 0.02f);
    std::vector<uint32_t> hist(65536, 0);
    for (int i = 0; i < 1000000; ++i) ++hist[format::FloatToHalf(normal(rng))];
    std::map<double, double> merged;
    for (uint32_t h = 0; h < 65536; ++h) {
      if (hist[h] != 0) merged[format::HalfToFloat(static_cast<uint16_t>(h))] += hist[h];
    }
    for (const auto& [v, c] : merged) {
      out[0].values.push_back(v);
      out[0].weights.push_back(c);
    }
    std::set<double> all;
    for (uint32_t h = 0; h < 65536; ++h) {
      const float f = format::HalfToFloat(static_cast<uint16_t>(h));
      if (std::isfinite(f)) all.insert(f);
    }
    for (double v : all) {
      out[1].values.push_back(v);
      out[1].weights.push_back(static_cast<double>(1 + rng() % 100));
    }
    std::uniform_real_distribution<double> unif(-1, 1);
    std::set<double> u;
    while (u.size() < 65536) u.insert(unif(rng));
    for (double v : u) {
      out[2].values.push_back(v);
      out[2].weights.push_back(static_cast<double>(1 + rng() % 50));
    }
    return out;
  }();
  return data[kind];
}

void BM_OptimalKMeans1D(benchmark::State& state) {
  const Histogram& h = Data(static_cast<int>(state.range(0)));
  const int k = static_cast<int>(state.range(1));
  for (auto _ : state) {
    auto r = OptimalKMeans1D(h.values, h.weights, k);
    benchmark::DoNotOptimize(r);
  }
  state.counters["n"] = static_cast<double>(h.values.size());
}
BENCHMARK(BM_OptimalKMeans1D)
    ->ArgsProduct({{0, 1, 2}, {4, 16, 64, 256}})
    ->Unit(benchmark::kMillisecond);

void BM_VectorKMeans(benchmark::State& state) {
  const int count = static_cast<int>(state.range(0));
  const int dim = static_cast<int>(state.range(1));
  const int k = static_cast<int>(state.range(2));
  std::mt19937_64 rng(2);
  std::normal_distribution<float> normal(0, 0.02f);
  std::vector<float> data(static_cast<size_t>(count) * dim);
  for (float& x : data) x = normal(rng);
  for (auto _ : state) {
    auto r = VectorKMeans(data, dim, k);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_VectorKMeans)
    ->Args({65536, 2, 16})
    ->Args({65536, 4, 16})
    ->Args({65536, 4, 256})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace coremlz::compress
