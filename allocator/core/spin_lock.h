// The per-device lock. Critical sections are a few dozen nanoseconds, so an
// uncontended lock must cost one atomic exchange and a plain release store
// (a pthread mutex costs two locked instructions per pair); under contention
// it spins briefly, then yields the core.
#pragma once

#include <atomic>
#include <thread>

namespace hbmalloc {

class SpinLock {
 public:
  void lock() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_slow();
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  void lock_slow() {
    for (int spins = 0;;) {
      // Read-only wait keeps the cache line shared until the holder lets go.
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins++ < 64) __builtin_ia32_pause();
        else std::this_thread::yield();
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
};

}  // namespace hbmalloc
