// When each page of an arena was last given back by a freed block, and the
// time before that: the reuse distance that orders remap victims.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace hbmalloc::hbm {

// Times are a pool's free counter; 0 is "never".
struct PageHistory {
  uint64_t last = 0;
  uint64_t before = 0;
  bool operator==(const PageHistory&) const = default;
  // How long the page goes between uses, as far as is known at `now`: the
  // gap between its last two uses or, when longer, the time since the last
  // (LIRS's measure; a page used once counts as never coming back).
  uint64_t reuse_distance(uint64_t now) const { return std::max(before != 0 ? last - before : now, now - last); }
};

class PageUse {
 public:
  // Pages are kept in chunks; a chunk whose pages share one history keeps it
  // once, so freeing a large block again where it was costs a write per chunk.
  static constexpr uint64_t kChunk = 8;
  // Pages past this are not followed (they read as never used): the history
  // costs at most 11 MiB however large an arena grows.
  static constexpr uint64_t kMaxPages = uint64_t(1) << 20;

  // Times this high no longer fit a page's packed history.
  static constexpr uint64_t kMaxTime = (uint64_t(1) << 40) - 1;
  // Pages [first, end) were freed at `now` (later than every earlier call,
  // at most kMaxTime).
  void touch(uint64_t first, uint64_t end, uint64_t now);

  PageHistory at(uint64_t page) const {
    const uint64_t c = page / kChunk;
    if (c >= chunks_.size()) return {};
    return chunks_[c].uniform() ? chunks_[c].history : unpack(pages_[chunks_[c].pages + page % kChunk]);
  }

  // f(from, to, history) over [first, end), in page order, each stretch of
  // pages with one history once.
  template <typename F>
  void for_each_in(uint64_t first, uint64_t end, F&& f) const {
    while (first < end) {
      const PageHistory h = at(first);
      uint64_t to = first + 1;
      while (to < end && at(to) == h) {
        const uint64_t c = to / kChunk;
        const bool whole = to % kChunk == 0 && c < chunks_.size() && chunks_[c].uniform();
        to = whole ? std::min(end, to + kChunk) : to + 1;
      }
      f(first, to, h);
      first = to;
    }
  }

 private:
  static constexpr uint64_t kUniform = UINT64_MAX;
  struct Chunk {
    PageHistory history;        // every page's, while uniform
    uint64_t pages = kUniform;  // else where in pages_ its kChunk pages' are
    bool uniform() const { return pages == kUniform; }
  };

  std::vector<Chunk> chunks_;   // grown to the highest page touched
  // A page's history in 8 bytes: the last use in the high 40 bits, the gap
  // to the one before in the low 24 (0: none; longer gaps read as 2^24 - 1).
  static constexpr int kGapBits = 24;
  static constexpr uint64_t kGapMax = (uint64_t(1) << kGapBits) - 1;
  static uint64_t pack(const PageHistory& h) {
    return h.last << kGapBits | (h.before != 0 ? std::min(h.last - h.before, kGapMax) : 0);
  }
  static PageHistory unpack(uint64_t v) {
    const uint64_t last = v >> kGapBits, gap = v & kGapMax;
    return PageHistory{last, gap != 0 ? last - gap : 0};
  }
  std::vector<uint64_t> pages_;  // kChunk at a time, for the chunks that are not uniform
  std::vector<uint64_t> spare_; // places in pages_ no chunk uses
};

}  // namespace hbmalloc::hbm
