#include "policy/hbm/page_use.h"

namespace hbmalloc::hbm {

void PageUse::touch(uint64_t first, uint64_t end, uint64_t now) {
  end = std::min(end, kMaxPages);
  if (first >= end) return;
  const uint64_t last_chunk = (end - 1) / kChunk;
  if (chunks_.size() <= last_chunk)
    chunks_.resize(std::min(std::max<uint64_t>(last_chunk + 1, 2 * chunks_.size()), kMaxPages / kChunk));
  uint64_t lo = first % kChunk;
  for (uint64_t c = first / kChunk; c <= last_chunk; ++c, lo = 0) {
    const uint64_t hi = c == last_chunk ? (end - 1) % kChunk + 1 : kChunk;
    Chunk& chunk = chunks_[c];
    const bool whole = lo == 0 && hi == kChunk;
    if (chunk.uniform()) {
      if (whole) {
        chunk.history = PageHistory{now, chunk.history.last};
        continue;
      }
      // Part of it: its pages go their own ways from here.
      if (spare_.empty()) {
        spare_.push_back(pages_.size());
        pages_.resize(pages_.size() + kChunk);
      }
      chunk.pages = spare_.back();
      spare_.pop_back();
      std::fill_n(pages_.begin() + std::ptrdiff_t(chunk.pages), kChunk, pack(chunk.history));
    }
    uint64_t* page = pages_.data() + chunk.pages;
    if (!whole) {
      for (uint64_t p = lo; p < hi; ++p) page[p] = pack(PageHistory{now, page[p] >> kGapBits});
      continue;
    }
    // All of it freed at once after one common use: uniform again.
    const uint64_t common = page[0] >> kGapBits;
    bool same = true;
    for (uint64_t p = 0; p < kChunk; ++p) {
      const uint64_t last = page[p] >> kGapBits;
      same &= last == common;
      page[p] = pack(PageHistory{now, last});
    }
    if (same) {
      spare_.push_back(chunk.pages);
      chunk = Chunk{PageHistory{now, common}, kUniform};
    }
  }
}

}  // namespace hbmalloc::hbm
