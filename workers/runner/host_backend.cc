#include "workers/runner/host_backend.h"

#include <sys/utsname.h>

#include <chrono>
#include <cmath>
#include <map>
#include <thread>

#include "execute/output_check.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "compress/metrics.h"
#include "engine/decompress.h"
#include "format/mil_program.h"
#include "format/neural_network_weights.h"
#include "format/package.h"

namespace coremlz::runner {
namespace mil = CoreML::Specification::MILSpec;

namespace {

// Dense weights of a model keyed by what reads them ("conv_1.weight"), so a
// compressed model's weights line up with the original's whatever the ops
// producing them are now called.
struct Weights {
  std::map<std::string, std::vector<float>> by_reader;
  std::map<std::string, std::string> name_by_reader;  // producer name
  int decompressed = 0;
};

// A NeuralNetwork's layer weights, decoded from whatever storage they use.
absl::Status AddNeuralNetworkWeights(CoreML::Specification::Model* model, Weights* w) {
  ASSIGN_OR_RETURN(std::vector<format::NeuralNetworkWeight> list, format::ListNeuralNetworkWeights(model));
  for (const auto& nw : list) {
    if (nw.element_count < 10) continue;
    ASSIGN_OR_RETURN(std::vector<float> values, format::DecodeWeightParams(nw));
    const std::string key = nw.layer + "." + nw.field;
    w->by_reader[key] = std::move(values);
    w->name_by_reader[key] = key;
    ++w->decompressed;
  }
  return absl::OkStatus();
}

absl::StatusOr<Weights> LoadWeights(const std::string& path) {
  Weights w;
  if (IsDirectory(path)) {
    ASSIGN_OR_RETURN(std::unique_ptr<format::MlPackage> pkg, format::MlPackage::Open(path));
    // A NeuralNetwork inside a package (as Xcode wraps .mlmodel files).
    if (format::HasNeuralNetwork(pkg->model())) {
      RETURN_IF_ERROR(AddNeuralNetworkWeights(pkg->mutable_model(), &w));
      return w;
    }
    if (!pkg->model().has_mlprogram()) {
      return absl::InvalidArgumentError("the package holds neither an ML Program nor a NeuralNetwork");
    }
    format::MlPackage* p = pkg.get();
    // Structural validation: every blob reference resolves, types agree,
    // nothing overlaps.
    RETURN_IF_ERROR(format::ListProgramWeights(p->model().mlprogram(), [p](const format::BlobRef& r) -> absl::StatusOr<format::BlobMetadata> {
                      ASSIGN_OR_RETURN(const format::BlobStorageReader* f, p->WeightFile(r.file_name));
                      return f->Metadata(r.offset);
                    }).status());
    engine::PackageValueReader reader(p);
    ASSIGN_OR_RETURN(std::vector<engine::DecompressedWeight> dense, engine::DecompressProgram(p->model().mlprogram(), &reader));
    std::map<std::string, const engine::DecompressedWeight*> by_name;
    for (const auto& d : dense) {
      by_name[d.function + "/" + d.name] = &d;
      if (!d.intermediate) ++w.decompressed;
    }
    RETURN_IF_ERROR(format::ForEachBlock(p->model().mlprogram(), [&](const mil::Block* block, const format::BlockContext& ctx) -> absl::Status {
      std::map<std::string, const mil::Value*> consts;
      for (const mil::Operation& op : block->operations()) {
        if (op.type() == "const" && op.outputs_size() == 1 && op.attributes().count("val")) {
          consts[op.outputs(0).name()] = &op.attributes().at("val");
        }
      }
      for (const mil::Operation& op : block->operations()) {
        if (format::IsConstexprOp(op.type()) || op.type() == "const") continue;
        for (const auto& [input, arg] : op.inputs()) {
          if (arg.arguments_size() != 1 || arg.arguments(0).binding_case() != mil::Argument::Binding::kName) continue;
          const std::string& source = arg.arguments(0).name();
          const std::string key = absl::StrCat(ctx.function, "/", format::OpName(op), ".", input);
          std::vector<float> values;
          if (auto d = by_name.find(ctx.function + "/" + source); d != by_name.end()) {
            ASSIGN_OR_RETURN(values, format::ToFloats(format::View(d->second->dense)));
          } else if (auto c = consts.find(source); c != consts.end()) {
            if (!c->second->type().has_tensortype()) continue;
            auto t = reader.Read(*c->second);
            if (!t.ok() || !format::IsFloat(t->type) || t->element_count() < 10) continue;
            ASSIGN_OR_RETURN(values, format::ToFloats(format::View(*t)));
          } else {
            continue;
          }
          w.by_reader[key] = std::move(values);
          w.name_by_reader[key] = source;
        }
      }
      return absl::OkStatus();
    }));
    return w;
  }
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, uint64_t{2} << 30));
  ASSIGN_OR_RETURN(CoreML::Specification::Model model, format::ParseModelSpec(bytes, path));
  if (!format::HasNeuralNetwork(model)) return absl::InvalidArgumentError("the .mlmodel holds no NeuralNetwork");
  RETURN_IF_ERROR(AddNeuralNetworkWeights(&model, &w));
  return w;
}

