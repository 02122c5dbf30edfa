// The sampling and selection ops: resample and affine (against the
// expected values of coremltools' own op tests, which Core ML produces),
// crop_resize (TensorFlow crop_and_resize points worked out by hand),
// iOS17 resize (by hand and against resize_bilinear /
// resize_nearest_neighbor, which it generalises), non_zero and
// non_maximum_suppression (hand-built boxes).
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "op_test_util.h"

namespace coremlz::execute::testing {
namespace {

void ExpectValues(const Tensor& got, const Shape& shape, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_EQ(got.shape(), shape);
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got.AsDouble(i), want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

absl::StatusCode Code(const absl::StatusOr<std::vector<Tensor>>& r) { return r.status().code(); }

Tensor F(Shape shape, std::vector<float> v) { return Tensor::Float(std::move(shape), std::move(v)); }

// ---- resample / affine: coremltools' test_image_resizing.py cases ----

Args ResampleArgs(const Tensor& coords, const std::string& sampling, const std::string& padding, float pad,
                  const std::string& mode, bool align) {
  return {{"x", {F({1, 1, 2, 2}, {11, 22, 33, 44})}},
          {"coordinates", {coords}},
          {"sampling_mode", {Str(sampling)}},
          {"padding_mode", {Str(padding)}},
          {"padding_value", {Tensor::FloatScalar(pad)}},
          {"coordinates_mode", {Str(mode)}},
          {"align_corners", {BoolScalar(align)}}};
}

TEST(Resample, EveryPaddingAndCoordinateModeAsCoreML) {
  const Tensor coords = F({1, 2, 2, 2}, {-1, -2, -3.7f, -1, 0, 0, 3.5f, 1.2f});
  const Tensor int_coords = Tensor::Int({1, 2, 2, 2}, {0, 0, 1, 1, 0, 0, 1, 1});
  struct Case {
    std::string sampling, padding;
    float pad;
    std::string mode;
    bool align;
    std::vector<double> want, want_int;
  };
  const Case cases[] = {
      {"bilinear", "constant", 6.17f, "normalized_minus_one_to_one", true, {8.585, 6.17, 27.5, 6.17}, {27.5, 44, 27.5, 44}},
      {"nearest", "border", -1, "unnormalized", false, {11, 11, 11, 44}, {11, 44, 11, 44}},
      {"bilinear", "reflection", -1, "normalized_zero_to_one", true, {22, 36.3, 11, 34.1}, {11, 44, 11, 44}},
      {"nearest", "symmetric", -1, "normalized_zero_to_one", false, {22, 33, 11, 33}, {11, 44, 11, 44}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.padding);
    for (int opset : {15, 17}) {
      auto got = RunOp("resample", ResampleArgs(coords, c.sampling, c.padding, c.pad, c.mode, c.align), opset);
      ASSERT_TRUE(got.ok()) << got.status();
      ExpectValues((*got)[0], {1, 1, 2, 2}, c.want, 1e-4);
    }
    auto got = RunOp("resample", ResampleArgs(int_coords, c.sampling, c.padding, c.pad, c.mode, c.align));
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectValues((*got)[0], {1, 1, 2, 2}, c.want_int, 1e-4);
  }
  EXPECT_EQ(Code(RunOp("resample", ResampleArgs(coords, "cubic", "border", 0, "unnormalized", false))),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("resample", ResampleArgs(coords, "nearest", "wrap", 0, "unnormalized", false))),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(RunOp("resample", ResampleArgs(F({1, 2, 2, 1}, {0, 0, 0, 0}), "nearest", "border", 0,
                                                "unnormalized", false))),
            absl::StatusCode::kInvalidArgument);  // last dim not 2
  EXPECT_EQ(Code(RunOp("resample", ResampleArgs(F({1, 1, 1, 2}, {NAN, 0}), "nearest", "border", 0,
                                                "unnormalized", false))),
            absl::StatusCode::kInvalidArgument);
}

TEST(Affine, MatchesCoreMLOnTheOpTestsCase) {
  auto args = [](int64_t oh, int64_t ow) {
    return Args{{"x", {F({1, 1, 2, 2}, {11, 22, 33, 44})}},
                {"transform_matrix", {F({1, 6}, {-1, -2, -3.7f, -1, 3.5f, 1.2f})}},
                {"output_height", {Tensor::IntScalar(static_cast<int32_t>(oh))}},
                {"output_width", {Tensor::IntScalar(static_cast<int32_t>(ow))}},
                {"sampling_mode", {Str("bilinear")}},
                {"padding_mode", {Str("constant")}},
                {"padding_value", {Tensor::FloatScalar(0)}},
                {"coordinates_mode", {Str("normalized_minus_one_to_one")}},
                {"align_corners", {BoolScalar(true)}}};
  };
  auto got = RunOp("affine", args(3, 3));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 3, 3}, {10.752501, 2.5025, 0.0, 1.9799997, 0, 0, 0, 0, 0}, 1e-4);
  got = RunOp("affine", args(2, 5));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 2, 5}, {10.752501, 5.94, 2.5025, 0.44000006, 0, 0, 0, 0, 0, 0}, 1e-4);
  // The identity transform returns the image.
  Args identity = args(2, 2);
  identity["transform_matrix"] = {F({1, 6}, {1, 0, 0, 0, 1, 0})};
  got = RunOp("affine", identity);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 2, 2}, {11, 22, 33, 44});
  Args unaligned = args(2, 2);
  unaligned["align_corners"] = {BoolScalar(false)};
  EXPECT_EQ(Code(RunOp("affine", unaligned)), absl::StatusCode::kInvalidArgument);
}

