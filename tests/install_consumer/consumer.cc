// Uses the installed headers and library: the C ABI and the C++ API.
#include <hbmalloc/allocator.hpp>
#include <hbmalloc/hbmalloc.h>

#include <cstdio>

int main() {
  if (hbm_configure("backend:sim,capacity:4GiB") != 0) {
    std::printf("FAIL: hbm_configure: %s\n", hbm_last_error());
    return 1;
  }
  void* p = hbm_malloc(1 << 20, 0, nullptr);
  if (p == nullptr) {
    std::printf("FAIL: hbm_malloc: %s\n", hbm_last_error());
    return 1;
  }
  hbm_free(p, 1 << 20, 0, nullptr);

  hbmalloc::Config config = hbmalloc::Config::parse("backend:sim");
  hbmalloc::Allocator alloc(config, 0);
  void* q = alloc.malloc(64 << 20);
  alloc.free(q);
  alloc.check_invariants();
  try {
    hbmalloc::Config::parse("nonsense:1");
    std::printf("FAIL: bad config accepted\n");
    return 1;
  } catch (const hbmalloc::Error& e) {
    std::printf("consumer: installed hbmalloc works (C ABI and C++ API); bad config -> %s\n", e.what());
  }
  return hbm_check_invariants(0) == 0 ? 0 : 1;
}
