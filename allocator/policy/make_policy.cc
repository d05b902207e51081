#include <memory>

#include "hbmalloc/error.hpp"
#include "policy/cca/cca_policy.h"
#include "policy/hbm/hbm_policy.h"
#include "policy/policy.h"

namespace hbmalloc {

std::unique_ptr<Policy> make_policy(const Config& config, Backend& backend, LiveStats& stats) {
  if (config.policy == "cca") return std::make_unique<cca::CcaPolicy>(config, backend, stats);
  if (config.policy != "hbm") throw Error(ErrorCode::kConfig, "policy: unknown policy '" + config.policy + "' (known: hbm, cca)");
  if (!config.pytorch_settings.empty())
    throw Error(ErrorCode::kConfig, config.pytorch_settings.front().first +
                                        ": a PyTorch allocator key, read by the cca policy only (policy is hbm)");
  return std::make_unique<HbmPolicy>(config, backend, stats);
}

std::vector<Allocation> Policy::adopt(const Layout&) {
  throw Error(ErrorCode::kInvalidArgument, "this policy cannot start from a recorded layout (the cca policy can)");
}

}  // namespace hbmalloc