// ---- crop_resize ----

Tensor Image4x4() {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i + 1);  // x[i][j] = 1 + 4i + j
  return F({1, 1, 4, 4}, v);
}

Args CropArgs(const Tensor& roi, int64_t th, int64_t tw, const std::string& sampling, bool normalized = false) {
  return {{"x", {Image4x4()}},
          {"roi", {roi}},
          {"target_height", {Tensor::IntScalar(static_cast<int32_t>(th))}},
          {"target_width", {Tensor::IntScalar(static_cast<int32_t>(tw))}},
          {"normalized_coordinates", {BoolScalar(normalized)}},
          {"sampling_mode", {Str(sampling)}}};
}

TEST(CropResize, AlignCornersPointsAsCropAndResize) {
  // Box rows 1..2, cols 1..2: 2 x 2 takes its corners; 3 x 3 adds midpoints.
  Tensor roi = F({1, 1, 4, 1, 1}, {1, 1, 2, 2});
  auto got = RunOp("crop_resize", CropArgs(roi, 2, 2, "ALIGN_CORNERS"), 15);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 1, 2, 2}, {6, 7, 10, 11});
  got = RunOp("crop_resize", CropArgs(roi, 3, 3, "ALIGN_CORNERS"), 16);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 1, 3, 3}, {6, 6.5, 7, 8, 8.5, 9, 10, 10.5, 11});
  // One point: the box centre (ALIGN_CORNERS) or its start (STRICT_).
  got = RunOp("crop_resize", CropArgs(roi, 1, 1, "ALIGN_CORNERS"));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 1, 1, 1}, {8.5});
  got = RunOp("crop_resize", CropArgs(roi, 1, 1, "STRICT_ALIGN_CORNERS"));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 1, 1, 1}, {6});
  // Normalized coordinates scale by (size - 1), with an image index first.
  got = RunOp("crop_resize", CropArgs(F({1, 1, 5, 1, 1}, {0, 0, 0, 1.f / 3, 1.f / 3}), 2, 2, "ALIGN_CORNERS", true));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 1, 2, 2}, {1, 2, 5, 6});
  // Points outside the image read pad_value (iOS16).
  Args outside = CropArgs(F({1, 1, 4, 1, 1}, {-1, 0, 1, 1}), 3, 2, "ALIGN_CORNERS");
  outside["pad_value"] = {Tensor::FloatScalar(-7)};
  got = RunOp("crop_resize", outside, 16);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 1, 3, 2}, {-7, -7, 1, 2, 5, 6});
  // Centre-size boxes.
  Args centre = CropArgs(F({1, 1, 4, 1, 1}, {1.5f, 1.5f, 1, 1}), 2, 2, "ALIGN_CORNERS");
  centre["box_coordinate_mode"] = {Str("CENTER_SIZE_HEIGHT_FIRST")};
  got = RunOp("crop_resize", centre);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 1, 1, 2, 2}, {6, 7, 10, 11});
  // Modes that do not place points in a box are UNIMPLEMENTED.
  EXPECT_EQ(Code(RunOp("crop_resize", CropArgs(roi, 2, 2, "DEFAULT"))), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Code(RunOp("crop_resize", CropArgs(roi, 2, 2, "NOPE"))), absl::StatusCode::kInvalidArgument);
}

