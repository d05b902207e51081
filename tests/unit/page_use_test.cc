// PageUse, the per-page history of frees that orders remap victims, against a
// plain per-page model over random frees (whole chunks, parts of chunks and
// stretches across them), and at its limits.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "policy/hbm/page_use.h"

namespace hbmalloc::hbm {
namespace {

constexpr uint64_t kChunk = PageUse::kChunk;

// Every page reads as the model says, and for_each_in gives maximal stretches
// of one history that tile the range.
void ExpectMatches(const PageUse& use, const std::vector<PageHistory>& model, uint64_t first, uint64_t end) {
  for (uint64_t p = first; p < end; ++p) {
    const PageHistory want = p < model.size() ? model[p] : PageHistory{};
    ASSERT_EQ(use.at(p).last, want.last) << "page " << p;
    ASSERT_EQ(use.at(p).before, want.before) << "page " << p;
  }
  uint64_t cursor = first;
  PageHistory previous;
  bool any = false;
  use.for_each_in(first, end, [&](uint64_t from, uint64_t to, const PageHistory& h) {
    ASSERT_EQ(from, cursor);
    ASSERT_LT(from, to);
    if (any) {
      ASSERT_FALSE(previous == h) << "stretch at " << from << " should have joined the one before";
    }
    for (uint64_t p = from; p < to; ++p) ASSERT_TRUE(use.at(p) == h) << "page " << p;
    cursor = to;
    previous = h;
    any = true;
  });
  EXPECT_EQ(cursor, end);
}

TEST(PageUse, NeverTouchedPagesHaveNoHistory) {
  PageUse use;
  EXPECT_EQ(use.at(0), PageHistory{});
  EXPECT_EQ(use.at(PageUse::kMaxPages + 5), PageHistory{});
  int calls = 0;
  use.for_each_in(3, 40, [&](uint64_t from, uint64_t to, const PageHistory& h) {
    ++calls;
    EXPECT_EQ(from, 3u);
    EXPECT_EQ(to, 40u);
    EXPECT_EQ(h, PageHistory{});
  });
  EXPECT_EQ(calls, 1);
}

TEST(PageUse, EachFreeShiftsTheLastUseIntoTheOneBefore) {
  PageUse use;
  use.touch(2, 5, 7);
  EXPECT_EQ(use.at(2), (PageHistory{7, 0}));
  EXPECT_EQ(use.at(5), PageHistory{});
  use.touch(4, 6, 9);
  EXPECT_EQ(use.at(3), (PageHistory{7, 0}));
  EXPECT_EQ(use.at(4), (PageHistory{9, 7}));
  EXPECT_EQ(use.at(5), (PageHistory{9, 0}));
}

TEST(PageUse, ReuseDistanceIsTheLongerOfTheLastGapAndTheTimeSince) {
  EXPECT_EQ((PageHistory{}).reuse_distance(50), 50u) << "never used: as far as it gets";
  EXPECT_EQ((PageHistory{40, 0}).reuse_distance(50), 50u) << "used once: no reuse yet";
  EXPECT_EQ((PageHistory{40, 30}).reuse_distance(50), 10u);
  EXPECT_EQ((PageHistory{40, 37}).reuse_distance(50), 10u) << "not used since: the wait so far";
  EXPECT_EQ((PageHistory{49, 37}).reuse_distance(50), 12u);
}

TEST(PageUse, AWholeChunkFreedTwiceIsOneHistoryAgain) {
  PageUse use;
  std::vector<PageHistory> model(3 * kChunk);
  auto touch = [&](uint64_t first, uint64_t end, uint64_t now) {
    use.touch(first, end, now);
    for (uint64_t p = first; p < end; ++p) model[p] = {now, model[p].last};
  };
  touch(kChunk + 3, kChunk + 5, 1);  // part of chunk 1: its pages split
  touch(kChunk, 2 * kChunk, 2);      // all of it, after differing uses
  ExpectMatches(use, model, 0, 3 * kChunk);
  touch(kChunk, 2 * kChunk, 3);  // all of it after one common use
  ExpectMatches(use, model, 0, 3 * kChunk);
  int stretches = 0;
  use.for_each_in(kChunk, 2 * kChunk, [&](uint64_t, uint64_t, const PageHistory&) { ++stretches; });
  EXPECT_EQ(stretches, 1);
}

TEST(PageUse, MatchesAPlainPerPageModelOverRandomFrees) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    PageUse use;
    std::vector<PageHistory> model;
    const uint64_t span = 5 * kChunk + 7;
    for (uint64_t now = 1; now <= 400; ++now) {
      const uint64_t first = rng() % span;
      const uint64_t length = rng() % 4 == 0 ? kChunk * (1 + rng() % 3) : 1 + rng() % (kChunk + 3);
      const uint64_t end = std::min(span, first + length);
      use.touch(first, end, now);
      if (model.size() < end) model.resize(end);
      for (uint64_t p = first; p < end; ++p) model[p] = {now, model[p].last};
      if (now % 25 == 0) ExpectMatches(use, model, 0, span + 3);
    }
    const uint64_t a = rng() % span, b = a + 1 + rng() % (span - a);
    ExpectMatches(use, model, a, b);
  }
}

TEST(PageUse, PagesPastTheLimitAreNotFollowed) {
  PageUse use;
  use.touch(PageUse::kMaxPages - 2, PageUse::kMaxPages + 100, 4);
  EXPECT_EQ(use.at(PageUse::kMaxPages - 1), (PageHistory{4, 0}));
  EXPECT_EQ(use.at(PageUse::kMaxPages), PageHistory{});
  use.touch(PageUse::kMaxPages + 1, PageUse::kMaxPages + 3, 5);  // nothing kept, nothing breaks
  EXPECT_EQ(use.at(PageUse::kMaxPages + 1), PageHistory{});
}

TEST(PageUse, AVeryLongGapReadsAsAtLeastTheLongestKept) {
  PageUse use;
  use.touch(3, 4, 10);  // part of a chunk: the page keeps its own (packed) history
  const uint64_t late = 10 + (uint64_t(1) << 30);
  use.touch(3, 4, late);
  const PageHistory h = use.at(3);
  EXPECT_EQ(h.last, late);
  EXPECT_GE(h.last - h.before, (uint64_t(1) << 24) - 1);
  EXPECT_NE(h.before, 0u) << "a page used twice is not 'never reused'";
  use.touch(3, 4, PageUse::kMaxTime);
  EXPECT_EQ(use.at(3).last, PageUse::kMaxTime);
}

}  // namespace
}  // namespace hbmalloc::hbm
