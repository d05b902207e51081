// Unit tests for the cca policy (allocator/policy/cca/): PyTorch's
// CUDACachingAllocator rules seen through the Allocator on the sim backend:
// pools and segment sizes, best fit and its tie-breaks, splitting,
// max_split_size_mb, the malloc / release / retry order, garbage collection,
// expandable segments, a recorded start, and random runs under the
// invariant checker.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "backend/sim_backend.h"
#include "core/helpers.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "replay/fidelity.h"
#include "replay_hooks.h"
#include "support/invariants.h"
#include "support/no_vmm_backend.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::LiveRanges;
using testing::SimAllocator;

constexpr uint64_t kMiB = uint64_t(1) << 20;

uintptr_t A(void* p) { return reinterpret_cast<uintptr_t>(p); }

// An allocator of the cca policy with its segment events logged.
struct Cca : SimAllocator {
  std::shared_ptr<replay::SegmentLog> observer = std::make_shared<replay::SegmentLog>();
  const std::vector<SegmentEvent>& log = observer->events;
  explicit Cca(const std::string& conf = "", uint64_t capacity = 0)
      : SimAllocator(capacity, "policy:cca" + (conf.empty() ? "" : "," + conf)) {
    alloc->add_observer(observer);
  }
  // "alloc 20971520, free 2097152, ..." of the logged events.
  std::string events() const {
    std::string out;
    for (const SegmentEvent& e : log) {
      const char* name = e.action == SegmentAction::kAlloc  ? "alloc"
                         : e.action == SegmentAction::kFree ? "free"
                         : e.action == SegmentAction::kMap  ? "map"
                                                            : "unmap";
      out += (out.empty() ? "" : ", ") + std::string(name) + " " + std::to_string(e.bytes / kMiB) + "M";
    }
    return out;
  }
  const SegmentLayout& segment_of(void* p) {
    layout_ = alloc->layout();
    for (const SegmentLayout& s : layout_)
      if (A(p) >= s.addr && A(p) < s.addr + s.size) return s;
    throw std::runtime_error("no segment holds the pointer");
  }
  uint64_t block_size(void* p) {
    for (const BlockLayout& b : segment_of(p).blocks)
      if (b.addr == A(p)) return b.size;
    return 0;
  }
  Layout layout_;
};

TEST(CcaPolicy, SmallRequestsShareATwoMiBSegmentInTheSmallPool) {
  Cca a;
  void* p = a->malloc(1000);
  void* q = a->malloc(1000);
  EXPECT_EQ(a.events(), "alloc 2M");
  EXPECT_EQ(A(q), A(p) + 1024);  // rounded to 512, the remainder split off after it
  const SegmentLayout& s = a.segment_of(p);
  EXPECT_EQ(s.pool, Pool::kSmall);
  EXPECT_EQ(s.size, 2 * kMiB);
  Stats st = a->stats();
  EXPECT_EQ(st.allocated_bytes.small_pool.current, 2048);
  EXPECT_EQ(st.requested_bytes.all.current, 2000);
  EXPECT_EQ(st.inactive_split.small_pool.current, 1);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, LargeRequestsBelowTenMiBShareATwentyMiBSegment) {
  Cca a;
  void* p = a->malloc(3 * kMiB);
  void* q = a->malloc(4 * kMiB);
  EXPECT_EQ(a.events(), "alloc 20M");
  EXPECT_EQ(A(q), A(p) + 3 * kMiB);
  EXPECT_EQ(a.segment_of(p).pool, Pool::kLarge);
  void* big = a->malloc(15 * kMiB + 1);  // 10 MiB and more: rounded up to 2 MiB
  EXPECT_EQ(a.events(), "alloc 20M, alloc 16M");
  EXPECT_EQ(a.block_size(big), 16 * kMiB) << "a remainder of 1 MiB or less stays with the block";
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, BestFitBySizeThenLowestAddress) {
  Cca a;
  void* x = a->malloc(12 * kMiB);
  void* y = a->malloc(12 * kMiB);
  void* z = a->malloc(14 * kMiB);
  a->free(z);
  a->free(y);
  a->free(x);
  void* lowest = reinterpret_cast<void*>(std::min(A(x), A(y)));
  EXPECT_EQ(a->malloc(11 * kMiB), lowest) << "equal sizes: the lower address wins";
  EXPECT_EQ(a->malloc(13 * kMiB), z) << "the smallest block that fits";
  EXPECT_EQ(a.events(), "alloc 12M, alloc 12M, alloc 14M");
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, BlocksAreReusedOnTheirOwnStreamOnly) {
  Cca a;
  void* p = a->malloc(12 * kMiB, 1);
  a->free(p);
  void* q = a->malloc(12 * kMiB, 2);
  EXPECT_NE(p, q);
  EXPECT_EQ(a.events(), "alloc 12M, alloc 12M");
  EXPECT_EQ(a->malloc(12 * kMiB, 1), p);
}

