// The CLI's human-readable tables: what a person sees must stay readable
// whatever the model (a weight read by hundreds of ops, long names).
#include "clients/render.h"

#include "absl/strings/match.h"
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

// A very long weight name (Mosaic has 163-character ones) stands whole on a
// line of its own; the table's columns keep the width of the other names.
TEST(RenderTest, AnOverlongNameGetsItsOwnLineAndTheTableStaysNarrow) {
  engine::Inventory inv = OneWeight({"conv"});
  const std::string long_name = "spatial_pyramid_pooling_" + std::string(140, 'k') + "_weight_0_to_fp16";
  engine::InventoryEntry e = inv.weights[0];
  e.name = long_name;
  inv.weights.push_back(e);
  const std::string table = RenderInventoryTable(inv);
  std::vector<std::string> lines = absl::StrSplit(table, '\n');
  size_t at = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == long_name) at = i;
  }
  ASSERT_LT(at + 1, lines.size()) << "the name alone on its line, whole:\n" << table;
  // Its row follows with an empty name cell, aligned with the short name's row.
  const std::string& row = lines[at + 1];
  const std::string& short_row = lines[at - 1];
  EXPECT_EQ(row.find_first_not_of(' '), short_row.find("const")) << table;
  size_t widest_row = 0;
  for (const auto& l : lines) {
    if (l != long_name) widest_row = std::max(widest_row, l.size());
  }
  EXPECT_LT(widest_row, 110u) << table;
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

engine::WeightReport Row(const std::string& name, std::vector<std::string> functions, std::string params = "nbits=4") {
  engine::WeightReport w;
  w.name = name;
  w.function = functions.empty() ? "" : functions[0];
  w.functions = std::move(functions);
  w.technique = "palettize";
  w.params = std::move(params);
  w.shape = {128, 128};
  w.bytes_before = 32768;
  w.bytes_after = 8192;
  return w;
}

// The header line and the row of `name`.
std::pair<std::string, std::string> HeaderAndRow(const std::string& table, const std::string& name) {
  std::vector<std::string> lines = absl::StrSplit(table, '\n');
  std::string row;
  for (const std::string& l : lines) {
    if (absl::StartsWith(l, name + " ")) row = l;
  }
  return {lines[0], row};
}

TEST(RenderTest, ReportTableNamesTheFunctionsOfEachWeightOfAMultifunctionModel) {
  engine::CompressionReport r;
  r.weights = {Row("lm_head", {"decode", "prefill"}), Row("prefill_only", {"prefill"})};
  const std::string table = RenderReportTable(r, false);
  auto [header, shared] = HeaderAndRow(table, "lm_head");
  EXPECT_NE(header.find("functions"), std::string::npos) << table;
  EXPECT_NE(shared.find("decode,prefill"), std::string::npos) << table;
  auto [h, alone] = HeaderAndRow(table, "prefill_only");
  EXPECT_NE(alone.find("prefill"), std::string::npos) << table;
  EXPECT_EQ(alone.find("decode"), std::string::npos) << table;
  // The column sits where the header says.
  EXPECT_EQ(shared.find("decode,prefill"), header.find("functions")) << table;

  // One function: the table is as it always was.
  engine::CompressionReport single;
  single.weights = {Row("conv", {"main"}), Row("fc", {"main"})};
  EXPECT_EQ(RenderReportTable(single, false).find("functions"), std::string::npos);
  EXPECT_EQ(RenderReportTable(single, false).find("main"), std::string::npos);
}

TEST(RenderTest, AWeightOfManyFunctionsDoesNotWidenTheTable) {
  std::vector<std::string> functions;
  for (int i = 0; i < 50; ++i) functions.push_back(absl::StrCat("decode_context_", i));
  engine::CompressionReport r;
  r.weights = {Row("w", functions)};
  const std::string wide = RenderReportTable(r, false);
  engine::CompressionReport two;
  two.weights = {Row("w", {"decode_context_0", "decode_context_1"})};
  EXPECT_LE(Widest(wide), Widest(RenderReportTable(two, false)) + 10) << wide;
  EXPECT_NE(wide.find("decode_context_0"), std::string::npos) << wide;
  EXPECT_NE(wide.find("more"), std::string::npos) << wide;
  EXPECT_NE(RenderReportJson(r).find("decode_context_49"), std::string::npos) << "the JSON lists them all";
}

TEST(RenderTest, InventoryTableNamesTheFunctionsOfASharedWeight) {
  engine::Inventory inv = OneWeight({"linear.weight"});
  inv.weights[0].function = "decode,prefill";
  const std::string table = RenderInventoryTable(inv);
  EXPECT_NE(table.find("functions"), std::string::npos) << table;
  EXPECT_NE(table.find("decode,prefill"), std::string::npos) << table;
  EXPECT_EQ(RenderInventoryTable(OneWeight({"linear.weight"})).find("functions"), std::string::npos);
}

TEST(RenderTest, ATerminalWidthCutsTheNoteNotTheNumbers) {
  engine::CompressionReport r;
  const std::string params = "mode=linear_symmetric dtype=int4 granularity=per_block block_size=32";
  r.weights = {Row("gather_0_x_0", {"decode", "prefill"}, params), Row("logits_weight_0", {"decode", "prefill"}, params)};
  const std::string full = RenderReportTable(r, false);
  ASSERT_GT(Widest(full), 120u) << full;
  EXPECT_NE(full.find(params), std::string::npos) << "no limit: every line whole";
  const std::string fitted = RenderReportTable(r, false, 120);
  // Every table line fits; the summary below is prose, not a table line.
  const std::string table_part = fitted.substr(0, fitted.find("\n\n"));
  EXPECT_LE(Widest(table_part), 120u) << fitted;
  EXPECT_NE(fitted.find("mode=linear_sym"), std::string::npos) << fitted;
  EXPECT_NE(fitted.find("..."), std::string::npos) << fitted;
  for (const char* kept : {"decode,prefill", "32.0 KiB", "8.0 KiB", "4.00x"}) {
    EXPECT_NE(fitted.find(kept), std::string::npos) << kept << "\n" << fitted;
  }
  // A terminal wide enough changes nothing.
  EXPECT_EQ(RenderReportTable(r, false, 1000), full);
}

}  // namespace
}  // namespace coremlz::cli
