#include "api/upload_budget.h"

#include "common/status_macros.h"

namespace coremlz::api {

absl::Status UploadBudget::AtHeader() {
  if (package_) return absl::OkStatus();
  auto size = receiver_->DeclaredSize(receiver_->files().front().path());
  if (!size.ok()) return absl::OkStatus();
  estimate_ = engine::EstimateModelFileMemory(*size);
  return pool_->CheckMemory(*estimate_);
}

absl::Status UploadBudget::AfterChunk() {
  if (!package_ || estimate_ || gave_up_) return absl::OkStatus();
  const uint64_t max_manifest = max_manifest_bytes_;
  if (!layout_) {
    if (!receiver_->IsComplete("Manifest.json")) return absl::OkStatus();
    auto layout = format::PackageLayout::Read(model_path_, max_manifest);
    // A bad manifest is reported with the full checks after the upload.
    if (!layout.ok()) {
      gave_up_ = true;
      return absl::OkStatus();
    }
    layout_ = std::move(*layout);
    // A spec too large to parse within the budget is refused before it
    // arrives.
    auto spec_size = receiver_->DeclaredSize(layout_->model_path);
    if (!spec_size.ok()) {
      gave_up_ = true;  // the manifest names a spec the upload lacks: reported after it
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(pool_->CheckMemory(engine::MinimumSpecMemory(*spec_size)));
  }
  if (!receiver_->IsComplete(layout_->model_path)) return absl::OkStatus();
  const FileReceiver* receiver = receiver_;
  auto estimate = engine::EstimateUploadMemory(
      model_path_, [receiver](const std::string& rel) { return receiver->DeclaredSize(rel); }, max_manifest);
  if (!estimate.ok()) {
    gave_up_ = true;  // a damaged spec: the full checks after the upload name it
    return absl::OkStatus();
  }
  estimate_ = *estimate;
  return pool_->CheckMemory(*estimate_);
}

absl::StatusOr<uint64_t> UploadBudget::Estimate() {
  if (estimate_) return *estimate_;
  return engine::EstimateJobMemory(model_path_, max_manifest_bytes_);
}

}  // namespace coremlz::api