TEST(CcaPolicy, SplitKeepsMoreThanOneMiBInTheLargePool) {
  Cca a;
  void* p = a->malloc(3 * kMiB);  // a 20 MiB segment, 17 MiB cached after it
  a->free(p);
  void* q = a->malloc(19 * kMiB);  // 1 MiB would be left: not split
  EXPECT_EQ(a.block_size(q), 20 * kMiB);
  a->free(q);
  void* r = a->malloc(19 * kMiB - 512);  // 1 MiB + 512 left: split
  EXPECT_EQ(a.block_size(r), 19 * kMiB - 512);
  EXPECT_EQ(a.events(), "alloc 20M");
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, OversizeBlocksServeOnlyLargeRequestsWithinTheRoundingLimit) {
  Cca a("max_split_size_mb:40");  // max_non_split_rounding_mb defaults to 20
  void* big = a->malloc(70 * kMiB);
  a->free(big);
  void* mid = a->malloc(30 * kMiB);  // below max_split_size: never an oversize block
  EXPECT_NE(mid, big);
  void* same = a->malloc(55 * kMiB);  // within 20 MiB of the block: taken whole, not split
  EXPECT_EQ(same, big);
  EXPECT_EQ(a.block_size(same), 70 * kMiB);
  a->free(same);
  void* far = a->malloc(45 * kMiB);  // 70 >= 46 + 20 would waste too much
  EXPECT_NE(far, big);
  EXPECT_EQ(a.events(), "alloc 70M, alloc 30M, alloc 46M");
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, OomReleasesOversizeCachedBlocksBeforeEverything) {
  Cca a("max_split_size_mb:40", 80 * kMiB);
  void* keep = a->malloc(1000);  // a small segment that must survive
  void* big = a->malloc(60 * kMiB);
  a->free(big);
  void* p = a->malloc(30 * kMiB);  // 2 + 60 + 30 > 80: the oversize block goes first
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.events(), "alloc 2M, alloc 60M, free 60M, alloc 30M");
  EXPECT_EQ(a->stats().num_alloc_retries, 0) << "no full release was needed";
  a->free(keep);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, OomReleasesTheWholeCacheRetriesOnceThenFailsCleanly) {
  Cca a("", 64 * kMiB);
  void* other = a->malloc(40 * kMiB, 1);
  a->free(other);  // cached, but for stream 1 only
  void* p = a->malloc(40 * kMiB, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.events(), "alloc 40M, free 40M, alloc 40M");
  EXPECT_EQ(a->stats().num_alloc_retries, 1);
  try {
    a->malloc(40 * kMiB, 0);
    ADD_FAILURE() << "expected an OOM";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
  }
  EXPECT_EQ(a->stats().num_ooms, 1);
  a->free(p);
  EXPECT_NE(a->malloc(40 * kMiB, 0), nullptr) << "usable after the OOM";
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, EmptyCacheReleasesWholeSegmentsOnly) {
  Cca a;
  void* p = a->malloc(3 * kMiB);
  void* q = a->malloc(18 * kMiB);  // more than the 17 MiB left after p
  a->free(q);
  a->empty_cache();  // p's segment is in use: it stays, split
  EXPECT_EQ(a.events(), "alloc 20M, alloc 18M, free 18M");
  a->free(p);
  a->empty_cache();
  EXPECT_EQ(a.events(), "alloc 20M, alloc 18M, free 18M, free 20M");
  EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
}

TEST(CcaPolicy, GarbageCollectionRunsOnlyUnderAMemoryFraction) {
  auto run = [](const std::string& conf) {
    Cca a(conf, 100 * kMiB);
    void* x = a->malloc(30 * kMiB);
    void* y = a->malloc(30 * kMiB);
    a->free(x);
    a->free(y);
    a->malloc(32 * kMiB);  // nothing cached fits: gc first, when it is on
    EXPECT_TRUE(InvariantsHold(*a.alloc));
    return a.events();
  };
  // allowed 90 MiB, collect above 45: both cached segments are as old as can be.
  EXPECT_EQ(run("garbage_collection_threshold:0.5,per_process_memory_fraction:0.9"),
            "alloc 30M, alloc 30M, free 30M, free 30M, alloc 32M");
  EXPECT_EQ(run("garbage_collection_threshold:0.5"), "alloc 30M, alloc 30M, alloc 32M");
  EXPECT_EQ(run("garbage_collection_threshold:0.5,memory_fraction:0.9"),
            "alloc 30M, alloc 30M, free 30M, free 30M, alloc 32M");
}

