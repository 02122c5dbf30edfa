// Reading what Apple's tools and the coremlz harness print: `devicectl list
// devices` JSON and the harness's result JSON. Separate from the backend
// that runs the commands so that the parsing, which is most of what can be
// tested without a Mac, is tested on its own (tests/workers/macos_backend_test
// feeds it recorded outputs).
#include "workers/runner/macos_outputs.h"

#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace coremlz::runner {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// The result schema this backend understands (clients/runner/harness/README.md).
constexpr char kHarnessSchema[] = "coremlz.harness.result/1";

absl::StatusOr<Struct> ParseJson(const std::string& json, absl::string_view what) {
  Struct root;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &root);
  if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat(what, " is not a JSON object: ", status.ToString()));
  return root;
}

const Value* Get(const Struct& s, const char* key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second;
}

const Struct& GetStruct(const Struct& s, const char* key) {
  const Value* v = Get(s, key);
  return v != nullptr && v->kind_case() == Value::kStructValue ? v->struct_value() : Struct::default_instance();
}

const Struct* FindStruct(const Struct& s, const char* key) {
  const Value* v = Get(s, key);
  return v != nullptr && v->kind_case() == Value::kStructValue ? &v->struct_value() : nullptr;
}

const ListValue* GetList(const Struct& s, const char* key) {
  const Value* v = Get(s, key);
  return v != nullptr && v->kind_case() == Value::kListValue ? &v->list_value() : nullptr;
}

std::string GetString(const Struct& s, const char* key) {
  const Value* v = Get(s, key);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : std::string();
}

// Numbers, and the strings the harness writes for what JSON cannot hold.
std::optional<double> GetNumber(const Struct& s, const char* key) {
  const Value* v = Get(s, key);
  if (v == nullptr) return std::nullopt;
  if (v->kind_case() == Value::kNumberValue) return v->number_value();
  if (v->kind_case() == Value::kStringValue) {
    const std::string t = absl::AsciiStrToLower(v->string_value());
    if (t == "inf" || t == "+inf" || t == "infinity") return std::numeric_limits<double>::infinity();
    if (t == "-inf" || t == "-infinity") return -std::numeric_limits<double>::infinity();
    if (t == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  return std::nullopt;
}

double NumberOr(const Struct& s, const char* key, double fallback) { return GetNumber(s, key).value_or(fallback); }

}  // namespace

std::string ChipForProductType(const std::string& product_type) {
  // Apple's published specifications; only phones a runner is likely to
  // hold. Anything else shows devicectl's marketing name instead.
  static const std::map<std::string, std::string> kChips = {
      {"iPhone12,1", "A13 Bionic"}, {"iPhone12,3", "A13 Bionic"}, {"iPhone12,5", "A13 Bionic"},
      {"iPhone12,8", "A13 Bionic"}, {"iPhone13,1", "A14 Bionic"}, {"iPhone13,2", "A14 Bionic"},
      {"iPhone13,3", "A14 Bionic"}, {"iPhone13,4", "A14 Bionic"}, {"iPhone14,2", "A15 Bionic"},
      {"iPhone14,3", "A15 Bionic"}, {"iPhone14,4", "A15 Bionic"}, {"iPhone14,5", "A15 Bionic"},
      {"iPhone14,6", "A15 Bionic"}, {"iPhone14,7", "A15 Bionic"}, {"iPhone14,8", "A15 Bionic"},
      {"iPhone15,2", "A16 Bionic"}, {"iPhone15,3", "A16 Bionic"}, {"iPhone15,4", "A16 Bionic"},
      {"iPhone15,5", "A16 Bionic"}, {"iPhone16,1", "A17 Pro"},    {"iPhone16,2", "A17 Pro"},
      {"iPhone17,1", "A18 Pro"},    {"iPhone17,2", "A18 Pro"},    {"iPhone17,3", "A18"},
      {"iPhone17,4", "A18"},        {"iPhone17,5", "A18"},
  };
  auto it = kChips.find(product_type);
  return it == kChips.end() ? std::string() : it->second;
}

absl::StatusOr<std::vector<v1::DeviceInfo>> ParseDevicectlDevices(const std::string& json, bool harness_ready) {
  ASSIGN_OR_RETURN(Struct root, ParseJson(json, "devicectl list devices output"));
  const Struct* result = FindStruct(root, "result");
  const ListValue* devices = result != nullptr ? GetList(*result, "devices") : nullptr;
  if (devices == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("devicectl list devices output has no result.devices (outcome \"",
                                                   GetString(GetStruct(root, "info"), "outcome"), "\")"));
  }
  std::vector<v1::DeviceInfo> out;
  for (const Value& entry : devices->values()) {
    if (entry.kind_case() != Value::kStructValue) continue;
    const Struct& d = entry.struct_value();
    const Struct& hw = GetStruct(d, "hardwareProperties");
    const Struct& dp = GetStruct(d, "deviceProperties");
    const Struct& cp = GetStruct(d, "connectionProperties");
    if (absl::EqualsIgnoreCase(GetString(d, "visibilityClass"), "simulator")) continue;
    const std::string reality = GetString(hw, "reality");
    if (!reality.empty() && reality != "physical") continue;
    // iPads report platform "iOS" too; other platforms cannot run the app.
    const std::string platform = GetString(hw, "platform");
    const std::string type = GetString(hw, "deviceType");
    const bool ios = platform == "iOS" || (platform.empty() && (type == "iPhone" || type == "iPad"));
    if (!ios) continue;

    v1::DeviceInfo info;
    const std::string udid = GetString(hw, "udid");
    info.set_id(!udid.empty() ? udid : GetString(d, "identifier"));
    if (info.id().empty()) continue;
    const std::string marketing = GetString(hw, "marketingName");
    info.set_name(!GetString(dp, "name").empty() ? GetString(dp, "name") : marketing);
    info.set_model(GetString(hw, "productType"));
    info.set_platform("iOS");
    info.set_os_version(GetString(dp, "osVersionNumber"));
    const std::string chip = ChipForProductType(info.model());
    info.set_chip(!chip.empty() ? chip : marketing);
    const std::string transport = GetString(cp, "transportType");
    const bool paired = GetString(cp, "pairingState") == "paired";
    const bool developer_mode = GetString(dp, "developerModeStatus") != "disabled";
    const bool reachable =
        GetString(cp, "tunnelState") == "connected" || transport == "wired" || transport == "localNetwork";
    info.set_state(harness_ready && paired && developer_mode && reachable ? "available" : "unavailable");
    out.push_back(std::move(info));
  }
  return out;
}

