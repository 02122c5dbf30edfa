#include "service/result_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "plan/planner.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace coremlz::service {
namespace fs = std::filesystem;
namespace {

constexpr char kTempPrefix[] = ".tmp-";
constexpr char kEntryFile[] = "entry.pb";
constexpr char kDigestFile[] = "entry.sha256";
constexpr char kArtifactDir[] = "artifact";
constexpr uint64_t kMaxEntryProtoBytes = 64 << 20;

std::string Deterministic(const google::protobuf::MessageLite& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

// A key's digest over length-prefixed fields, so that no two different
// inputs concatenate alike.
class KeyHash {
 public:
  void Field(absl::string_view name, absl::string_view value) {
    hash_.Update(absl::StrCat(name, ":", value.size(), ":"));
    hash_.Update(value);
  }
  std::string Hex() { return hash_.HexDigest(); }

 private:
  Sha256 hash_;
};

bool IsHexKey(const std::string& name) {
  if (name.size() != 64) return false;
  for (char c : name) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::string> FileDigest(const std::string& path, uint64_t expected_size) {
  ASSIGN_OR_RETURN(FileHash hash, Sha256File(path));
  if (hash.size != expected_size) {
    return absl::DataLossError(absl::StrCat(path, ": ", hash.size, " bytes, expected ", expected_size));
  }
  return std::move(hash.sha256);
}

uint64_t TreeBytes(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::file_size(path, ec);
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

// A hard link when source and destination share a file system (free, and
// immune to the entry's later eviction), else a copy.
absl::Status LinkOrCopy(const std::string& from, const std::string& to) {
  if (::link(from.c_str(), to.c_str()) == 0) return absl::OkStatus();
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    if (ec.value() == ENOSPC || ec.value() == EDQUOT) return absl::ResourceExhaustedError("no space left for the cached result");
    return absl::InternalError(absl::StrCat("cannot copy a cached file: ", ec.message()));
  }
  return absl::OkStatus();
}

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  return absl::StrCat(absl::Hex(rng(), absl::kZeroPad16));
}

}  // namespace

std::string ResultCacheKey(const v1::CompressHeader& header, const v1::CompressionConfig& normalised_config,
                           const std::string& version) {
  KeyHash key;
  key.Field("coremlz", version);
  key.Field("config", Deterministic(normalised_config));
  key.Field("target", header.target());
  key.Field("report_only", header.report_only() ? "1" : "0");
  key.Field("check_samples", absl::StrCat(header.check_samples()));
  for (const v1::FileInfo& f : header.files()) {
    key.Field("path", f.path());
    key.Field("size", absl::StrCat(f.size()));
    key.Field("sha256", f.sha256());
  }
  return key.Hex();
}

std::string ResultCachePlanKey(const v1::PlanHeader& header, const std::string& version) {
  // What the key covers is the header itself, normalised: the fields that
  // do not change the outputs cleared, defaults written out. A field added
  // to PlanHeader later is covered without a change here.
  const plan::PlanOptions defaults;  // what the Plan call resolves an unset field to
  v1::PlanHeader normal = header;
  normal.set_no_cache(false);
  if (normal.samples() == 0) normal.set_samples(defaults.study.samples);
  if (!normal.has_weight_threshold()) normal.set_weight_threshold(defaults.weight_threshold);
  KeyHash key;
  key.Field("coremlz", version);
  key.Field("call", "plan");
  key.Field("header", Deterministic(normal));
  return key.Hex();
}

absl::StatusOr<std::unique_ptr<ResultCache>> ResultCache::Open(const ResultCacheOptions& options,
                                                               prometheus::Registry* metrics) {
  if (options.dir.empty()) return absl::InvalidArgumentError("--cache-dir is empty");
  RETURN_IF_ERROR(MakeDirectories(options.dir));
  if (::access(options.dir.c_str(), W_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write to the cache directory ", options.dir));
  }
  std::unique_ptr<ResultCache> cache(new ResultCache(options));
  if (metrics) cache->RegisterMetrics(metrics);
  {
    std::error_code ec;
    const std::string self = fs::read_symlink("/proc/self/exe", ec).string();
    const uint64_t size = ec ? 0 : fs::file_size(self, ec);
    absl::StatusOr<std::string> digest = ec ? absl::StatusOr<std::string>(absl::NotFoundError("")) : FileDigest(self, size);
    // Without a readable executable every start is its own build: safe, and
    // the cache simply never hits across restarts.
    cache->build_id_ = absl::StrCat(COREMLZ_VERSION_STRING, "+",
                                    digest.ok() ? *digest : absl::StrCat("pid", ::getpid(), "-", RandomSuffix()));
  }
  // Index what an earlier process left: entries by their age (oldest first),
  // temporary directories of writes that never finished removed.
  std::vector<std::pair<fs::file_time_type, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(options.dir, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, kTempPrefix)) {
      (void)RemoveAll(e.path().string());
      continue;
    }
    if (!IsHexKey(name) || !e.is_directory()) continue;
    found.emplace_back(fs::last_write_time(e.path(), ec), name);
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list the cache directory: ", ec.message()));
  std::sort(found.begin(), found.end());
  absl::MutexLock lock(&cache->mu_);
  for (const auto& [time, key] : found) {
    Entry entry;
    entry.bytes = TreeBytes(JoinPath(options.dir, key));
    entry.last_used = ++cache->clock_;
    cache->total_bytes_ += entry.bytes;
    cache->entries_[key] = entry;
  }
  cache->EvictLocked();
  cache->UpdateGaugesLocked();
  return cache;
}

void ResultCache::RegisterMetrics(prometheus::Registry* registry) {
  requests_ = &prometheus::BuildCounter()
                   .Name("coremlz_cache_requests_total")
                   .Help("Result-cache look-ups by outcome (hit, miss, corrupt, bypass).")
                   .Register(*registry);
  evictions_ = &prometheus::BuildCounter()
                    .Name("coremlz_cache_evictions_total")
                    .Help("Result-cache entries evicted to stay within --cache-max-bytes.")
                    .Register(*registry)
                    .Add({});
  bytes_gauge_ = &prometheus::BuildGauge()
                      .Name("coremlz_cache_bytes")
                      .Help("Bytes held by the result cache.")
                      .Register(*registry)
                      .Add({});
  entries_gauge_ = &prometheus::BuildGauge()
                        .Name("coremlz_cache_entries")
                        .Help("Entries held by the result cache.")
                        .Register(*registry)
                        .Add({});
  // Every outcome exists from the start, so rates work before the first hit.
  for (const char* outcome : {"hit", "miss", "corrupt", "bypass"}) requests_->Add({{"outcome", outcome}});
}

void ResultCache::Count(const char* outcome) {
  if (requests_) requests_->Add({{"outcome", outcome}}).Increment();
}

void ResultCache::CountBypass() { Count("bypass"); }

void ResultCache::UpdateGaugesLocked() {
  if (bytes_gauge_) bytes_gauge_->Set(static_cast<double>(total_bytes_));
  if (entries_gauge_) entries_gauge_->Set(static_cast<double>(entries_.size()));
}

uint64_t ResultCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return total_bytes_;
}

