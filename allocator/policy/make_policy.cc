#include <memory>

#include "hbmalloc/error.hpp"
#include "policy/hbm/hbm_policy.h"
#include "policy/policy.h"

namespace hbmalloc {

std::unique_ptr<Policy> make_policy(const Config& config, Backend& backend, LiveStats& stats) {
  if (config.policy == "hbm") return std::make_unique<HbmPolicy>(config, backend, stats);
  throw Error(ErrorCode::kConfig, "policy: unknown policy '" + config.policy + "' (known: hbm)");
}

}  // namespace hbmalloc