absl::Status ParseHarnessResult(const std::string& json, double min_psnr_db, bool compared,
                                v1::ValidationResult* result) {
  ASSIGN_OR_RETURN(Struct root, ParseJson(json, "the harness result"));
  const std::string schema = GetString(root, "schema");
  if (schema != kHarnessSchema) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a coremlz harness result: schema \"", schema, "\", expected \"", kHarnessSchema, "\""));
  }
  std::vector<std::string> notes;
  result->set_load_seconds(NumberOr(root, "load_seconds", 0));
  const Struct& lat = GetStruct(root, "latency_ms");
  v1::LatencyStats* latency = result->mutable_latency();
  latency->set_iterations(static_cast<int32_t>(NumberOr(lat, "iterations", 0)));
  latency->set_median_ms(NumberOr(lat, "median", 0));
  latency->set_p90_ms(NumberOr(lat, "p90", 0));
  latency->set_min_ms(NumberOr(lat, "min", 0));
  latency->set_max_ms(NumberOr(lat, "max", 0));
  const double peak = NumberOr(root, "peak_memory_bytes", 0);
  result->set_peak_memory_bytes(peak > 0 ? static_cast<uint64_t>(peak) : 0);

  const Struct& plan = GetStruct(root, "compute_plan");
  if (const ListValue* ops = GetList(plan, "operations")) {
    for (const Value& v : ops->values()) {
      if (v.kind_case() != Value::kStructValue) continue;
      const Struct& op = v.struct_value();
      v1::OpPlacement* p = result->add_placement();
      p->set_op(!GetString(op, "name").empty() ? GetString(op, "name") : GetString(op, "type"));
      p->set_compute_unit(GetString(op, "compute_unit"));
      p->set_estimated_cost(NumberOr(op, "estimated_cost", 0));
      if (!p->compute_unit().empty()) ++(*result->mutable_ops_per_compute_unit())[p->compute_unit()];
    }
  }
  const std::string plan_status = GetString(plan, "status");
  if (!plan_status.empty() && plan_status != "ok") {
    notes.push_back(absl::StrCat("compute plan ", plan_status, GetString(plan, "message").empty() ? "" : ": ",
                                 GetString(plan, "message")));
  }

  if (const ListValue* errors = GetList(root, "errors")) {
    std::vector<std::string> stages;
    for (const Value& e : errors->values()) {
      if (e.kind_case() == Value::kStringValue) {
        result->add_errors(e.string_value());
      } else if (e.kind_case() == Value::kStructValue) {
        result->add_errors(GetString(e.struct_value(), "message"));
        const std::string stage = GetString(e.struct_value(), "stage");
        if (!stage.empty()) stages.push_back(stage);
      }
    }
    if (!stages.empty()) notes.push_back(absl::StrCat("Core ML failed at: ", absl::StrJoin(stages, ", ")));
  }
  const size_t harness_errors = result->errors_size();

  if (const ListValue* fidelity = GetList(root, "fidelity")) {
    for (const Value& v : fidelity->values()) {
      if (v.kind_case() != Value::kStructValue) continue;
      const Struct& f = v.struct_value();
      v1::OutputFidelity* o = result->add_fidelity();
      o->set_name(GetString(f, "name"));
      o->set_psnr_db(NumberOr(f, "psnr_db", std::numeric_limits<double>::quiet_NaN()));
      o->set_snr_db(NumberOr(f, "snr_db", std::numeric_limits<double>::quiet_NaN()));
      o->set_max_abs_error(NumberOr(f, "max_abs_error", std::numeric_limits<double>::quiet_NaN()));
      // NaN compares false: an output full of NaNs fails.
      if (!(o->psnr_db() >= min_psnr_db)) {
        result->add_errors(
            absl::StrFormat("output \"%s\": PSNR %.2f dB against the original is below the %.1f dB threshold",
                            o->name(), o->psnr_db(), min_psnr_db));
      }
    }
  }
  if (compared && result->fidelity_size() == 0 && harness_errors == 0) {
    notes.push_back("outputs were to be compared but none could be (no multi-array outputs)");
  }
  if (const ListValue* n = GetList(root, "notes")) {
    for (const Value& v : n->values()) {
      if (v.kind_case() == Value::kStringValue) notes.push_back(v.string_value());
    }
  }
  const std::string version = GetString(root, "harness_version");
  if (!version.empty()) notes.push_back(absl::StrCat("harness ", version));
  for (const std::string& note : notes) {
    result->set_notes(result->notes().empty() ? note : absl::StrCat(result->notes(), "; ", note));
  }
  result->set_ran_coreml(latency->iterations() > 0);
  result->set_passed(result->errors_size() == 0 && latency->iterations() > 0);
  return absl::OkStatus();
}

}  // namespace coremlz::runner
