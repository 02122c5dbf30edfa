// Human (table) and machine (JSON) renderings of inventories and
// compression reports.
#ifndef COREMLZ_CLIENTS_RENDER_H_
#define COREMLZ_CLIENTS_RENDER_H_

#include <string>
#include <vector>

#include "engine/inventory.h"
#include "common/json_writer.h"
#include "engine/report.h"

namespace coremlz::cli {

std::string HumanBytes(uint64_t bytes);
// Tables. A model with several functions gets a "functions" column (each
// cell shortened like the consumers'); `max_width` > 0 (the terminal's
// columns) cuts the last column so that no line is wider.
std::string RenderInventoryTable(const engine::Inventory& inv, size_t max_width = 0);
std::string RenderInventoryJson(const engine::Inventory& inv);
std::string RenderReportTable(const engine::CompressionReport& report, bool all_weights, size_t max_width = 0);
// The functions reading a weight (empty for NeuralNetwork weights).
std::vector<std::string> FunctionsOf(const engine::WeightReport& w);
std::string RenderReportJson(const engine::CompressionReport& report);
// The output check (compress --check, coremlz compare): a table, and one
// JSON object per output (non-finite dB as null with "exact": true).
std::string RenderOutputChecks(const std::vector<engine::OutputCheck>& checks);
void WriteOutputCheckJson(const engine::OutputCheck& check, JsonWriter& w);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_RENDER_H_
