// Unit tests for replay/lcs.h and replay/fidelity.h: the bit-parallel LCS
// against the textbook table on random sequences, and the fidelity figures.
#include "replay/lcs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "replay/fidelity.h"

namespace hbmalloc::replay {
namespace {

uint64_t TableLcs(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  std::vector<std::vector<uint64_t>> t(a.size() + 1, std::vector<uint64_t>(b.size() + 1, 0));
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j)
      t[i][j] = a[i - 1] == b[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  return t[a.size()][b.size()];
}

TEST(Lcs, SmallCases) {
  using V = std::vector<uint64_t>;
  EXPECT_EQ(lcs_length(V{}, V{}), 0u);
  EXPECT_EQ(lcs_length(V{1, 2, 3}, V{}), 0u);
  EXPECT_EQ(lcs_length(V{1, 2, 3}, V{1, 2, 3}), 3u);
  EXPECT_EQ(lcs_length(V{1, 2, 3}, V{3, 2, 1}), 1u);
  EXPECT_EQ(lcs_length(V{1, 2, 3, 4}, V{2, 4}), 2u);
  EXPECT_EQ(lcs_length(V{7, 1, 7, 1}, V{1, 7, 1, 7}), 3u);
  EXPECT_EQ(lcs_length(V{5}, V{6}), 0u);
}

TEST(Lcs, AgreesWithTheTableOnRandomSequences) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 300; ++round) {
    // Lengths across word boundaries (63, 64, 65, 128...), alphabets small and large.
    const size_t n = rng() % 200, m = rng() % 200;
    const uint64_t alphabet = 1 + rng() % (round % 3 == 0 ? 3 : 40);
    std::vector<uint64_t> a(n), b(m);
    for (auto& x : a) x = rng() % alphabet;
    for (auto& x : b) x = rng() % alphabet;
    if (round % 5 == 0 && n > 10) b.insert(b.begin(), a.begin(), a.begin() + 10);  // a shared prefix
    ASSERT_EQ(lcs_length(a, b), TableLcs(a, b)) << "round " << round << " n " << n << " m " << b.size();
    ASSERT_EQ(lcs_length(b, a), TableLcs(a, b)) << "round " << round;
  }
}

TEST(Lcs, LongSequencesWithHugeSymbols) {
  std::vector<uint64_t> a, b;
  for (uint64_t i = 0; i < 5000; ++i) a.push_back((i % 97) << 40 | 3);
  b = a;
  b.erase(b.begin() + 100);   // one lost
  b.insert(b.begin() + 2000, uint64_t(1) << 62);  // one extra
  b[4000] = 12345;            // one changed
  EXPECT_EQ(lcs_length(a, b), 4998u);
}

TEST(Lcs, BoundedWorkIsExactWithinItsBudgetAndALowerBoundPastIt) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 100; ++round) {
    const size_t n = 50 + rng() % 300, m = 50 + rng() % 300;
    std::vector<uint64_t> a(n), b(m);
    for (auto& x : a) x = rng() % 5;
    for (auto& x : b) x = rng() % 5;
    const uint64_t exact = TableLcs(a, b);
    const BoundedLcs whole = lcs_length_bounded(a, b);
    EXPECT_TRUE(whole.exact);
    EXPECT_EQ(whole.length, exact);
    // A budget of a few words forces the cut: never more than the LCS, and a
    // common subsequence still (so no more than the shorter one).
    const BoundedLcs cut = lcs_length_bounded(a, b, 64);
    EXPECT_FALSE(cut.exact);
    EXPECT_LE(cut.length, exact);
    EXPECT_GT(cut.length, 0u);
  }
  // Alike sequences lose little to the cut, and 400,000 symbols take no time.
  std::vector<uint64_t> a, b;
  for (uint64_t i = 0; i < 400000; ++i) a.push_back(i % 3);
  b = a;
  b.erase(b.begin() + 1000);
  b[200000] = 9;
  const BoundedLcs big = lcs_length_bounded(a, b, uint64_t{1} << 24);
  EXPECT_FALSE(big.exact);
  EXPECT_LE(big.length, a.size() - 1);
  EXPECT_GE(big.length, a.size() - 2000);
}

TEST(Fidelity, MatchedFractionIsTheLcsOverTheLongerSequence) {
  using A = SegmentAction;
  std::vector<SegmentEvent> rec = {{A::kAlloc, 1, 2 << 20}, {A::kAlloc, 2, 20 << 20}, {A::kFree, 2, 20 << 20}};
  std::vector<SegmentEvent> rep = {{A::kAlloc, 9, 2 << 20}, {A::kAlloc, 8, 20 << 20}, {A::kAlloc, 7, 4 << 20},
                                   {A::kFree, 8, 20 << 20}};
  Fidelity f = compare_segment_events(rec, rep);
  EXPECT_EQ(f.recorded, 3u);
  EXPECT_EQ(f.replayed, 4u);
  EXPECT_EQ(f.matched, 3u);  // addresses do not count, actions and sizes do
  EXPECT_DOUBLE_EQ(f.matched_fraction, 0.75);
  EXPECT_EQ(f.first_difference, 2u);
  // The same size with another action does not match.
  Fidelity g = compare_segment_events({{A::kMap, 0, 2 << 20}}, {{A::kAlloc, 0, 2 << 20}});
  EXPECT_EQ(g.matched, 0u);
  EXPECT_DOUBLE_EQ(g.matched_fraction, 0.0);
  Fidelity none = compare_segment_events({}, {});
  EXPECT_DOUBLE_EQ(none.matched_fraction, 1.0);
}

TEST(Fidelity, RecordedEventsAreTheTracesSegmentEventsInOrder) {
  trace::DeviceTrace d;
  using trace::Action;
  auto ev = [](Action a, uint64_t addr, uint64_t size) {
    trace::Event e;
    e.action = a;
    e.addr = addr;
    e.size = size;
    return e;
  };
  d.events = {ev(Action::kSegmentAlloc, 10, 4), ev(Action::kAlloc, 10, 3), ev(Action::kSegmentMap, 20, 8),
              ev(Action::kOom, 0, 99), ev(Action::kSegmentUnmap, 20, 8), ev(Action::kSegmentFree, 10, 4)};
  std::vector<SegmentEvent> r = recorded_segment_events(d);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].action, SegmentAction::kAlloc);
  EXPECT_EQ(r[1].action, SegmentAction::kMap);
  EXPECT_EQ(r[2].action, SegmentAction::kUnmap);
  EXPECT_EQ(r[3].action, SegmentAction::kFree);
  EXPECT_EQ(r[3].addr, 10u);
  EXPECT_EQ(r[3].bytes, 4u);
}

}  // namespace
}  // namespace hbmalloc::replay
