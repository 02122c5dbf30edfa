// libFuzzer target: the Compress request stream's state machine as the
// service runs it - header checks (config, target, declared files and
// limits) then chunks into a FileReceiver, then the end-of-stream checks.
// The input is a sequence of length-prefixed CompressRequest messages.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/convert.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "engine/target.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz;
  static const std::string root = [] {
    auto dir = MakeTempDirectory("coremlz-fuzz-");
    return dir.ok() ? *dir : std::string("/tmp");
  }();
  const std::string dir = root + "/job";
  (void)RemoveAll(dir);
  (void)MakeDirectories(dir);
  api::TransferLimits limits;
  limits.max_total_bytes = 1 << 20;
  limits.max_files = 16;
  limits.max_chunk_bytes = 4096;
  std::unique_ptr<api::FileReceiver> receiver;
  size_t pos = 0;
  bool failed = false;
  while (pos + 2 <= size && !failed) {
    const size_t n = data[pos] | (size_t{data[pos + 1]} << 8);
    pos += 2;
    if (n > size - pos) break;
    v1::CompressRequest request;
    if (!request.ParseFromArray(data + pos, static_cast<int>(n))) break;
    pos += n;
    if (!receiver) {
      if (!request.has_header()) break;
      const v1::CompressHeader& h = request.header();
      if (!api::ConfigFromHeader(h).ok()) break;
      if (!h.target().empty() && !engine::ParseTarget(h.target()).ok()) break;
      receiver = std::make_unique<api::FileReceiver>(dir, limits);
      failed = !receiver->DeclareAll(h.files()).ok() || !receiver->ModelPath().ok();
      continue;
    }
    if (!request.has_chunk()) break;
    failed = !receiver->Add(request.chunk()).ok();
  }
  if (receiver && !failed) (void)receiver->Finish();
  receiver.reset();
  (void)RemoveAll(dir);
  return 0;
}
