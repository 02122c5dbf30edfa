// Conversions between the public API's protobuf messages and the engine's
// structs: configs, reports, inventories.
#ifndef COREMLZ_API_CONVERT_H_
#define COREMLZ_API_CONVERT_H_

#include "absl/status/statusor.h"
#include "coremlz/v1/compressor.pb.h"
#include "engine/config.h"
#include "engine/inventory.h"
#include "engine/report.h"

namespace coremlz::api {

// Validates as it converts (unknown mode/dtype names, bad ranges).
absl::StatusOr<engine::CompressionConfig> FromProto(const v1::CompressionConfig& proto);
v1::CompressionConfig ToProto(const engine::CompressionConfig& config);

// The header's config: the typed one, or the YAML/JSON text (not both).
absl::StatusOr<engine::CompressionConfig> ConfigFromHeader(const v1::CompressHeader& header);

v1::WeightReport ToProto(const engine::WeightReport& w);
engine::WeightReport FromProto(const v1::WeightReport& w);
v1::Summary SummaryOf(const engine::CompressionReport& r);
// Rebuilds a report from streamed rows and the summary (client side).
engine::CompressionReport ReportFrom(const std::vector<v1::WeightReport>& rows, const v1::Summary& summary);

v1::Inventory ToProto(const engine::Inventory& inv);
engine::Inventory FromProto(const v1::Inventory& inv);

}  // namespace coremlz::api

#endif  // COREMLZ_API_CONVERT_H_
