// Every allocation policy, described once: its name, what it is for, and
// what it can do. Code that must treat policies differently asks this
// description, never the policy's name.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "core/live_stats.h"
#include "hbmalloc/config.hpp"

namespace hbmalloc {

class Policy;

struct PolicyDescription {
  std::string_view name;
  std::string_view summary;
  // Reproduces the allocator that recorded a PyTorch snapshot: a replay may
  // start from the trace's own segments (Policy::adopt), place new segments
  // at the recorded addresses, and compare its segment events with the
  // recording's (fidelity).
  bool reproduces_recording = false;
  // Reads PyTorch's allocator keys (Config::pytorch_settings): its settings
  // print as a PYTORCH_CUDA_ALLOC_CONF line, and a replay runs under the
  // settings the trace recorded unless told otherwise.
  bool reads_pytorch_settings = false;
  std::unique_ptr<Policy> (*make)(const Config&, Backend&, LiveStats&) = nullptr;
};

// All policies, the default (Config's) first.
std::span<const PolicyDescription> policy_catalog();
// The description of `name`, or nullptr.
const PolicyDescription* find_policy(std::string_view name);
// The description of `name`, or Error(kConfig) naming the known policies.
const PolicyDescription& policy_named(std::string_view name);
// "hbm, cca": the known names, for messages.
std::string policy_names();

}  // namespace hbmalloc
