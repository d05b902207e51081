// The hot-path form of one PyTorch StatArray. Per pool it keeps only the
// current value, the running total of increases and the peak; `freed`
// (= allocated - current) and the `all` pool are derived when a snapshot is
// taken, except the peak of `all`, which has to be tracked as it happens.
// A decrease is then a single subtraction.
#pragma once

#include <cstdint>

#include "hbmalloc/stats.hpp"

namespace hbmalloc {

class StatTracker {
 public:
  void increase(Pool pool, int64_t n) {
    int i = static_cast<int>(pool);
    current_[i] += n;
    total_[i] += n;
    if (current_[i] > peak_[i]) peak_[i] = current_[i];
    int64_t all = current_[0] + current_[1];
    if (all > all_peak_) all_peak_ = all;
  }
  void decrease(Pool pool, int64_t n) { current_[static_cast<int>(pool)] -= n; }
  void add(Pool pool, int64_t delta) {
    if (delta > 0) increase(pool, delta);
    else decrease(pool, -delta);
  }
  // n moves from one pool to the other (memory held for one now serves the
  // other): each pool's figures change, `all`'s totals do not.
  void move(Pool from, Pool to, int64_t n) {
    decrease(from, n);
    increase(to, n);
    moved_ += n;
  }

  int64_t current(Pool pool) const { return current_[static_cast<int>(pool)]; }
  int64_t current_all() const { return current_[0] + current_[1]; }
  int64_t peak_all() const { return all_peak_; }
  void reset_peak() {
    peak_[0] = current_[0];
    peak_[1] = current_[1];
    all_peak_ = current_all();
  }

  StatArray snapshot() const {
    StatArray a;
    for (Pool pool : {Pool::kSmall, Pool::kLarge}) {
      int i = static_cast<int>(pool);
      a.of(pool) = {current_[i], peak_[i], total_[i], total_[i] - current_[i]};
    }
    const int64_t total = total_[0] + total_[1] - moved_;
    a.all = {current_all(), all_peak_, total, total - current_all()};
    return a;
  }

 private:
  int64_t current_[2] = {0, 0};
  int64_t total_[2] = {0, 0};
  int64_t peak_[2] = {0, 0};
  int64_t all_peak_ = 0;
  int64_t moved_ = 0;  // increases that were moves between the pools
};

}  // namespace hbmalloc
