// Writes the issue-14 compression bench model: an iOS18 ML Program of six
// 2048x2048 linear layers (25.2M weights, N(0, 0.02)), fp16 or fp32, so
// coremlz and coremltools can be timed side by side on the same package.
//   linear_bench_model OUT.mlpackage [fp16|fp32] [LAYERS] [WIDTH]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/model_builder.h"

int main(int argc, char** argv) {
  using coremlz::format::ElementType;
  if (argc < 2 || argc > 5 || argv[1][0] == '-') {  // -h / --help, never an output path
    std::fprintf(stderr, "usage: %s OUT.mlpackage [fp16|fp32] [LAYERS=6] [WIDTH=2048]\n", argv[0]);
    return 1;
  }
  const std::string dtype = argc > 2 ? argv[2] : "fp16";
  int layers = 6, width = 2048;
  if ((argc > 3 && (!absl::SimpleAtoi(argv[3], &layers) || layers < 1)) ||
      (argc > 4 && (!absl::SimpleAtoi(argv[4], &width) || width < 4)) || (dtype != "fp16" && dtype != "fp32")) {
    std::fprintf(stderr, "bad arguments\n");
    return 1;
  }
  const ElementType type = dtype == "fp16" ? ElementType::kFloat16 : ElementType::kFloat32;
  coremlz::testing::ProgramBuilder b(/*spec_version=*/9);  // iOS18
  b.AddInput("x", type, {1, width});
  std::string x = "x";
  for (int l = 0; l < layers; ++l) {
    const std::string p = absl::StrCat("linear_", l);
    const std::string w = b.Const(p + "_weight", coremlz::testing::FloatTensor(
                                                      type, {width, width},
                                                      coremlz::testing::RandomWeights(
                                                          static_cast<uint64_t>(width) * width, 100 + l, 0.02f)));
    const std::string bias =
        b.Const(p + "_bias", coremlz::testing::FloatTensor(type, {width},
                                                           coremlz::testing::RandomWeights(width, 200 + l, 0.02f)));
    x = b.Op("linear", {{"x", x}, {"weight", w}, {"bias", bias}}, p, type, {1, width});
  }
  b.AddOutput(x, type, {1, width});
  if (absl::Status s = b.WritePackage(argv[1]); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