TEST(CcaPolicy, GarbageCollectionFreesTheOldestCachedBlocks) {
  // Age: searches of the large pool since a block was cached.
  Cca a("garbage_collection_threshold:0.5,per_process_memory_fraction:0.9", 100 * kMiB);
  void* x = a->malloc(30 * kMiB);
  void* y = a->malloc(26 * kMiB);
  void* t = a->malloc(12 * kMiB);
  a->free(x);                                               // cached first: the oldest
  a->free(t);
  for (int i = 0; i < 3; ++i) a->free(a->malloc(12 * kMiB));  // t's segment again and again
  a->free(y);
  a->malloc(34 * kMiB);  // 68 cached > 45: blocks at least the average age (2) go, x alone
  EXPECT_EQ(a.events(), "alloc 30M, alloc 26M, alloc 12M, free 30M, alloc 34M");
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, ExpandableSegmentsMapPagesAndUnmapThem) {
  Cca a("expandable_segments:True");
  void* p = a->malloc(3 * kMiB);
  void* q = a->malloc(30 * kMiB);  // grows the same segment, right after p's page
  void* s = a->malloc(1000);       // the small pool has 2 MiB pages
  EXPECT_EQ(a.events(), "map 20M, map 20M, map 2M");
  EXPECT_EQ(A(q), A(p) + 3 * kMiB);
  Stats st = a->stats();
  EXPECT_EQ(st.reserved_bytes.all.current, int64_t(42 * kMiB));
  EXPECT_EQ(st.segment.all.current, 0) << "PyTorch counts mappings as reserved, not as segments";
  EXPECT_EQ(a->layout().size(), 2u) << "one segment per mapped range";
  // Marked as PyTorch's snapshots mark them, each with the page it maps
  // (what getExpandableSegmentSizes and the reports read).
  EXPECT_TRUE(a.segment_of(p).expandable());
  EXPECT_EQ(a.segment_of(p).page_size, 20 * kMiB);
  EXPECT_TRUE(a.segment_of(s).expandable());
  EXPECT_EQ(a.segment_of(s).page_size, 2 * kMiB);
  Cca plain;
  void* x = plain->malloc(1000);
  EXPECT_FALSE(plain.segment_of(x).expandable());
  EXPECT_EQ(plain.segment_of(x).page_size, 0u);
  plain->free(x);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(q);
  a->empty_cache();  // the pages p does not touch go
  EXPECT_EQ(a.events(), "map 20M, map 20M, map 2M, unmap 20M");
  a->free(p);
  a->free(s);
  a->empty_cache();
  EXPECT_EQ(a.events(), "map 20M, map 20M, map 2M, unmap 20M, unmap 20M, unmap 2M");
  EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
  EXPECT_TRUE(a->layout().empty());
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, ExpandableSegmentsUnmapOnOomAndMapAgain) {
  Cca a("expandable_segments:True", 60 * kMiB);
  void* x = a->malloc(30 * kMiB, 1);  // two 20 MiB pages on stream 1
  a->free(x);
  void* y = a->malloc(30 * kMiB, 0);  // 40 + 40 > 60: stream 1's pages go back first
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(a.events(), "map 40M, unmap 40M, map 40M");
  Stats st = a->stats();
  EXPECT_EQ(st.reserved_bytes.all.peak, int64_t(40 * kMiB)) << "the page taken by the failed map never counted";
  EXPECT_EQ(st.vmm.create, 40) << "in 2 MiB granules: 40 MiB twice; the failed map took none";
  EXPECT_EQ(st.vmm.unmap, 20);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// A request larger than the segment reserved for 9/8 of the device: on a
// limited device it fails cleanly (it crashed walking past the segment's
// end); on an unlimited one the segment is made large enough for it.
TEST(CcaPolicy, ExpandableSegmentsPastTheirRange) {
  Cca limited("expandable_segments:True", 1024 * kMiB);
  try {
    limited->malloc(2048 * kMiB, 0);
    ADD_FAILURE() << "expected an OOM";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
  }
  void* p = limited->malloc(30 * kMiB, 0);
  EXPECT_NE(p, nullptr) << "usable after the OOM";
  limited->free(p);
  EXPECT_TRUE(InvariantsHold(*limited.alloc));

  Cca unlimited("expandable_segments:True");
  const uint64_t huge = uint64_t(2) << 40;  // 2 TiB, past the 9/8 of 1 TiB an unlimited device counts as
  void* h = unlimited->malloc(huge, 0);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(unlimited.events(), "map " + std::to_string(round_up(huge, 20 * kMiB) / kMiB) + "M");
  EXPECT_TRUE(InvariantsHold(*unlimited.alloc));
  unlimited->free(h);
}

// A device of 1 PiB (the largest hbmalloc models, what benchmarks call
// unlimited): each stream's and pool's segment reserves room for 1 TiB, not
// 9/8 PiB, so segments of several streams fit the address space.
TEST(CcaPolicy, ExpandableSegmentsOfSeveralStreamsOnAHugeDevice) {
  Cca huge("expandable_segments:True", uint64_t(1) << 50);
  std::vector<void*> held;
  for (StreamId stream = 0; stream < 4; ++stream) {
    held.push_back(huge->malloc(64 * kMiB, stream));
    held.push_back(huge->malloc(4096, stream));
  }
  for (void* p : held) EXPECT_NE(p, nullptr);
  EXPECT_EQ(huge->stats().num_ooms, 0);
  EXPECT_TRUE(InvariantsHold(*huge.alloc));
  for (void* p : held) huge->free(p);
}

TEST(CcaPolicy, ConfigErrorsNameTheKey) {
  auto error_of = [](const std::string& conf, std::unique_ptr<Backend> backend) -> std::string {
    try {
      Allocator a(Config::parse(conf), std::move(backend));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig);
      return e.what();
    }
    return "";
  };
  // Expandable segments need the mapping a backend without VMM lacks.
  EXPECT_NE(error_of("policy:cca,expandable_segments:True", std::make_unique<testing::NoVmmBackend>())
                .find("expandable_segments"),
            std::string::npos);
  EXPECT_NE(error_of("max_split_size_mb:100", std::make_unique<SimBackend>(0, 0)).find("max_split_size_mb"),
            std::string::npos)
      << "PyTorch keys mean nothing to the hbm policy";
  EXPECT_EQ(error_of("policy:cca,max_split_size_mb:100", std::make_unique<SimBackend>(0, 0)), "");
}

