#include "commands.h"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cli_args.h"
#include "record/safe_text.h"
#include "hbmalloc/allocator.hpp"

namespace hbmalloc::tools {

namespace {

struct Options {
  int steps = 20;
  std::string conf;
  bool json = false;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 0; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--json") {
      o.json = true;
    } else if ((a == "--steps" || a == "--conf") && i + 1 < argc) {
      std::string_view v = argv[++i];
      if (a == "--conf") {
        o.conf = v;
        continue;
      }
      char* end = nullptr;
      long n = std::strtol(argv[i], &end, 10);
      if (*end != '\0' || n < 1 || n > 100000) {
        std::fprintf(stderr, "hbmalloc demo: --steps wants a whole number in 1..100000, got '%s'\n", argv[i]);
        return false;
      }
      o.steps = int(n);
    } else {
      std::fprintf(stderr, "hbmalloc demo: unknown or incomplete option '%s'\n", argv[i]);
      return false;
    }
  }
  return true;
}

void print_row(const char* name, const StatArray& a, bool bytes) {
  auto f = [&](int64_t v) { return bytes ? format_bytes(uint64_t(v)) : std::to_string(v); };
  std::printf("  %-22s %14s %14s %14s\n", name, f(a.all.current).c_str(), f(a.all.peak).c_str(),
              f(a.all.allocated).c_str());
}

}  // namespace

int run_demo(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  Config config;
  try {
    config = settings_of_option("--conf", [&] { return Config::parse(o.conf); });
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc demo: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  config.backend = "sim";
  Allocator alloc(config, 0);

  // Parameters live for the whole run; each step allocates activations
  // layer by layer (forward), frees them in reverse (backward), with small
  // temporaries on a second stream.
  std::mt19937_64 rng(42);
  std::vector<void*> params;
  int ooms = 0;
  try {
    for (int i = 0; i < 48; ++i) params.push_back(alloc.malloc((i % 4 == 0 ? 4096 : 64ull << 20) + 512 * i));
    for (int step = 0; step < o.steps; ++step) {
      std::vector<void*> activations;
      for (int layer = 0; layer < 24; ++layer) {
        uint64_t act = (8ull << 20) + (rng() % (24ull << 20));
        activations.push_back(alloc.malloc(act));
        for (int t = 0; t < 16; ++t) {
          void* tmp = alloc.malloc(1 + rng() % (1u << 20), t % 2);
          alloc.free(tmp);
        }
      }
      while (!activations.empty()) {
        alloc.free(activations.back());
        activations.pop_back();
      }
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kOutOfMemory) throw;
    ++ooms;
    std::fprintf(stderr, "hbmalloc demo: %s\n", trace::safe_text(e.what()).c_str());
  }
  for (void* p : params) alloc.free(p);
  alloc.check_invariants();
  Stats s = alloc.stats();
  if (o.json) {
    std::printf("%s\n", stats_to_json(s).c_str());
    return ooms ? 1 : 0;
  }
  std::printf("hbmalloc demo: %d steps on the sim backend (%s)\n\n", o.steps, config.to_string().c_str());
  std::printf("  %-22s %14s %14s %14s\n", "stat", "current", "peak", "total");
  print_row("allocation", s.allocation, false);
  print_row("segment", s.segment, false);
  print_row("requested_bytes", s.requested_bytes, true);
  print_row("allocated_bytes", s.allocated_bytes, true);
  print_row("reserved_bytes", s.reserved_bytes, true);
  print_row("inactive_split_bytes", s.inactive_split_bytes, true);
  double eff = s.reserved_bytes.all.peak ? double(s.allocated_bytes.all.peak) / double(s.reserved_bytes.all.peak) : 0;
  std::printf("\n  efficiency (peak allocated / peak reserved): %.4f\n", eff);
  std::printf("  device allocs %lld, device frees %lld, retries %lld, OOMs %lld\n",
              (long long)s.num_device_alloc, (long long)s.num_device_free, (long long)s.num_alloc_retries,
              (long long)s.num_ooms);
  std::printf("  invariants: ok\n");
  return ooms ? 1 : 0;
}

}  // namespace hbmalloc::tools
