#include <memory>

#include "hbmalloc/error.hpp"
#include "policy/policy.h"
#include "policy/policy_catalog.h"

namespace hbmalloc {

std::unique_ptr<Policy> make_policy(const Config& config, Backend& backend, LiveStats& stats) {
  const PolicyDescription& description = policy_named(config.policy);
  if (!description.reads_pytorch_settings && !config.pytorch_settings.empty())
    throw Error(ErrorCode::kConfig, config.pytorch_settings.front().first +
                                        ": a PyTorch allocator key, read by the cca policy only (policy is " +
                                        config.policy + ")");
  return description.make(config, backend, stats);
}

std::vector<Allocation> Policy::adopt(const Layout&) {
  throw Error(ErrorCode::kInvalidArgument, "this policy cannot start from a recorded layout (one that reproduces the recording allocator can)");
}

Allocation Policy::allocate_at(uint64_t addr, uint64_t, uint64_t) {
  throw Error(ErrorCode::kInvalidArgument,
              "this policy cannot place a block at a given address (" + std::to_string(addr) + ")");
}

}  // namespace hbmalloc