TEST(CcaPolicy, AdoptsARecordedStart) {
  Cca a;
  const uint64_t base = 0x7f0000000000;
  Layout start = {
      {base, 20 * kMiB, Pool::kLarge, 7,
       {{base, 0, 3 * kMiB - 100, true},                       // rounded: 3 MiB
        {base + 5 * kMiB, 0, 2 * kMiB, true},                  // 2 MiB, then a gap of 13 MiB stays free
        {base + 19 * kMiB + 512, 512 * 1024, 1000, true}}},    // a recorded size is kept
      {base + 32 * kMiB, 2 * kMiB, Pool::kSmall, 7, {{base + 32 * kMiB + 1024, 0, 100, true}}},
      {base + 64 * kMiB, 12 * kMiB, Pool::kLarge, 0, {{base + 64 * kMiB, 0, 11 * kMiB + 1, true}}},  // absorbs < 1 MiB
  };
  std::vector<void*> live = ReplayHooks::adopt(*a.alloc, start);
  ASSERT_EQ(live.size(), 5u);
  EXPECT_TRUE(a.log.empty()) << "a start picture is not a segment event";
  EXPECT_EQ(a.block_size(live[0]), 3 * kMiB);
  EXPECT_EQ(a.block_size(live[1]), 2 * kMiB);
  EXPECT_EQ(a.block_size(live[2]), 512 * 1024u);
  EXPECT_EQ(a.block_size(live[3]), 512u);
  EXPECT_EQ(a.block_size(live[4]), 12 * kMiB);
  EXPECT_EQ(A(live[1]) - A(live[0]), 5 * kMiB) << "offsets kept";
  Layout l = a->layout();
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0].blocks.size(), 6u);  // live, free, live, free, live, free tail
  EXPECT_EQ(l[0].stream, 7u);
  Stats st = a->stats();
  EXPECT_EQ(st.allocation.all.current, 5);
  EXPECT_EQ(st.requested_bytes.all.current, int64_t(3 * kMiB - 100 + 2 * kMiB + 1000 + 100 + 11 * kMiB + 1));
  EXPECT_EQ(st.reserved_bytes.all.current, int64_t(34 * kMiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  // The free gap serves the next request of its stream.
  EXPECT_EQ(A(a->malloc(12 * kMiB, 7)), A(live[1]) + 2 * kMiB);
  for (void* p : live) a->free(p);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(CcaPolicy, AdoptRefusesAnInconsistentPicture) {
  auto error_of = [](const Layout& start) -> std::string {
    Cca a;
    try {
      ReplayHooks::adopt(*a.alloc, start);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return e.what();
    }
    return "";
  };
  const uint64_t b = 0x7f0000000000;
  EXPECT_NE(error_of({{b, 2 * kMiB, Pool::kSmall, 0, {{b + 4 * kMiB, 0, 10, true}}}}).find("outside"), std::string::npos);
  EXPECT_NE(error_of({{b, 2 * kMiB, Pool::kSmall, 0, {{b + 100, 0, 10, true}}}}).find("aligned"), std::string::npos);
  EXPECT_NE(error_of({{b, 2 * kMiB, Pool::kSmall, 0, {{b, 4096, 10, true}, {b + 1024, 0, 10, true}}}}).find("fit"),
            std::string::npos);
  EXPECT_NE(error_of({{b, 20 * kMiB, Pool::kLarge, 0, {}}, {b + kMiB, 2 * kMiB, Pool::kSmall, 0, {}}}).find("overlaps"),
            std::string::npos);
  // Found by tests/fuzz/replay_fuzz: a block of untold size whose request runs
  // past the next block was cut to the gap, holding less than was asked of it.
  EXPECT_NE(error_of({{b, 20 * kMiB, Pool::kLarge, 0, {{b, 0, 6 * kMiB, true}, {b + 4 * kMiB, 0, kMiB, true}}}})
                .find("its request does not fit before the next block"),
            std::string::npos);
  // All or nothing: a picture that does not fit the device leaves the allocator empty and usable.
  Cca small("", 16 * kMiB);
  try {
    ReplayHooks::adopt(*small.alloc, {{b, 12 * kMiB, Pool::kLarge, 0, {{b, 0, 5 * kMiB, true}}},
                                      {b + 32 * kMiB, 12 * kMiB, Pool::kLarge, 0, {}}});
    ADD_FAILURE() << "adopted more than the device holds";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
  }
  EXPECT_EQ(small->stats().reserved_bytes.all.current, 0);
  EXPECT_TRUE(small.log.empty());
  EXPECT_TRUE(InvariantsHold(*small.alloc));
  EXPECT_NE(small->malloc(12 * kMiB), nullptr);

  SimAllocator hbm;
  try {
    ReplayHooks::adopt(*hbm.alloc, {{b, 2 * kMiB, Pool::kSmall, 0, {}}});
    ADD_FAILURE() << "the hbm policy adopted a picture";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

// Random mallocs and frees on several streams under each group of settings:
// the invariant checker, and live blocks never overlap.
TEST(CcaPolicy, RandomRunsKeepTheInvariants) {
  const char* confs[] = {"", "max_split_size_mb:40", "roundup_power2_divisions:[1:2,16:4,>:8]",
                         "expandable_segments:True",
                         "garbage_collection_threshold:0.7,per_process_memory_fraction:0.8",
                         "max_split_size_mb:64,max_non_split_rounding_mb:32,large_segment_size_mb:32"};
  for (const char* conf : confs) {
    SCOPED_TRACE(conf);
    Cca a(conf, 2048 * kMiB);
    std::mt19937_64 rng(7);
    LiveRanges ranges;
    std::vector<std::pair<void*, uint64_t>> live;
    for (int op = 0; op < 6000; ++op) {
      if (live.empty() || rng() % 100 < 55) {
        const uint64_t kind = rng() % 10;
        uint64_t size = kind < 5 ? 1 + rng() % (1 * kMiB) : kind < 9 ? 1 + rng() % (12 * kMiB) : 1 + rng() % (200 * kMiB);
        try {
          void* p = a->malloc(size, rng() % 3 == 0 ? 1 : 0);
          ASSERT_EQ(ranges.add(p, size), "");
          live.push_back({p, size});
        } catch (const Error& e) {
          ASSERT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
        }
      } else {
        size_t i = rng() % live.size();
        a->free(live[i].first, int64_t(live[i].second));
        ranges.remove(live[i].first);
        live[i] = live.back();
        live.pop_back();
      }
      if (op % 500 == 0) {
        ASSERT_TRUE(InvariantsHold(*a.alloc)) << "op " << op;
        if (op % 1500 == 0) a->empty_cache();
      }
    }
    for (auto& [p, size] : live) a->free(p);
    a->empty_cache();
    ASSERT_TRUE(InvariantsHold(*a.alloc));
    EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
  }
}

}  // namespace
}  // namespace hbmalloc