TEST(CropResize, IOS17BoxesWithImageIndices) {
  Tensor x = Tensor::Float({2, 1, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 40});
  Args args = {{"x", {x}},
               {"boxes", {F({2, 4}, {0, 0, 1, 1, 0, 0, 0, 1})}},
               {"box_indices", {Ints({1, 0})}},
               {"target_height", {Tensor::IntScalar(1)}},
               {"target_width", {Tensor::IntScalar(2)}},
               {"sampling_mode", {Str("ALIGN_CORNERS")}}};
  auto got = RunOp("crop_resize", args, 17);
  ASSERT_TRUE(got.ok()) << got.status();
  // Box 0 on image 1: row centre 0.5, cols 0 and 1; box 1 on image 0: row 0.
  ExpectValues((*got)[0], {2, 1, 1, 2}, {20, 30, 1, 2});
  args["box_indices"] = {Ints({2, 0})};
  EXPECT_EQ(Code(RunOp("crop_resize", args, 17)), absl::StatusCode::kInvalidArgument);
}

// ---- iOS17 resize ----

TEST(Resize, LinearAndNearestAsTheFixedSizeOps) {
  std::mt19937 rng(51);
  Tensor x = Random(rng, {2, 3, 4, 5});
  for (const char* mode : {"DEFAULT", "ALIGN_CORNERS", "STRICT_ALIGN_CORNERS", "OFFSET_CORNERS", "UNALIGN_CORNERS"}) {
    SCOPED_TRACE(mode);
    auto want = RunOp("resize_bilinear", {{"x", {x}},
                                          {"target_size_height", {Tensor::IntScalar(7)}},
                                          {"target_size_width", {Tensor::IntScalar(3)}},
                                          {"sampling_mode", {Str(mode)}}});
    ASSERT_TRUE(want.ok()) << want.status();
    // shape [K = 3] with resized_dims 2: its last two entries.
    auto got = RunOp("resize", {{"x", {x}},
                                {"shape", {Ints({9, 7, 3})}},
                                {"resized_dims", {Tensor::IntScalar(2)}},
                                {"sampling_mode", {Str(mode)}}},
                     17);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ((*got)[0].shape(), (Shape{2, 3, 7, 3}));
    for (int64_t i = 0; i < (*got)[0].size(); ++i) ASSERT_FLOAT_EQ((*got)[0].floats()[i], (*want)[0].floats()[i]);
  }
  auto want = RunOp("resize_nearest_neighbor", {{"x", {x}},
                                                {"target_size_height", {Tensor::IntScalar(4)}},
                                                {"target_size_width", {Tensor::IntScalar(9)}}});
  ASSERT_TRUE(want.ok()) << want.status();
  // A 0 keeps x's size.
  auto got = RunOp("resize", {{"x", {x}},
                              {"shape", {Ints({0, 9})}},
                              {"resized_dims", {Tensor::IntScalar(2)}},
                              {"interpolation_mode", {Str("NEAREST_NEIGHBOR")}}},
                   17);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ((*got)[0].shape(), (Shape{2, 3, 4, 9}));
  for (int64_t i = 0; i < (*got)[0].size(); ++i) ASSERT_EQ((*got)[0].floats()[i], (*want)[0].floats()[i]);
}

