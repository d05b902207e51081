#include "tune/sweep.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "replay/replay.h"

namespace hbmalloc::tune {
namespace {

PointResult run_point(const trace::Trace& trace, const Point& point, size_t index, const SweepOptions& o) {
  PointResult r;
  r.point = point;
  r.index = index;
  try {
    replay::ReplayOptions ro;
    ro.config = point.config;
    ro.device = o.device;
    ro.capacity = o.capacity;
    const replay::ReplayResult res = replay::replay(trace, ro);
    r.peak_requested = res.peak_requested;
    r.peak_allocated = res.peak_allocated;
    r.peak_reserved = res.peak_reserved;
    r.efficiency = res.efficiency;
    r.ooms = res.ooms.size();
    r.fits = res.ooms.empty();
    r.device_seconds = modeled_device_seconds(res.final_stats);
    if (o.min_capacity) r.min_capacity = replay::min_capacity(trace, ro);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

}  // namespace

bool ranks_before(const PointResult& a, const PointResult& b) {
  // Points that fit rank by what they reserve; points that do not, by the
  // device they would need (min capacity), which is what their user must buy.
  auto key = [](const PointResult& r) {
    const uint64_t need = r.min_capacity.value_or(UINT64_MAX);
    return std::make_tuple(!r.error.empty(), !r.fits, r.fits ? r.peak_reserved : need,
                           r.fits ? need : r.peak_reserved, r.ooms, r.point.settings.size(), r.index);
  };
  return key(a) < key(b);
}

std::vector<PointResult> sweep(const trace::Trace& trace, const std::vector<Point>& points, const SweepOptions& o) {
  trace.device_or_error(o.device);  // a bad device is one error, not one per point
  std::vector<PointResult> results(points.size());
  std::atomic<size_t> next{0};
  size_t done = 0;
  std::mutex mu;
  std::condition_variable finished;

  unsigned threads = o.threads != 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = unsigned(std::min<size_t>(threads, std::max<size_t>(points.size(), 1)));
  std::vector<std::jthread> workers;
  for (unsigned t = 0; t < threads; ++t)
    workers.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < points.size();) {
        PointResult r = run_point(trace, points[i], i, o);
        std::lock_guard<std::mutex> lock(mu);
        results[i] = std::move(r);
        ++done;
        finished.notify_one();
      }
    });
  {
    std::unique_lock<std::mutex> lock(mu);
    while (done < points.size()) {
      finished.wait_for(lock, std::chrono::milliseconds(200));
      const size_t now = done;
      lock.unlock();  // the workers go on while the bar is drawn
      if (o.progress) o.progress(now, points.size());
      lock.lock();
    }
  }
  workers.clear();  // joins
  if (o.progress) o.progress(points.size(), points.size());
  std::sort(results.begin(), results.end(), ranks_before);
  return results;
}

}  // namespace hbmalloc::tune