size_t ResultCache::entries() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

void ResultCache::RemoveLocked(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  total_bytes_ -= std::min(total_bytes_, it->second.bytes);
  entries_.erase(it);
  // Rename first, then delete: a concurrent lookup either sees the whole
  // entry or none of it.
  const std::string doomed = JoinPath(options_.dir, absl::StrCat(kTempPrefix, "evict-", RandomSuffix()));
  if (std::rename(JoinPath(options_.dir, key).c_str(), doomed.c_str()) == 0) (void)RemoveAll(doomed);
  else (void)RemoveAll(JoinPath(options_.dir, key));
}

void ResultCache::EvictLocked() {
  while (total_bytes_ > options_.max_bytes && !entries_.empty()) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    RemoveLocked(oldest->first);
    if (evictions_) evictions_->Increment();
  }
}

absl::StatusOr<ResultCache::Hit> ResultCache::Lookup(const std::string& key, const std::string& dest) {
  const std::string dir = JoinPath(options_.dir, key);
  {
    absl::MutexLock lock(&mu_);
    if (!IsHexKey(key) || entries_.count(key) == 0) {
      Count("miss");
      return absl::NotFoundError("not cached");
    }
  }
  // Verify outside the lock (it reads the whole artifact); a concurrent
  // eviction renames the directory away, which shows up as a miss here.
  auto corrupt = [&](const std::string& why) -> absl::Status {
    absl::MutexLock lock(&mu_);
    if (entries_.count(key)) {
      RemoveLocked(key);
      UpdateGaugesLocked();
    }
    Count("corrupt");
    return absl::NotFoundError(absl::StrCat("cached entry damaged (", why, "); recomputing"));
  };
  absl::StatusOr<std::string> proto = ReadFile(JoinPath(dir, kEntryFile), kMaxEntryProtoBytes);
  absl::StatusOr<std::string> digest = ReadFile(JoinPath(dir, kDigestFile), 128);
  if (!proto.ok() || !digest.ok()) {
    absl::MutexLock lock(&mu_);
    if (!PathExists(dir)) {  // evicted meanwhile
      Count("miss");
      return absl::NotFoundError("not cached");
    }
  }
  if (!proto.ok() || !digest.ok()) return corrupt("entry files unreadable");
  if (Sha256Hex(*proto) != absl::StripAsciiWhitespace(*digest)) return corrupt("entry.pb digest mismatch");
  v1::CacheEntry entry;
  if (!entry.ParseFromString(*proto)) return corrupt("entry.pb does not parse");
  for (const v1::FileInfo& f : entry.files()) {
    if (!ValidateRelativePath(f.path()).ok()) return corrupt("unsafe path");
  }
  Hit hit;
  hit.report = entry.report();
  hit.plan = entry.plan();
  if (entry.files_size() > 0) {
    // Placed first, then verified: the digests checked are those of the very
    // bytes the call streams (a copy included), and the only hashing a hit
    // does.
    RETURN_IF_ERROR(MakeDirectories(dest));
    const std::string artifact = JoinPath(dir, kArtifactDir);
    const std::string root = entry.package() ? JoinPath(dest, "model.mlpackage") : dest;
    auto unplace = [&] {
      if (entry.package()) (void)RemoveAll(root);
      else (void)RemoveAll(JoinPath(dest, entry.files(0).path()));
    };
    for (const v1::FileInfo& f : entry.files()) {
      const std::string to = JoinPath(root, f.path());
      absl::Status placed = MakeDirectories(fs::path(to).parent_path().string());
      if (placed.ok()) placed = LinkOrCopy(JoinPath(artifact, f.path()), to);
      absl::StatusOr<std::string> d =
          placed.ok() ? FileDigest(to, f.size()) : absl::StatusOr<std::string>(placed);
      if (!d.ok() || *d != f.sha256()) {
        unplace();
        if (placed.code() == absl::StatusCode::kResourceExhausted) return placed;  // our disk, not the entry
        {
          absl::MutexLock lock(&mu_);
          if (!PathExists(dir)) {  // evicted meanwhile
            Count("miss");
            return absl::NotFoundError("not cached");
          }
        }
        return corrupt(absl::StrCat(f.path(), " does not match its digest"));
      }
      hit.files.push_back(f);
    }
    hit.root = root;
    hit.artifact_path = entry.package() ? root : JoinPath(dest, entry.files(0).path());
  }
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(key); it != entries_.end()) it->second.last_used = ++clock_;
  }
  // The directory's time records use across restarts (LRU order on Open).
  (void)::utimensat(AT_FDCWD, dir.c_str(), nullptr, 0);
  Count("hit");
  return hit;
}

