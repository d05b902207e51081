#include <cstdio>
#include <string>

#include "hbmalloc/stats.hpp"

namespace hbmalloc {

namespace {

void put(std::string& out, const std::string& key, int64_t value) {
  out += out.size() > 1 ? ",\"" : "\"";
  out += key;
  out += "\":";
  out += std::to_string(value);
}

void put_array(std::string& out, const char* name, const StatArray& a) {
  const std::pair<const char*, const StatCounter*> pools[] = {
      {"all", &a.all}, {"small_pool", &a.small_pool}, {"large_pool", &a.large_pool}};
  for (auto [pool, c] : pools) {
    std::string base = std::string(name) + "." + pool + ".";
    put(out, base + "current", c->current);
    put(out, base + "peak", c->peak);
    put(out, base + "allocated", c->allocated);
    put(out, base + "freed", c->freed);
  }
}

}  // namespace

std::string stats_to_json(const Stats& s) {
  std::string out = "{";
  put_array(out, "allocation", s.allocation);
  put_array(out, "segment", s.segment);
  put_array(out, "active", s.active);
  put_array(out, "inactive_split", s.inactive_split);
  put_array(out, "allocated_bytes", s.allocated_bytes);
  put_array(out, "reserved_bytes", s.reserved_bytes);
  put_array(out, "active_bytes", s.active_bytes);
  put_array(out, "inactive_split_bytes", s.inactive_split_bytes);
  put_array(out, "requested_bytes", s.requested_bytes);
  put(out, "num_alloc_retries", s.num_alloc_retries);
  put(out, "num_ooms", s.num_ooms);
  put(out, "num_sync_all_streams", s.num_sync_all_streams);
  put(out, "num_device_alloc", s.num_device_alloc);
  put(out, "num_device_free", s.num_device_free);
  put(out, "hbmalloc.device_alloc_bytes", s.device_alloc_bytes);
  put(out, "hbmalloc.device_free_bytes", s.device_free_bytes);
  put(out, "hbmalloc.device_alloc_calls", s.device_alloc_calls);
  put(out, "hbmalloc.device_free_calls", s.device_free_calls);
  put(out, "hbmalloc.largest_free_block", s.largest_free_block);
  put(out, "hbmalloc.memory_limit", s.memory_limit);
  put(out, "hbmalloc.vmm.create", s.vmm.create);
  put(out, "hbmalloc.vmm.map", s.vmm.map);
  put(out, "hbmalloc.vmm.set_access", s.vmm.set_access);
  put(out, "hbmalloc.vmm.unmap", s.vmm.unmap);
  put(out, "hbmalloc.vmm.release", s.vmm.release);
  put(out, "hbmalloc.vmm.peak_held", s.vmm.peak_held);
  char frag[64];
  std::snprintf(frag, sizeof frag, ",\"hbmalloc.external_fragmentation\":%.6f", s.external_fragmentation);
  out += frag;
  std::snprintf(frag, sizeof frag, ",\"hbmalloc.vmm.modeled_seconds\":%.6f", s.vmm.modeled_seconds());
  out += frag;
  out += "}";
  return out;
}

}  // namespace hbmalloc
