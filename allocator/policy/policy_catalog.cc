#include "policy/policy_catalog.h"

#include <array>

#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/cca/cca_knobs.h"
#include "policy/cca/cca_policy.h"
#include "policy/hbm/hbm_knobs.h"
#include "policy/hbm/hbm_policy.h"
#include "policy/policy.h"

namespace hbmalloc {
namespace {

std::unique_ptr<Policy> make_hbm(const Config& config, Backend& backend, LiveStats& stats) {
  return std::make_unique<hbm::HbmPolicy>(config, backend, stats);
}
std::unique_ptr<Policy> make_cca(const Config& config, Backend& backend, LiveStats& stats) {
  return std::make_unique<cca::CcaPolicy>(config, backend, stats);
}

const std::array kPolicies = {
    PolicyDescription{"hbm", "size-class slabs and page-mapped large blocks that remap free granules under pressure",
                      /*reproduces_recording=*/false, /*reads_pytorch_settings=*/false, make_hbm, "HBMALLOC_CONF",
                      "hbm's defaults", hbm::owns_key, hbm::normalized, hbm::alone, hbm::tune_knobs},
    PolicyDescription{"cca", "PyTorch's CUDACachingAllocator, rule for rule, under PyTorch's own keys",
                      /*reproduces_recording=*/true, /*reads_pytorch_settings=*/true, make_cca,
                      "PYTORCH_CUDA_ALLOC_CONF", "PyTorch's defaults", cca::is_pytorch_key, cca::normalized, cca::alone,
                      cca::tune_knobs},
};

}  // namespace

std::span<const PolicyDescription> policy_catalog() { return kPolicies; }

const PolicyDescription& recording_policy() {
  for (const PolicyDescription& p : kPolicies)
    if (p.reproduces_recording) return p;
  throw Error(ErrorCode::kConfig, "no policy reproduces the recording allocator");
}

std::string PolicyDescription::conf_line(const PolicySettings& settings) const {
  const std::string text = cca::alloc_conf_text(settings);
  // A policy that reads PyTorch's variable is chosen by it; HBMALLOC_CONF names its policy.
  if (reads_pytorch_settings) return std::string(conf_variable) + "=" + text;
  return std::string(conf_variable) + "=policy:" + std::string(name) + (text.empty() ? "" : "," + text);
}

const PolicyDescription* find_policy(std::string_view name) {
  for (const PolicyDescription& p : kPolicies)
    if (p.name == name) return &p;
  return nullptr;
}

std::string policy_names() {
  std::string out;
  for (const PolicyDescription& p : kPolicies) out += (out.empty() ? "" : ", ") + std::string(p.name);
  return out;
}

const PolicyDescription& policy_named(std::string_view name) {
  if (const PolicyDescription* p = find_policy(name)) return *p;
  throw Error(ErrorCode::kConfig, "policy: unknown policy '" + std::string(name) + "' (known: " + policy_names() + ")");
}

}  // namespace hbmalloc
