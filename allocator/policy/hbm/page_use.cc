#include "policy/hbm/page_use.h"

namespace hbmalloc::hbm {

void PageUse::touch(uint64_t first, uint64_t end, uint64_t now) {
  end = std::min(end, kMaxPages);
  if (first >= end) return;
  if (const uint64_t need = (end + kChunk - 1) / kChunk; chunks_.size() < need)
    chunks_.resize(std::min(std::max<uint64_t>(need, 2 * chunks_.size()), kMaxPages / kChunk));
  for (uint64_t c = first / kChunk; c * kChunk < end; ++c) {
    const uint64_t lo = std::max(first, c * kChunk), hi = std::min(end, (c + 1) * kChunk);
    Chunk& chunk = chunks_[c];
    const bool whole = hi - lo == kChunk;
    if (chunk.uniform() && whole) {
      chunk.history = History{now, chunk.history.last};
      continue;
    }
    if (chunk.uniform()) {  // part of it: its pages go their own ways from here
      if (spare_.empty()) {
        spare_.push_back(pages_.size());
        pages_.resize(pages_.size() + kChunk);
      }
      chunk.pages = spare_.back();
      spare_.pop_back();
      std::fill_n(pages_.begin() + std::ptrdiff_t(chunk.pages), kChunk, pack(chunk.history));
    }
    uint64_t* page = pages_.data() + chunk.pages;
    // All of it freed at once after one common use: uniform again.
    const uint64_t common = page[lo % kChunk] >> kGapBits;
    bool same = whole;
    for (uint64_t p = lo % kChunk; p < (hi - 1) % kChunk + 1; ++p) {
      const uint64_t last = page[p] >> kGapBits;
      same = same && last == common;
      page[p] = now << kGapBits | (last != 0 ? std::min(now - last, kGapMax) : 0);
    }
    if (same) {
      spare_.push_back(chunk.pages);
      chunk = Chunk{History{now, common}, kUniform};
    }
  }
}

}  // namespace hbmalloc::hbm