std::string HostDescription() {
  struct utsname u;
  if (::uname(&u) != 0) return "Linux";
  return absl::StrCat(u.sysname, " ", u.release, " ", u.machine);
}

}  // namespace

absl::StatusOr<std::vector<v1::DeviceInfo>> HostBackend::ListDevices() {
  v1::DeviceInfo d;
  d.set_id("host");
  d.set_name(options_.device_name);
  d.set_model(options_.device_model);
  d.set_platform("Linux");
  d.set_os_version("0");
  d.set_chip(HostDescription());
  d.set_state("available");
  return std::vector<v1::DeviceInfo>{d};
}

absl::StatusOr<v1::ValidationResult> HostBackend::Run(const v1::DeviceInfo& device, const ValidationInput& input,
                                                     engine::JobControl* control) {
  v1::ValidationResult result;
  result.set_backend("host");
  *result.mutable_device() = device;
  result.set_ran_coreml(false);
  if (options_.delay > absl::ZeroDuration()) {
    // Test knob: a slow run, cancellable.
    const absl::Time end = absl::Now() + options_.delay;
    while (absl::Now() < end) {
      if (control && control->Cancelled()) return absl::CancelledError("validation cancelled");
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Weights> compressed = LoadWeights(input.compressed_path);
  result.set_decompress_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (!compressed.ok()) {
    result.set_passed(false);
    result.add_errors(absl::StrCat("the compressed model does not validate: ", compressed.status().message()));
    return result;
  }
  result.set_weights_checked(compressed->decompressed);
  if (control && control->Cancelled()) return absl::CancelledError("validation cancelled");

  std::string notes = absl::StrFormat(
      "host backend: no Core ML prediction ran (this runner has no Core ML); the package validated and %d "
      "compressed weights decompressed in %.1f ms",
      compressed->decompressed, result.decompress_seconds() * 1000);
  // Weight fidelity against the original, and the report's claims.
  std::map<std::string, double> claimed;
  for (const v1::WeightReport& w : input.report.weights()) {
    // The claims are compressed weights' finite SNRs, as when the report
    // came as JSON (which has no +inf: exact weights carried null there).
    if (w.skipped_reason().empty() && std::isfinite(w.snr_db())) claimed[w.name()] = w.snr_db();
  }
  if (!input.original_path.empty()) {
    absl::StatusOr<Weights> original = LoadWeights(input.original_path);
    if (!original.ok()) {
      result.add_errors(absl::StrCat("the original model does not load: ", original.status().message()));
    } else {
      int compared = 0, checked_claims = 0;
      double worst = INFINITY;
      for (const auto& [key, values] : original->by_reader) {
        auto it = compressed->by_reader.find(key);
        if (it == compressed->by_reader.end()) continue;
        if (it->second.size() != values.size()) {
          result.add_errors(absl::StrCat(key, ": ", it->second.size(), " values after compression, ", values.size(), " before"));
          continue;
        }
        const compress::ErrorMetrics m = compress::CompareTensors(values, it->second);
        worst = std::min(worst, m.snr_db);
        ++compared;
        auto claim = claimed.find(original->name_by_reader[key]);
        if (claim != claimed.end()) {
          ++checked_claims;
          const bool both_exact = std::isinf(m.snr_db) && std::isinf(claim->second);
          if (!both_exact && std::fabs(m.snr_db - claim->second) > options_.report_tolerance_db) {
            result.add_errors(absl::StrFormat("%s: the report claims SNR %.4f dB but the model decompresses to %.4f dB",
                                              original->name_by_reader[key], claim->second, m.snr_db));
          }
        }
      }
      absl::StrAppend(&notes, absl::StrFormat("; %d weights compared with the original (lowest SNR %.1f dB), %d report "
                                              "claims checked",
                                              compared, worst, checked_claims));
    }
  }
  // Output fidelity, computed by the reference CPU executor (the same check
  // as compress --check) and labelled as such: never presented as Core ML's.
  if (!input.original_path.empty()) {
    execute::OutputCheckOptions check;
    check.cancelled = [control] { return control != nullptr && control->Cancelled(); };
    absl::StatusOr<std::vector<engine::OutputCheck>> outputs =
        execute::CheckOutputs(input.original_path, input.compressed_path, check);
    if (outputs.ok()) {
      for (const engine::OutputCheck& c : *outputs) {
        v1::OutputFidelity* f = result.add_fidelity();
        f->set_name(c.name);
        f->set_psnr_db(c.psnr_db);
        f->set_snr_db(c.snr_db);
        f->set_max_abs_error(c.max_abs_error);
        f->set_computed_by(execute::kExecutorLabel);
      }
      absl::StrAppend(&notes, absl::StrFormat("; output fidelity of %d outputs on %d synthetic samples computed by the ",
                                              static_cast<int>(outputs->size()), check.samples),
                      execute::kExecutorLabel);
    } else if (outputs.status().code() == absl::StatusCode::kCancelled) {
      return outputs.status();
    } else {
      absl::StrAppend(&notes, "; output fidelity not computed: ", outputs.status().message());
    }
  }
  absl::StrAppend(&notes, "; latency, load time, memory and compute-unit placement need a macOS runner");
  result.set_notes(notes);
  result.set_passed(result.errors_size() == 0);
  return result;
}

}  // namespace coremlz::runner
