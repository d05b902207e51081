// Unit tests for allocator/policy/page_table.h: runs join when pages and ids
// continue each other, unmapping cuts them, misuse changes nothing, and over
// a long random sequence the table agrees with a page-by-page model while
// its runs stay few.
#include "policy/page_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

std::vector<std::pair<uint64_t, uint64_t>> stretches(const PageTable& t) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  t.for_each_stretch([&](uint64_t first, uint64_t n) { out.emplace_back(first, n); });
  return out;
}

TEST(PageTable, AHugeRunIsOneEntry) {
  PageTable t;
  t.map(0, {1000, uint64_t(1) << 27});  // 256 TiB of 2 MiB pages
  EXPECT_EQ(t.runs(), 1u);
  EXPECT_EQ(t.mapped_pages(), uint64_t(1) << 27);
  EXPECT_EQ(t.at((uint64_t(1) << 27) - 1), 1000 + (uint64_t(1) << 27) - 1);
  EXPECT_EQ(t.at(uint64_t(1) << 27), 0u);
}

TEST(PageTable, RunsContinuingPagesAndIdsJoin) {
  PageTable t;
  t.map(10, {100, 5});
  t.map(15, {105, 3});  // continues both: joins
  EXPECT_EQ(t.runs(), 1u);
  t.map(5, {95, 5});  // before it, ids continuing: joins too
  EXPECT_EQ(t.runs(), 1u);
  t.map(18, {500, 2});  // pages continue, ids do not: a run of its own, one stretch
  EXPECT_EQ(t.runs(), 2u);
  EXPECT_EQ(stretches(t), (std::vector<std::pair<uint64_t, uint64_t>>{{5, 15}}));
  EXPECT_EQ(t.at(5), 95u);
  EXPECT_EQ(t.at(17), 107u);
  EXPECT_EQ(t.at(19), 501u);
}

TEST(PageTable, UnmapCutsRunsAndHandsBackTheirGranulesInPageOrder) {
  PageTable t;
  t.map(0, {100, 10});
  t.map(10, {300, 10});
  std::vector<GranuleRun> out;
  t.unmap(8, 4, out);  // the last two of one run, the first two of the next
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, 108u);
  EXPECT_EQ(out[0].count, 2u);
  EXPECT_EQ(out[1].first, 300u);
  EXPECT_EQ(out[1].count, 2u);
  EXPECT_EQ(t.mapped_pages(), 16u);
  EXPECT_EQ(stretches(t), (std::vector<std::pair<uint64_t, uint64_t>>{{0, 8}, {12, 8}}));
  EXPECT_EQ(t.at(12), 302u);
  out.clear();
  t.unmap(3, 2, out);  // the middle of a run: it becomes two
  EXPECT_EQ(t.runs(), 3u);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, 103u);
  // Mapping the same granules back where they were joins the pieces again.
  t.map(3, out[0]);
  EXPECT_EQ(t.runs(), 2u);
}

TEST(PageTable, MisuseIsNamedAndChangesNothing) {
  PageTable t;
  t.map(4, {40, 4});
  std::vector<GranuleRun> out;
  EXPECT_THROW(t.map(6, {90, 1}), Error);   // inside a run
  EXPECT_THROW(t.map(2, {90, 3}), Error);   // runs into one
  EXPECT_THROW(t.unmap(3, 2, out), Error);  // page 3 is not mapped
  EXPECT_THROW(t.unmap(6, 4, out), Error);  // pages 8 and 9 are not
  try {
    t.unmap(7, 3, out);
    FAIL() << "unmapped pages past the run";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvariant);
    EXPECT_NE(std::string(e.what()).find("page 8"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(t.mapped_pages(), 4u);
  EXPECT_EQ(t.runs(), 1u);
  EXPECT_EQ(t.at(7), 43u);
}

// A page-by-page model: random maps of fresh id runs into holes and unmaps of
// mapped stretches; the table answers as the model does at every page, what
// unmap hands back is the model's granules in page order, and the runs never
// outnumber the stretches cut so far.
TEST(PageTable, AgreesWithAPageByPageModel) {
  constexpr uint64_t kPages = 512;
  std::mt19937_64 rng(7);
  PageTable t;
  std::map<uint64_t, GranuleId> model;  // page -> granule
  GranuleId next_id = 1;
  for (int step = 0; step < 20000; ++step) {
    const uint64_t page = rng() % kPages;
    if (model.count(page) == 0) {
      uint64_t n = 1;
      while (page + n < kPages && model.count(page + n) == 0 && n < 1 + rng() % 16) ++n;
      // Sometimes continue the ids of the run before, as a batch growing a segment does.
      GranuleId first = next_id;
      if (page > 0 && model.count(page - 1) && rng() % 2 == 0) {
        const GranuleId before = model[page - 1];
        bool free_ids = true;
        for (const auto& [p, g] : model) free_ids &= g <= before || g > before + n;
        if (free_ids && before + n < next_id) first = before + 1;
      }
      if (first == next_id) next_id += n;
      bool taken = false;
      for (const auto& [p, g] : model) taken |= g >= first && g < first + n;
      if (taken) {
        first = next_id;
        next_id += n;
      }
      t.map(page, {first, n});
      for (uint64_t i = 0; i < n; ++i) model[page + i] = first + i;
    } else {
      uint64_t n = 1;
      while (model.count(page + n) && n < 1 + rng() % 24) ++n;
      std::vector<GranuleRun> out;
      t.unmap(page, n, out);
      std::vector<GranuleId> got;
      for (const GranuleRun& r : out)
        for (uint64_t i = 0; i < r.count; ++i) got.push_back(r.first + i);
      ASSERT_EQ(got.size(), n);
      for (uint64_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i], model[page + i]) << "step " << step;
        model.erase(page + i);
      }
    }
    ASSERT_EQ(t.mapped_pages(), model.size());
    if (step % 97 == 0)
      for (uint64_t p = 0; p < kPages; ++p) ASSERT_EQ(t.at(p), model.count(p) ? model[p] : 0) << "page " << p;
  }
  // Runs are never more than the places where ids or pages break.
  size_t breaks = 0;
  for (auto it = model.begin(); it != model.end(); ++it) {
    auto next = std::next(it);
    if (next == model.end() || next->first != it->first + 1 || next->second != it->second + 1) ++breaks;
  }
  EXPECT_EQ(t.runs(), breaks);
}

}  // namespace
}  // namespace hbmalloc
