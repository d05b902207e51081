// The synthetic workloads `hbmalloc synth --workload NAME` writes: the kinds
// of job that hurt a caching allocator, each deterministic per seed, with
// sizes from a real model's dimensions (named in `summary`). They are the
// fixtures of the defragmentation targets (benchmarks/defrag_targets.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "record/trace.h"

namespace hbmalloc::synth {

struct WorkloadOptions {
  uint64_t seed = 1;
  int steps = 0;  // 0: the workload's own default
};

struct Workload {
  std::string_view name;
  std::string_view summary;  // what it models, with the model's dimensions
  int default_steps = 6;
  trace::Trace (*make)(const WorkloadOptions&);
};

const std::vector<Workload>& workloads();
// nullptr when no workload has that name.
const Workload* find_workload(std::string_view name);

// One per family (workloads.cc lists them).
trace::Trace checkpointing(const WorkloadOptions& o);
trace::Trace zero_offload(const WorkloadOptions& o);
trace::Trace mixture_of_experts(const WorkloadOptions& o);
trace::Trace kv_serving(const WorkloadOptions& o);
trace::Trace cnn_resolution(const WorkloadOptions& o);
trace::Trace stream_pipeline(const WorkloadOptions& o);
trace::Trace rl_alternating(const WorkloadOptions& o);

}  // namespace hbmalloc::synth
