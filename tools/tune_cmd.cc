// `hbmalloc tune TRACE`: replays a trace under every point of a policy's
// knob grid, in parallel, ranks the results and prints the best setting
// that fits as a ready PYTORCH_CUDA_ALLOC_CONF / HBMALLOC_CONF line.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_args.h"
#include "json_out.h"
#include "record/safe_text.h"
#include "commands.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "replay/replay.h"
#include "trace/read_trace.h"
#include "policy/policy_catalog.h"
#include "tune/capacity_choice.h"
#include "tune/grid.h"
#include "tune/sweep.h"

namespace hbmalloc::tools {
namespace {

using nlohmann::json;

std::string settings_text(const tune::Point& p) {
  if (p.settings.empty()) return "(" + std::string(policy_named(p.policy).defaults_name) + ")";
  return cca::alloc_conf_text(p.settings);
}

// What runs with nothing tuned: the recorded settings for a policy that reads them.
std::string baseline_name(const std::string& policy) {
  const PolicyDescription& p = policy_named(policy);
  return p.reads_pytorch_settings ? "the recorded settings" : std::string(p.defaults_name);
}

std::string capacity_text(std::optional<uint64_t> c) { return c ? format_bytes(*c) : "unlimited"; }

json point_json(const tune::PointResult& r, size_t rank) {
  json j{{"rank", rank},
         {"policy", r.point.policy},
         {"settings", cca::alloc_conf_text(r.point.settings)},
         {"line", tune::conf_line(r.point)},
         {"baseline", r.point.baseline},
         {"fits", r.fits},
         {"peak_requested", r.peak_requested},
         {"peak_allocated", r.peak_allocated},
         {"peak_reserved", r.peak_reserved},
         {"efficiency", r.efficiency},
         {"oom_count", r.ooms}};
  if (r.min_capacity) j["min_capacity"] = *r.min_capacity;
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

// Points that ran alike (same figures), shown as one row.
bool alike(const tune::PointResult& a, const tune::PointResult& b) {
  return a.error.empty() && b.error.empty() && a.point.policy == b.point.policy && a.fits == b.fits &&
         a.peak_reserved == b.peak_reserved && a.peak_allocated == b.peak_allocated && a.ooms == b.ooms &&
         a.min_capacity == b.min_capacity;
}

void print_row(const tune::PointResult& r, size_t rank, bool both, size_t same) {
  std::string name = (both ? r.point.policy + "  " : "") + settings_text(r.point);
  if (r.point.baseline) name += policy_named(r.point.policy).reads_pytorch_settings ? "  [as recorded]" : "  [defaults]";
  if (same > 0) name += "  (+" + std::to_string(same) + " alike)";
  if (!r.error.empty()) {
    std::printf("%5zu  error: %s  %s\n", rank, r.error.c_str(), name.c_str());
    return;
  }
  std::printf("%5zu  %-4s %14s %11.4f %13s %5llu  %s\n", rank, r.fits ? "yes" : "no",
              format_bytes(r.peak_reserved).c_str(), r.efficiency,
              r.min_capacity ? format_bytes(*r.min_capacity).c_str() : "-", (unsigned long long)r.ooms, name.c_str());
}

// The best point of `policy` that was replayed and fit, if any.
const tune::PointResult* best_of(const std::vector<tune::PointResult>& ranked, const std::string& policy) {
  for (const tune::PointResult& r : ranked)
    if (r.point.policy == policy && r.error.empty() && r.fits) return &r;
  return nullptr;
}

const tune::PointResult* baseline_of(const std::vector<tune::PointResult>& ranked, const std::string& policy) {
  for (const tune::PointResult& r : ranked)
    if (r.point.policy == policy && r.point.baseline) return &r;
  return nullptr;
}

void print_recommendation(const std::vector<tune::PointResult>& ranked, const std::string& policy,
                          std::optional<uint64_t> capacity) {
  const tune::PointResult* best = best_of(ranked, policy);
  if (best == nullptr) {
    std::printf("\n%s: no setting in the grid fits in %s; nothing to recommend", policy.c_str(),
                capacity_text(capacity).c_str());
    // Ranked by min capacity when none fits: the first of this policy needs the least device.
    for (const tune::PointResult& r : ranked)
      if (r.point.policy == policy && r.error.empty() && r.min_capacity) {
        std::printf("\n  the least device any setting fits is %s (%s)", format_bytes(*r.min_capacity).c_str(),
                    settings_text(r.point).c_str());
        if (capacity && *r.min_capacity > *capacity)
          std::printf(": %s more than this one", format_bytes(*r.min_capacity - *capacity).c_str());
        break;
      }
    std::printf("\n");
    return;
  }
  const tune::PointResult* base = baseline_of(ranked, policy);
  std::printf("\n%s, best that fits: %s, peak reserved %s", policy.c_str(), settings_text(best->point).c_str(),
              format_bytes(best->peak_reserved).c_str());
  const std::string what_text = baseline_name(policy);
  const char* what = what_text.c_str();
  if (base != nullptr && base != best && base->error.empty()) {
    if (best->peak_reserved < base->peak_reserved) {
      const uint64_t saved = base->peak_reserved - best->peak_reserved;
      std::printf(", %s (%.1f%%) less than %s (%s%s)", format_bytes(saved).c_str(),
                  100.0 * double(saved) / double(base->peak_reserved), what, format_bytes(base->peak_reserved).c_str(),
                  base->fits ? "" : ", which do not fit");
    } else {
      std::printf(", as %s (%s)", what, format_bytes(base->peak_reserved).c_str());
    }
  } else if (base == best) {
    std::printf(" (%s are the best in this grid)", what);
  }
  std::printf("\n%s\n", tune::conf_line(best->point).c_str());
}

}  // namespace

int run_tune(int argc, char** argv) {
  Args args("tune", {"--policy", "--grid", "--capacity", "--device", "--jobs", "--top", "--max-input", "--max-points"},
            {"--json"});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  if (args.positional().size() != 1) {
    args.fail("wants exactly one TRACE file (see hbmalloc help)");
    return 2;
  }
  std::optional<uint64_t> given_capacity;
  long device = -1, jobs = 0, top = 20, max_points = long(tune::kDefaultMaxPoints);
  if (!args.capacity("--capacity", given_capacity) || !args.integer("--device", 0, 1023, device) ||
      !args.integer("--jobs", 1, 4096, jobs) || !args.integer("--top", 0, 1000000, top) ||
      !args.integer("--max-points", 1, 1L << 40, max_points))
    return 2;
  // By default the policy of people who stay on PyTorch's allocator; "both": every policy, that one first.
  const std::string policy = args.value("--policy").value_or(std::string(recording_policy().name));
  if (policy != "both" && find_policy(policy) == nullptr) {
    args.fail("option '--policy' wants " + policy_names() + " or both, got '" + policy + "'");
    return 2;
  }
  try {
    std::vector<std::string> policies = {policy};
    if (policy == "both") {
      policies = {std::string(recording_policy().name)};
      for (const PolicyDescription& p : policy_catalog())
        if (!p.reproduces_recording) policies.emplace_back(p.name);
    }
    // --grid names keys of either policy; each policy takes its own, or its defaults.
    std::vector<tune::Grid> grids;
    for (const std::string& p : policies) {
      if (auto text = args.value("--grid")) {
        cca::Settings mine;
        for (const auto& kv : cca::split_settings(*text))
          if (policies.size() == 1 || policy_named(p).owns_key(kv.first)) mine.push_back(kv);
        if (!mine.empty() || policies.size() == 1) {
          grids.push_back(settings_of_option("--grid", [&] { return tune::parse_grid(p, cca::alloc_conf_text(mine)); }));
          continue;
        }
      }
      grids.push_back(tune::default_grid(p));
    }

    // Refused before the trace is read: each combination costs a replay or more.
    uint64_t total = 0;
    for (const tune::Grid& g : grids) total = std::max(total, tune::combinations(g));
    if (total > uint64_t(max_points))
      throw Error(ErrorCode::kInvalidArgument,
                  "the grid makes " + (total == UINT64_MAX ? std::string("more than 2^64") : std::to_string(total)) +
                      " combinations, more than the limit of " + std::to_string(max_points) +
                      " (--max-points raises it)");

    trace::Trace t = trace::read_trace_file(args.positional()[0], limits);
    if (!t.has_history)
      throw Error(ErrorCode::kInvalidArgument,
                  t.source + ": a static snapshot (segments only, no events) cannot be replayed; try hbmalloc report");
    if (t.devices.empty()) throw Error(ErrorCode::kInvalidArgument, t.source + ": nothing to replay (the trace is empty)");
    const int dev = device >= 0 ? int(device) : t.devices.front().device;
    const trace::DeviceTrace& d = t.device_or_error(dev);
    const tune::CapacityChoice capacity = tune::capacity_for(t, d, given_capacity);

    std::vector<tune::Point> points;
    size_t skipped = 0;
    for (const tune::Grid& g : grids) {
      size_t s = 0;
      const std::vector<tune::Point> more = tune::expand(g, cca::settings_of_trace(t.settings), s);
      points.insert(points.end(), more.begin(), more.end());
      skipped += s;
    }

    tune::SweepOptions so;
    so.device = dev;
    so.capacity = capacity.bytes;
    so.threads = unsigned(jobs);
    const unsigned threads = jobs > 0 ? unsigned(jobs) : std::max(1u, std::thread::hardware_concurrency());
    Progress bar("tune");
    so.progress = [&](uint64_t done, uint64_t total) { bar.update(done, total); };
    const auto start = std::chrono::steady_clock::now();
    const std::vector<tune::PointResult> ranked = tune::sweep(t, points, so);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    if (args.has("--json")) {
      json j{{"trace", t.source},
             {"device", dev},
             {"policy", policy},
             {"capacity", capacity.bytes.value_or(0)},
             {"capacity_source", capacity.source},
             {"threads", threads},
             {"seconds", seconds},
             {"skipped", skipped}};
      json rows = json::array(), best = json::object();
      for (size_t i = 0; i < ranked.size(); ++i) rows.push_back(point_json(ranked[i], i + 1));
      j["points"] = rows;
      for (const std::string& p : policies)
        if (const tune::PointResult* b = best_of(ranked, p))
          best[p] = point_json(*b, size_t(std::find_if(ranked.begin(), ranked.end(),
                                                        [&](const auto& r) { return &r == b; }) -
                                           ranked.begin()) + 1);
      j["best"] = best;
      const tune::PointResult* overall = ranked.empty() || !ranked.front().fits || !ranked.front().error.empty()
                                             ? nullptr
                                             : &ranked.front();
      j["recommendation"] = overall ? json(tune::conf_line(overall->point)) : json(nullptr);
      std::printf("%s\n", json_text(j).c_str());
      return 0;
    }

    std::printf("hbmalloc tune: %s (%s, device %d)\n", t.source.c_str(), t.format.c_str(), dev);
    std::printf("  %zu settings of policy %s%s at capacity %s (%s), %u threads, %.1f s\n\n", points.size(),
                policy.c_str(),
                skipped ? (" (" + std::to_string(skipped) + " more left out: refused or the same as another)").c_str()
                        : "",
                capacity_text(capacity.bytes).c_str(), capacity.source.c_str(), threads, seconds);
    std::printf(" rank  fits  peak reserved  efficiency  min capacity  OOMs  settings\n");
    // Rows of points that ran alike fold into their best-ranked one; the
    // baseline always shows.
    size_t rows = 0, hidden = 0;
    for (size_t i = 0; i < ranked.size();) {
      size_t j = i + 1;
      while (j < ranked.size() && alike(ranked[i], ranked[j]) && !ranked[j].point.baseline) ++j;
      if (top == 0 || rows < size_t(top) || ranked[i].point.baseline) {
        print_row(ranked[i], i + 1, policies.size() > 1, j - i - 1);
        ++rows;
      } else {
        hidden += j - i;
      }
      i = j;
    }
    if (hidden > 0) std::printf("  (%zu more: --top 0 shows every row, --json gives every point)\n", hidden);
    for (const std::string& p : policies) print_recommendation(ranked, p, capacity.bytes);
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc tune: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools
