// The large pool's free blocks (and, with VMM, its unmapped gaps), per
// stream, in best-fit order: by size, then by address. Best fit is the
// smallest block of at least the requested size, the lowest address among
// equals.
//
// Segregated bins in the manner of TLSF: a size maps to one of kBins bins
// (16 per power of two above 8 KiB, so sizes in a bin differ by under 1/16),
// and a two-level bitmap says which bins hold blocks. A search looks in the
// request's own bin, then takes the smallest block of the next non-empty bin
// (two count-trailing-zeros). Bins are short in practice, and a short bin is
// a sorted vector (free_bin.h): this beats one ordered tree per stream by
// about a quarter of the whole replay time (benchmarks/README.md).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

#include "core/per_stream.h"
#include "policy/hbm/block.h"
#include "policy/hbm/free_bin.h"

namespace hbmalloc::hbm {

class FreeIndex {
 public:
  // Takes the best fit for `size` out of the index; nullptr when the stream
  // has no free block that large.
  Block* take_best_fit(StreamId stream, uint64_t size) {
    Bins& bins = streams_.of(stream);
    uint32_t bin = bin_of(size);
    Block* b = bins.bins[bin].take_fit(size);
    if (b == nullptr) {
      bin = bins.first_set_after(bin);
      if (bin == kBins) return nullptr;
      b = bins.bins[bin].take_smallest();  // every block of a higher bin is large enough
    }
    if (bins.bins[bin].empty()) bins.clear_bit(bin);
    --count_;
    return b;
  }
  // The stream's best fit for `size`, left in the index (nullptr: none).
  Block* best_fit(StreamId stream, uint64_t size) const {
    const Bins* bins = streams_.find(stream);
    return bins == nullptr ? nullptr : fit_in(*bins, size);
  }
  // Appends, for each stream with a block of at least `size`, its best fit
  // (left in the index): the candidates of a best fit over all streams.
  void append_best_fits(uint64_t size, std::vector<Block*>& out) const {
    for (const auto& [stream, bins] : streams_)
      if (Block* b = fit_in(*bins, size)) out.push_back(b);
  }
  // Whether no stream but `stream` has ever had a block indexed.
  bool only(StreamId stream) const { return streams_.only(stream); }
  // b's size, address and stream must not change while it is indexed.
  void insert(Block* b) {
    Bins& bins = streams_.of(b->stream);
    uint32_t bin = bin_of(b->size);
    bins.bins[bin].insert(b);
    bins.set_bit(bin);
    ++count_;
  }
  void erase(const Block* b) {
    Bins& bins = streams_.of(b->stream);
    uint32_t bin = bin_of(b->size);
    if (!bins.bins[bin].erase(b)) return;
    if (bins.bins[bin].empty()) bins.clear_bit(bin);
    --count_;
  }

  bool contains(const Block* b) const {
    const Bins* bins = streams_.find(b->stream);
    return bins != nullptr && bins->bins[bin_of(b->size)].contains(b);
  }
  size_t size() const { return count_; }
  uint64_t largest() const {
    uint64_t largest = 0;
    for (const auto& [stream, bins] : streams_) {
      uint32_t top = bins->last_set();
      if (top != kBins) largest = std::max(largest, bins->bins[top].largest());
    }
    return largest;
  }
  // Calls f(size, addr, block) for each of the stream's blocks (any order).
  template <typename F>
  void for_each(StreamId stream, F&& f) const {
    const Bins* found = streams_.find(stream);
    if (found == nullptr) return;
    const Bins& bins = *found;
    for (uint32_t bin = bins.first_set_after_or_at(0); bin != kBins; bin = bins.first_set_after(bin))
      bins.bins[bin].for_each([&](const FreeBin::Entry& e) { f(e.size, e.addr, e.block); });
  }
  // Calls f(size, addr, block) for every stream's blocks, the given stream
  // first, each from its largest bin down (within a bin sizes differ by under
  // 1/16). f says how to go on.
  enum Walk { kGoOn, kNextStream, kStop };
  template <typename F>
  void for_each_largest_first(StreamId first, F&& f) const {
    auto walk = [&](const Bins& bins) {
      Walk w = kGoOn;
      for (uint32_t bin = bins.last_set(); bin != kBins && w == kGoOn; bin = bins.last_set_before(bin))
        bins.bins[bin].for_each([&](const FreeBin::Entry& e) {
          if (w == kGoOn) w = f(e.size, e.addr, e.block);
        });
      return w;
    };
    if (const Bins* own = streams_.find(first); own != nullptr && walk(*own) == kStop) return;
    for (const auto& [stream, bins] : streams_)
      if (stream != first && walk(*bins) == kStop) return;
  }
  // Every bin sits where its sizes map, in order, and the bitmaps agree (for the checker).
  bool consistent() const {
    for (const auto& [stream, bins] : streams_)
      for (uint32_t i = 0; i < kBins; ++i) {
        const FreeBin& bin = bins->bins[i];
        if (bins->has(i) != !bin.empty() || !bin.ordered()) return false;
        bool placed = true;
        bin.for_each([&](const FreeBin::Entry& e) {
          placed = placed && bin_of(e.size) == i && e.block->size == e.size && e.block->addr == e.addr;
        });
        if (!placed) return false;
      }
    return true;
  }
  // Bin of a size: one bin per 512 B below 8 KiB, then 16 per power of two.
  // Monotone, so every block in a higher bin is larger than any in a lower one.
  static constexpr uint32_t kSubBits = 4;
  static constexpr uint32_t kSub = 1u << kSubBits;
  static uint32_t bin_of(uint64_t size) {
    uint64_t units = size >> 9;
    if (units < kSub) return uint32_t(units);
    uint32_t exp = 63u - uint32_t(std::countl_zero(units));  // >= kSubBits
    uint32_t sub = uint32_t(units >> (exp - kSubBits)) & (kSub - 1);
    return kSub + (exp - kSubBits) * kSub + sub;
  }
  static constexpr uint32_t kBins = kSub + (64 - 9 - kSubBits) * kSub;