absl::Status ResultCache::Store(const std::string& key, const std::string& artifact_path,
                                const std::vector<v1::FileInfo>& files, const v1::Report& report,
                                const v1::PlanOutputs& plan) {
  if (!IsHexKey(key)) return absl::InvalidArgumentError("bad cache key");
  const std::string temp = JoinPath(options_.dir, absl::StrCat(kTempPrefix, key.substr(0, 12), "-", RandomSuffix()));
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      if (!dir.empty()) (void)RemoveAll(dir);
    }
  } cleanup{temp};
  RETURN_IF_ERROR(MakeDirectories(JoinPath(temp, kArtifactDir)));
  v1::CacheEntry entry;
  *entry.mutable_report() = report;
  *entry.mutable_plan() = plan;
  if (!artifact_path.empty()) {
    if (files.empty()) return absl::InvalidArgumentError("an artifact without its file list");
    std::error_code ec;
    entry.set_package(fs::is_directory(artifact_path, ec));
    // The files are relative to the package, or beside the single file.
    const std::string root = entry.package() ? artifact_path : fs::path(artifact_path).parent_path().string();
    for (const v1::FileInfo& f : files) {
      RETURN_IF_ERROR(ValidateRelativePath(f.path()));
      const std::string to = JoinPath(JoinPath(temp, kArtifactDir), f.path());
      RETURN_IF_ERROR(MakeDirectories(fs::path(to).parent_path().string()));
      RETURN_IF_ERROR(LinkOrCopy(JoinPath(root, f.path()), to));
      // A size that changed since the digest was taken is refused here; a
      // byte that changed is caught by the first hit's verification.
      std::error_code size_ec;
      const uint64_t size = fs::file_size(to, size_ec);
      if (size_ec || size != f.size()) {
        return absl::DataLossError(absl::StrCat(f.path(), ": ", size, " bytes, described as ", f.size()));
      }
      *entry.add_files() = f;
    }
  }
  const std::string proto = Deterministic(entry);
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(temp, kEntryFile), proto));
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(temp, kDigestFile), Sha256Hex(proto) + "\n"));
  const uint64_t bytes = TreeBytes(temp);
  if (bytes > options_.max_bytes) return absl::OkStatus();  // would evict everything else: not worth it

  absl::MutexLock lock(&mu_);
  if (entries_.count(key)) return absl::OkStatus();  // an identical result is already there
  const std::string final_dir = JoinPath(options_.dir, key);
  (void)RemoveAll(final_dir);  // an unindexed leftover
  if (std::rename(temp.c_str(), final_dir.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot publish a cache entry: ", std::strerror(errno)));
  }
  cleanup.dir.clear();
  entries_[key] = Entry{bytes, ++clock_};
  total_bytes_ += bytes;
  EvictLocked();
  UpdateGaugesLocked();
  return absl::OkStatus();
}

bool ResultCache::Lead(const std::string& key, std::function<void()> on_done) {
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(key);
  if (it == in_flight_.end()) {
    in_flight_[key];  // this caller leads
    return true;
  }
  it->second.push_back(std::move(on_done));
  return false;
}

bool ResultCache::Holds(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  return entries_.count(key) > 0;
}

void ResultCache::Release(const std::string& key) {
  std::vector<std::function<void()>> waiters;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(key);
    if (it == in_flight_.end()) return;
    waiters = std::move(it->second);
    in_flight_.erase(it);
  }
  for (auto& w : waiters) w();
}

}  // namespace coremlz::service
