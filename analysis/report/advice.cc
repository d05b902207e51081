#include "report/advice.h"

#include "hbmalloc/config.hpp"
#include "report/format.h"

namespace hbmalloc::report {

namespace {

uint64_t minus(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
uint64_t plus(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

// Requests the recording failed that this replay served: the policy, at this
// capacity, would have avoided those OOMs.
void served_failures(const FragReport& report, std::vector<std::string>& out) {
  size_t served = 0;
  const replay::FailedRequest* first = nullptr;
  for (const replay::FailedRequest& f : report.failed_requests)
    if (f.served && served++ == 0) first = &f;
  if (first == nullptr) return;
  std::string policy = report.run.policy.empty() ? "this policy" : report.run.policy;
  out.push_back("the recording failed " + std::to_string(report.failed_requests.size()) + " request(s); " + policy +
                " serves " + (served == report.failed_requests.size() ? "them" : std::to_string(served) + " of them") +
                " here (the first, " + format_bytes(first->size) + " at event " + std::to_string(first->event) +
                "), each freed at once as the program never held it");
}

}  // namespace

OomReport explain_oom(const replay::OomRecord& oom, std::optional<uint64_t> min_capacity) {
  OomReport r;
  r.event = oom.event;
  r.time_us = oom.time_us;
  r.size = oom.size;
  r.stream = oom.stream;
  r.usage = oom.usage;
  r.cached_free = oom.cached_free;
  r.largest_free_block = oom.largest_free_block;
  r.capacity = oom.capacity;
  r.recorded_failure = oom.recorded_failure;

  const std::string request = format_bytes(oom.size);
  const uint64_t unreserved = minus(oom.capacity, oom.usage.reserved);
  const uint64_t free_total = plus(oom.cached_free, unreserved);
  const uint64_t needed = plus(oom.usage.allocated, oom.size);
  if (oom.capacity == 0) {
    // Unlimited: only the simulator's own address space ran out.
    r.cause = "capacity";
    r.advice.push_back("live allocated " + format_bytes(oom.usage.allocated) + " + request " + request +
                       " is more than the simulated device can address, even unlimited: no device holds it");
  } else if (oom.largest_free_block >= oom.size) {
    r.cause = "stream";
    r.advice.push_back("a cached free block of " + format_bytes(oom.largest_free_block) + " >= request " + request +
                       " exists but could not serve it (it belongs to another stream or size class): "
                       "free on the allocating stream, or synchronize before this request, so it can be reused");
  } else if (free_total >= oom.size) {
    r.cause = "fragmentation";
    r.advice.push_back("cached free " + format_bytes(oom.cached_free) + " + unreserved " + format_bytes(unreserved) +
                       " >= request " + request + " but the largest free block is " +
                       format_bytes(oom.largest_free_block) + ": fragmentation");
    r.advice.push_back("the cached bytes sit between live blocks, so releasing the cache cannot return them: "
                       "allocate long-lived tensors first, free large temporaries before this request, or use a "
                       "policy that remaps free granules into one range");
  } else {
    r.cause = "capacity";
    r.advice.push_back("live allocated " + format_bytes(oom.usage.allocated) + " + request " + request +
                       " needs " + std::to_string(minus(needed, oom.capacity)) + " more bytes than the capacity " +
                       format_bytes(oom.capacity) + ": no placement avoids it; hold fewer live bytes or use a "
                       "larger device");
  }
  if (min_capacity)
    r.advice.push_back("min capacity " + format_bytes(*min_capacity) + " (" + std::to_string(*min_capacity) +
                       " B): the smallest device on which the whole replay has no OOM");
  return r;
}

std::string unlisted_ooms(const std::vector<OomReport>& ooms) {
  return sum_up(unlisted(ooms, [](const OomReport& o) { return Unlisted{o.event, o.size, o.cause}; }));
}

std::string unlisted_failed_requests(const std::vector<replay::FailedRequest>& failed) {
  return sum_up(unlisted(failed, [](const replay::FailedRequest& f) {
    return Unlisted{f.event, f.size, f.served ? "served here" : "failed here too"};
  }));
}

std::string failed_request_verdict(const replay::FailedRequest& f) {
  return f.served ? "served here; the recording failed it (freed at once: the program never held it)"
                  : "failed here too (an OOM of this replay)";
}

bool fragmentation_matters(const MomentFigures& m) {
  return m.external_fragmentation >= 0.5 && m.reserved > 0 && m.cached_free >= m.reserved / 20;
}

std::vector<std::string> what_to_do(const FragReport& report, std::optional<uint64_t> min_capacity) {
  std::vector<std::string> out;
  const Fragmentation& f = report.frag;
  if (!report.ooms.empty()) {
    const OomReport& first = report.ooms.front();
    size_t fragmented = 0;
    for (const OomReport& o : report.ooms) fragmented += o.cause == "fragmentation" ? 1 : 0;
    out.push_back(std::to_string(report.ooms.size()) + " request(s) failed; the first (" + format_bytes(first.size) +
                  " at event " + std::to_string(first.event) +
                  (first.recorded_failure ? ", which the recording failed too" : "") + ") by " + first.cause + ": " +
                  first.advice.front());
    if (fragmented > 0 && fragmented < report.ooms.size())
      out.push_back(std::to_string(fragmented) + " of the OOMs were fragmentation, the rest lack of capacity");
    if (min_capacity)
      out.push_back("give the job at least " + format_bytes(*min_capacity) + " of device memory (replayed min capacity" +
                    (report.failed_requests.empty() ? std::string(")")
                                                    : ", the requests the recording failed included)"));
  } else if (report.run.static_snapshot) {
    out.push_back("snapshot: " + format_bytes(f.peak_reserved) + " reserved for " + format_bytes(f.peak_requested) +
                  " requested (efficiency " + percent(f.efficiency) + ")");
  } else if (report.run.capacity) {
    out.push_back("fits: peak reserved " + format_bytes(f.peak_reserved) + " of capacity " +
                  format_bytes(*report.run.capacity) + " (headroom " +
                  format_bytes(minus(*report.run.capacity, f.peak_reserved)) + ")");
  } else {
    out.push_back("on an unlimited device the run peaks at " + format_bytes(f.peak_reserved) + " reserved" +
                  (min_capacity ? "; it fits in " + format_bytes(*min_capacity) : std::string()));
  }
  if (report.native && report.native->peak_reserved && !report.run.static_snapshot) {
    uint64_t native = *report.native->peak_reserved;
    std::string policy = report.run.policy.empty() ? "this policy" : report.run.policy;
    if (f.peak_reserved <= native)
      out.push_back(policy + " peaks at " + format_bytes(f.peak_reserved) + " reserved vs " + format_bytes(native) +
                    " for the recording allocator: saves " + format_bytes(native - f.peak_reserved));
    else
      out.push_back(policy + " peaks at " + format_bytes(f.peak_reserved) + " reserved vs " + format_bytes(native) +
                    " for the recording allocator: needs " + format_bytes(f.peak_reserved - native) + " more");
  }
  served_failures(report, out);
  size_t said = out.size();
  if (!f.moments.empty()) {
    const MomentFigures& m = f.moments.front();
    if (fragmentation_matters(m))
      out.push_back("at " + m.moment + ", cached free " + format_bytes(m.cached_free) + " is in pieces (largest " +
                    format_bytes(m.largest_free_block) + ", external fragmentation " +
                    percent(m.external_fragmentation) + "): see the worst holes; long-lived blocks pin them");
    if (m.allocated > 0 && m.internal_fragmentation * 20 >= m.allocated)
      out.push_back("rounding wastes " + format_bytes(m.internal_fragmentation) + " (" +
                    percent(double(m.internal_fragmentation) / double(m.allocated)) +
                    " of allocated) at " + m.moment + ": finer size classes or rounding would recover it");
  }
  if (f.peak_reserved > 0 && f.efficiency < 0.85)
    out.push_back("efficiency " + percent(f.efficiency) + ": reserved exceeds requested by " +
                  format_bytes(minus(f.peak_reserved, f.peak_requested)) +
                  (report.run.static_snapshot ? " in the snapshot" : " at the peaks"));
  if (out.size() == said && report.ooms.empty() && report.failed_requests.empty()) {
    std::string cached;
    if (!f.moments.empty() && f.moments.front().reserved > 0)
      cached = ", cached free " + format_bytes(f.moments.front().cached_free) + " (" +
               percent(double(f.moments.front().cached_free) / double(f.moments.front().reserved)) + " of reserved)";
    out.push_back("nothing to change: efficiency " + percent(f.efficiency) + cached);
  }
  return out;
}

}  // namespace hbmalloc::report