 private:
  static constexpr uint32_t kWords = (kBins + 63) / 64;
  static_assert(kWords <= 64, "one summary word covers the bin bitmap");
  struct Bins {
    uint64_t summary = 0;                 // bit w: words[w] != 0
    std::array<uint64_t, kWords> words{};  // bit b of word w: bins[w * 64 + b] is not empty
    std::array<FreeBin, kBins> bins;

    bool has(uint32_t bin) const { return (words[bin / 64] >> (bin % 64)) & 1; }
    void set_bit(uint32_t bin) {
      words[bin / 64] |= uint64_t(1) << (bin % 64);
      summary |= uint64_t(1) << (bin / 64);
    }
    void clear_bit(uint32_t bin) {
      words[bin / 64] &= ~(uint64_t(1) << (bin % 64));
      if (words[bin / 64] == 0) summary &= ~(uint64_t(1) << (bin / 64));
    }
    // The first non-empty bin above `bin`, or kBins.
    uint32_t first_set_after(uint32_t bin) const {
      uint32_t w = bin / 64, b = bin % 64;
      uint64_t rest = b == 63 ? 0 : words[w] & (~uint64_t(0) << (b + 1));
      if (rest != 0) return w * 64 + uint32_t(std::countr_zero(rest));
      uint64_t later = w == 63 ? 0 : summary & (~uint64_t(0) << (w + 1));
      if (later == 0) return kBins;
      w = uint32_t(std::countr_zero(later));
      return w * 64 + uint32_t(std::countr_zero(words[w]));
    }
    uint32_t last_set() const {
      if (summary == 0) return kBins;
      uint32_t w = 63u - uint32_t(std::countl_zero(summary));
      return w * 64 + 63u - uint32_t(std::countl_zero(words[w]));
    }
    // The first non-empty bin at or above `bin`, or kBins.
    uint32_t first_set_after_or_at(uint32_t bin) const { return has(bin) ? bin : first_set_after(bin); }
    // The last non-empty bin below `bin`, or kBins.
    uint32_t last_set_before(uint32_t bin) const {
      uint32_t w = bin / 64, b = bin % 64;
      uint64_t rest = b == 0 ? 0 : words[w] & ((uint64_t(1) << b) - 1);
      if (rest != 0) return w * 64 + 63u - uint32_t(std::countl_zero(rest));
      uint64_t earlier = w == 0 ? 0 : summary & ((uint64_t(1) << w) - 1);
      if (earlier == 0) return kBins;
      w = 63u - uint32_t(std::countl_zero(earlier));
      return w * 64 + 63u - uint32_t(std::countl_zero(words[w]));
    }
  };
  // The smallest block of at least `size` in bins (the first by address among equals).
  static Block* fit_in(const Bins& bins, uint64_t size) {
    const uint32_t own_bin = bin_of(size);
    if (const Block* b = bins.bins[own_bin].fit(size)) return const_cast<Block*>(b);
    const uint32_t bin = bins.first_set_after(own_bin);
    return bin == kBins ? nullptr : const_cast<Block*>(bins.bins[bin].smallest());
  }

  PerStream<Bins> streams_;
  size_t count_ = 0;
};

}  // namespace hbmalloc::hbm