TEST(Resize, OneDimByHandIntegersAndRefusals) {
  Tensor x = F({1, 3}, {0, 1, 2});
  auto got = RunOp("resize", {{"x", {x}},
                              {"shape", {Ints({5})}},
                              {"resized_dims", {Tensor::IntScalar(1)}},
                              {"sampling_mode", {Str("ALIGN_CORNERS")}}},
                   17);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {1, 5}, {0, 0.5, 1, 1.5, 2});
  // Nearest of integers: half-pixel centres, input floor((i + 0.5) * 3 / 6).
  got = RunOp("resize", {{"x", {Tensor::Int({3}, {7, 8, 9})}},
                         {"shape", {Ints({6})}},
                         {"resized_dims", {Tensor::IntScalar(1)}},
                         {"interpolation_mode", {Str("NEAREST_NEIGHBOR")}}},
              17);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].dtype(), DType::kInt32);
  ExpectValues((*got)[0], {6}, {7, 7, 8, 8, 9, 9});
  auto run = [&](const Tensor& in, std::vector<int32_t> shape, int dims, const std::string& interp,
                 const std::string& mode) {
    return RunOp("resize", {{"x", {in}},
                            {"shape", {Ints(std::move(shape))}},
                            {"resized_dims", {Tensor::IntScalar(dims)}},
                            {"interpolation_mode", {Str(interp)}},
                            {"sampling_mode", {Str(mode)}}},
                 17);
  };
  EXPECT_EQ(Code(run(x, {5}, 1, "NEAREST_NEIGHBOR", "ALIGN_CORNERS")), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Code(run(Tensor::Int({3}, {1, 2, 3}), {5}, 1, "LINEAR", "DEFAULT")), absl::StatusCode::kUnimplemented);
  std::mt19937 rng(52);
  EXPECT_EQ(Code(run(Random(rng, {2, 2, 2}), {3, 3, 3}, 3, "LINEAR", "DEFAULT")),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Code(run(x, {5, 5, 5}, 1, "LINEAR", "DEFAULT")), absl::StatusCode::kInvalidArgument);  // K > rank
  EXPECT_EQ(Code(run(x, {5}, 2, "LINEAR", "DEFAULT")), absl::StatusCode::kInvalidArgument);        // dims > K
  EXPECT_EQ(Code(run(x, {-2}, 1, "LINEAR", "DEFAULT")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(run(x, {5}, 1, "CUBIC", "DEFAULT")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(run(F({2, 3}, {0, 1, 2, 3, 4, 5}), {1 << 30}, 1, "NEAREST_NEIGHBOR", "DEFAULT")),
            absl::StatusCode::kResourceExhausted);  // checked before allocating
}

// ---- non_zero ----

TEST(NonZero, IndicesInRowMajorOrder) {
  auto got = RunOp("non_zero", {{"x", {F({2, 3}, {0, 1.5f, 0, -2, 0, 3})}}});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].dtype(), DType::kInt32);
  ExpectValues((*got)[0], {3, 2}, {0, 1, 1, 0, 1, 2});
  got = RunOp("non_zero", {{"x", {Tensor::Bool({4}, {0, 1, 1, 0})}}});
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[0], {2, 1}, {1, 2});
  got = RunOp("non_zero", {{"x", {Tensor::Int({2, 2}, {0, 0, 0, 0})}}});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].shape(), (Shape{0, 2}));
}

// ---- non_maximum_suppression ----

