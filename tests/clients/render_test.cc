// The CLI's human-readable tables: what a person sees must stay readable
// whatever the model (a weight read by hundreds of ops, long names).
#include "clients/render.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace coremlz::cli {
namespace {

engine::Inventory OneWeight(std::vector<std::string> consumers) {
  engine::Inventory inv;
  inv.path = "model.mlpackage";
  inv.kind = "mlprogram";
  engine::InventoryEntry e;
  e.name = "w";
  e.op_type = "const";
  e.consumers = std::move(consumers);
  e.shape = {4, 4};
  e.storage = "fp16";
  e.bytes = 32;
  inv.weights.push_back(e);
  return inv;
}

// The widest line of the rendered table.
size_t Widest(const std::string& text) {
  size_t widest = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) widest = std::max(widest, line.size());
  return widest;
}

TEST(RenderTest, ManyConsumersDoNotWidenTheInventoryTable) {
  std::vector<std::string> consumers;
  for (int i = 0; i < 200; ++i) consumers.push_back(absl::StrCat("transformer_layer_", i, "_linear"));
  const std::string table = RenderInventoryTable(OneWeight(consumers));
  EXPECT_LT(Widest(table), 120u) << table;
  EXPECT_NE(table.find("transformer_layer_0_linear"), std::string::npos) << table;
  // The cell says how many it left out; the JSON keeps all of them.
  EXPECT_NE(table.find("more"), std::string::npos) << table;
  const std::string json = RenderInventoryJson(OneWeight(consumers));
  EXPECT_NE(json.find("transformer_layer_199_linear"), std::string::npos);
}

TEST(RenderTest, FewConsumersAreListedInFull) {
  const std::string table = RenderInventoryTable(OneWeight({"conv_1", "conv_2"}));
  EXPECT_NE(table.find("conv_1,conv_2"), std::string::npos) << table;
  EXPECT_EQ(table.find("more"), std::string::npos) << table;
}

TEST(RenderTest, AnOverlongSingleConsumerIsShortened) {
  const std::string name(300, 'x');
  const std::string table = RenderInventoryTable(OneWeight({name, "b"}));
  EXPECT_LT(Widest(table), 120u) << table;
  EXPECT_NE(table.find("+1 more"), std::string::npos) << table;
}

// A weight two functions share is one entry naming both; a weight of one
// function names only that one.
TEST(RenderTest, ReportJsonListsTheFunctionsOfASharedWeight) {
  engine::CompressionReport r;
  r.model_kind = "mlprogram";
  engine::WeightReport shared;
  shared.name = "lm_head";
  shared.function = "decode";
  shared.functions = {"decode", "prefill"};
  engine::WeightReport alone = shared;
  alone.name = "prefill_only";
  alone.function = "prefill";
  alone.functions = {"prefill"};
  r.weights = {shared, alone};
  const std::string json = RenderReportJson(r);
  const size_t at = json.find("\"functions\"");
  ASSERT_NE(at, std::string::npos) << json;
  EXPECT_EQ(json.find("\"functions\"", at + 1), std::string::npos) << "only the shared weight lists functions\n" << json;
  const std::string list = json.substr(at, json.find(']', at) - at);
  EXPECT_NE(list.find("\"decode\""), std::string::npos) << list;
  EXPECT_NE(list.find("\"prefill\""), std::string::npos) << list;
  EXPECT_LT(at, json.find("prefill_only")) << "the list belongs to the shared weight";
}

}  // namespace
}  // namespace coremlz::cli
