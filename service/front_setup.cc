#include "service/front_setup.h"

#include <memory>
#include <utility>

#include "common/status_macros.h"
#include "service/pools_from_flags.h"
#include "service/result_cache.h"

namespace coremlz::service {

absl::StatusOr<api::JobServerSetup> FrontSetup(const Args& args, const api::ServerOptions& options) {
  ASSIGN_OR_RETURN(Pools pools, PoolsFromFlags(args, options));
  api::JobServerSetup setup;
  setup.parts.pool = std::move(pools.worker_pool);
  setup.parts.validator = std::move(pools.validator);
  setup.parts.plan_fan_out = std::move(pools.plan_fan_out);
  if (!options.cache_dir.empty()) {
    const ResultCacheOptions cache{options.cache_dir, options.cache_max_bytes};
    setup.parts.open_result_store =
        [cache](api::ServerMetrics* metrics) -> absl::StatusOr<std::unique_ptr<api::ResultStore>> {
      ASSIGN_OR_RETURN(std::unique_ptr<ResultCache> opened, ResultCache::Open(cache, metrics->registry().get()));
      return std::unique_ptr<api::ResultStore>(std::move(opened));
    };
  }
  setup.description = std::move(pools.description);
  setup.on_shutdown = std::move(pools.on_shutdown);
  return setup;
}

}  // namespace coremlz::service
