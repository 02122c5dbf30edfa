// Human (table) and machine (JSON) renderings of inventories and
// compression reports.
#ifndef COREMLZ_CLIENTS_RENDER_H_
#define COREMLZ_CLIENTS_RENDER_H_

#include <string>

#include "engine/inventory.h"
#include "common/json_writer.h"
#include "engine/report.h"

namespace coremlz::cli {

std::string HumanBytes(uint64_t bytes);
std::string RenderInventoryTable(const engine::Inventory& inv);
std::string RenderInventoryJson(const engine::Inventory& inv);
std::string RenderReportTable(const engine::CompressionReport& report, bool all_weights);
std::string RenderReportJson(const engine::CompressionReport& report);
// The output check (compress --check, coremlz compare): a table, and one
// JSON object per output (non-finite dB as null with "exact": true).
std::string RenderOutputChecks(const std::vector<engine::OutputCheck>& checks);
void WriteOutputCheckJson(const engine::OutputCheck& check, JsonWriter& w);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_RENDER_H_