// Three boxes (x, y, w, h): 0 and 1 overlap (IoU 3.8 / 4.2), 2 is apart.
// Scores [B, K = 2]: box 1 belongs to class 1, the others to class 0.
const std::vector<float> kBoxes = {0, 0, 2, 2, 0.1f, 0, 2, 2, 5, 5, 2, 2};
const std::vector<float> kScores = {0.9f, 0.1f, 0.1f, 0.8f, 0.7f, 0.2f};

Args NmsArgs(float iou, float score, int max_boxes, bool per_class) {
  return {{"boxes", {F({1, 3, 4}, kBoxes)}},
          {"scores", {F({1, 3, 2}, kScores)}},
          {"iou_threshold", {Tensor::FloatScalar(iou)}},
          {"score_threshold", {Tensor::FloatScalar(score)}},
          {"max_boxes", {Tensor::IntScalar(max_boxes)}},
          {"per_class_suppression", {BoolScalar(per_class)}}};
}

TEST(NonMaximumSuppression, GreedyByScoreWithPadding) {
  auto got = RunOp("non_maximum_suppression", NmsArgs(0.5f, 0, 3, false), 15, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 4u);
  ExpectValues((*got)[0], {1, 3, 4}, {0, 0, 2, 2, 5, 5, 2, 2, 0, 0, 0, 0});
  ExpectValues((*got)[1], {1, 3, 2}, {0.9, 0.1, 0.7, 0.2, 0, 0}, 1e-6);
  ExpectValues((*got)[2], {1, 3}, {0, 2, -1});
  ExpectValues((*got)[3], {1}, {2});
  // IoU 0.905 is not above 0.95: all three, in score order.
  got = RunOp("non_maximum_suppression", NmsArgs(0.95f, 0, 3, false), 15, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[2], {1, 3}, {0, 1, 2});
  // Per class, box 1 (class 1) is not suppressed by box 0 (class 0).
  got = RunOp("non_maximum_suppression", NmsArgs(0.5f, 0, 2, true), 15, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[2], {1, 2}, {0, 1});
  // The score threshold drops box 2; above every score, the best box alone.
  got = RunOp("non_maximum_suppression", NmsArgs(0.5f, 0.75f, 3, false), 15, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[2], {1, 3}, {0, -1, -1});
  ExpectValues((*got)[3], {1}, {1});
  got = RunOp("non_maximum_suppression", NmsArgs(0.5f, 0.95f, 3, false), 15, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectValues((*got)[2], {1, 3}, {0, -1, -1});
  ExpectValues((*got)[3], {1}, {1});
}

TEST(NonMaximumSuppression, IOS17TransposedLayoutWithoutThreshold) {
  // [n, 4, B] and [n, K, B]: kBoxes and kScores transposed.
  std::vector<float> boxes(12), scores(6);
  for (int b = 0; b < 3; ++b) {
    for (int k = 0; k < 4; ++k) boxes[k * 3 + b] = kBoxes[b * 4 + k];
    for (int k = 0; k < 2; ++k) scores[k * 3 + b] = kScores[b * 2 + k];
  }
  Args args = {{"boxes", {F({1, 4, 3}, boxes)}},
               {"scores", {F({1, 2, 3}, scores)}},
               {"iou_threshold", {Tensor::FloatScalar(0.5f)}},
               {"max_boxes", {Tensor::IntScalar(2)}}};
  auto got = RunOp("non_maximum_suppression", args, 17, 3);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  ExpectValues((*got)[0], {1, 4, 2}, {0, 5, 0, 5, 2, 2, 2, 2});
  ExpectValues((*got)[1], {1, 2, 2}, {0.9, 0.7, 0.1, 0.2}, 1e-6);
  ExpectValues((*got)[2], {1, 2}, {0, 2});
  args["boxes"] = {F({1, 3, 4}, kBoxes)};
  EXPECT_EQ(Code(RunOp("non_maximum_suppression", args, 17, 3)), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::execute::testing
