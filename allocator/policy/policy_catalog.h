// Every allocation policy, described once: its name, what it is for, and
// what it can do. Code that must treat policies differently asks this
// description, never the policy's name.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/live_stats.h"
#include "hbmalloc/config.hpp"

namespace hbmalloc {

class Policy;

// Knob settings as key / value text, in the order given.
using PolicySettings = std::vector<std::pair<std::string, std::string>>;
// A knob and the values tune tries ("unset": the default, or what the trace recorded).
using TuneKnobs = std::vector<std::pair<std::string, std::vector<std::string>>>;

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

  // How its settings are written: the variable a ready line sets, and what
  // running with none set is called.
  std::string_view conf_variable;  // "HBMALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"
  std::string_view defaults_name;  // "hbm's defaults", "PyTorch's defaults"
  // Whether `key` is one of its knobs.
  bool (*owns_key)(std::string_view key) = nullptr;
  // The settings with values that behave as the default (or as another
  // value) spelled as the default does, so two settings that run alike look alike.
  PolicySettings (*normalized)(PolicySettings settings) = nullptr;
  // What a knob's value is judged beside when it is checked alone (a value
  // valid only with a partner, as hbm's slab fits small_size).
  PolicySettings (*alone)(std::string_view key, std::string_view value) = nullptr;
  // The knobs tune turns by default.
  TuneKnobs (*tune_knobs)() = nullptr;

  // The ready line for `settings` ("PYTORCH_CUDA_ALLOC_CONF=..." or
  // "HBMALLOC_CONF=policy:hbm,...").
  std::string conf_line(const PolicySettings& settings) const;
};

// All policies, the default (Config's) first.
std::span<const PolicyDescription> policy_catalog();
// The policy that reproduces the allocator recording PyTorch snapshots.
const PolicyDescription& recording_policy();
// The description of `name`, or nullptr.
const PolicyDescription* find_policy(std::string_view name);
// The description of `name`, or Error(kConfig) naming the known policies.
const PolicyDescription& policy_named(std::string_view name);
// "hbm, cca": the known names, for messages.
std::string policy_names();

}  // namespace hbmalloc
