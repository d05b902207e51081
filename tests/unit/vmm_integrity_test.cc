// The proof that remapping never corrupts or aliases live data: the hbm
// policy on the host backend (real memory: granules are memfd pages mapped
// with mmap), small granules and a small device so that nearly every large
// request is served by unmapping cached free granules and mapping them where
// it lands. Every live block holds a pattern derived from its id, verified
// before it is freed and at random checks of all live blocks; no two live
// blocks may share a physical byte; memory freed on a stream with queued work
// may not move, nor go to another stream, before that work is done. Slabs sit
// on granules, or beside the arenas on mid pool blocks (the default layout:
// an empty slab's block goes back to the mid pool fenced as any free, and
// remapped only once its stream's work is done) or on plain segments where no
// granule fits (only freeing a segment, which synchronizes as cudaFree does,
// lets their memory go), and with vmm:off everything on plain segments.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/host_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "support/block_pattern.h"
#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kGranule = 64 * kKiB;

// Word i of block `id` (the last partial word is cut to the block's bytes).
uint64_t word(uint64_t id, uint64_t i) { return testing::pattern_word(id, i); }

// Blocks are at least 64-byte aligned: whole words are read and written as
// such, the last partial word byte by byte.
void fill(void* p, uint64_t size, uint64_t id) {
  auto* words = static_cast<uint64_t*>(p);
  const uint64_t whole = size / 8;
  for (uint64_t i = 0; i < whole; ++i) words[i] = word(id, i);
  if (size % 8) {
    const uint64_t w = word(id, whole);
    std::memcpy(words + whole, &w, size % 8);
  }
}

// "" or where the pattern breaks.
std::string verify(const void* p, uint64_t size, uint64_t id) {
  const auto* words = static_cast<const uint64_t*>(p);
  const uint64_t whole = size / 8;
  uint64_t bad = UINT64_MAX;
  for (uint64_t i = 0; i < whole && bad == UINT64_MAX; ++i)
    if (words[i] != word(id, i)) bad = i;
  if (bad == UINT64_MAX && size % 8) {
    const uint64_t w = word(id, whole);
    if (std::memcmp(words + whole, &w, size % 8) != 0) bad = whole;
  }
  if (bad == UINT64_MAX) return "";
  return "block " + std::to_string(id) + " (" + std::to_string(size) + " bytes) corrupt at byte " +
         std::to_string(bad * 8);
}

struct Live {
  void* ptr;
  uint64_t size, id;
  StreamId stream;
};

// A block freed while its stream still had queued work: until the event
// recorded then is done, its memory must stay where it was.
struct Pending {
  uint64_t addr, size;
  StreamId stream;
  EventId event;
  std::vector<uint64_t> physical;  // offset of each granule-sized piece
};

std::vector<uint64_t> physical_pieces(const HostBackend& host, uint64_t addr, uint64_t size) {
  std::vector<uint64_t> out;
  for (uint64_t a = addr; a < addr + size; a = (a / kGranule + 1) * kGranule) out.push_back(host.physical_offset(a));
  return out;
}

// "" or the first pair of live blocks sharing a physical byte. A block on
// plain segments (a slab beside the arenas) is its own memory: it is compared
// by address, apart from the granules.
std::string physically_disjoint(const HostBackend& host, const std::vector<Live>& live) {
  struct Piece {
    uint64_t offset, bytes, id;
  };
  std::vector<Piece> pieces, plain;
  for (const Live& l : live) {
    const uint64_t addr = reinterpret_cast<uint64_t>(l.ptr);
    if (host.physical_offset(addr) == HostBackend::kNotPhysical) {
      plain.push_back({addr, l.size, l.id});
      continue;
    }
    for (uint64_t a = addr; a < addr + l.size;) {
      const uint64_t end = std::min(addr + l.size, (a / kGranule + 1) * kGranule);
      const uint64_t offset = host.physical_offset(a);
      if (offset == HostBackend::kNotPhysical) return "block " + std::to_string(l.id) + " is partly off mapped granules";
      pieces.push_back({offset, end - a, l.id});
      a = end;
    }
  }
  for (std::vector<Piece>* v : {&pieces, &plain}) {
    std::sort(v->begin(), v->end(), [](const Piece& x, const Piece& y) { return x.offset < y.offset; });
    for (size_t i = 1; i < v->size(); ++i)
      if ((*v)[i - 1].offset + (*v)[i - 1].bytes > (*v)[i].offset)
        return "blocks " + std::to_string((*v)[i - 1].id) + " and " + std::to_string((*v)[i].id) +
               (v == &plain ? " overlap" : " share physical memory");
  }
  return "";
}

struct Figures {
  uint64_t ops = 0, allocs = 0, ooms = 0, checks = 0, verified = 0, pending_frees = 0;
};

Figures RunIntegrity(uint64_t ops, uint64_t seed, const std::string& conf, int64_t min_remaps, StreamId streams = 3) {
  Figures f;
  Config config = Config::parse(conf);
  config.backend = "host";
  auto owned = std::make_unique<HostBackend>(0, 24ull << 20, kGranule);
  HostBackend& host = *owned;
  Allocator a(config, std::move(owned));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::uniform_real_distribution<double> log_size(0.0, 21.0);  // 1 B .. 2 MiB, log-uniform
  const StreamId kStreams = streams;
  std::vector<Live> live;
  std::vector<Pending> pending;
  std::vector<bool> held(kStreams, false);
  uint64_t next_id = 1;

  auto check_pending = [&](uint64_t op) {
    for (size_t i = 0; i < pending.size();) {
      Pending& p = pending[i];
      if (host.event_done(p.event)) {
        host.release_event(p.event);
        p = pending.back();
        pending.pop_back();
        continue;
      }
      EXPECT_EQ(physical_pieces(host, p.addr, p.size), p.physical)
          << "op " << op << ": memory freed with queued work moved before the work was done";
      ++i;
    }
  };

  for (uint64_t op = 0; op < ops; ++op, ++f.ops) {
    const double r = coin(rng);
    if (r < 0.5) {
      uint64_t size = std::max<uint64_t>(1, uint64_t(std::exp2(log_size(rng))));
      StreamId stream = rng() % kStreams;
      void* p = nullptr;
      try {
        p = a.malloc(size, stream);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
        ++f.ooms;
        continue;
      }
      // Another stream may take memory freed with queued work only once that
      // work is done (its own stream's order makes it safe for it).
      const uint64_t at = reinterpret_cast<uint64_t>(p);
      for (const Pending& q : pending)
        if (q.stream != stream && at < q.addr + q.size && q.addr < at + size && !host.event_done(q.event)) {
          ADD_FAILURE() << "op " << op << ": memory freed on stream " << q.stream
                        << " with queued work handed to stream " << stream << " before the work was done";
          return f;
        }
      const uint64_t id = next_id++;
      fill(p, size, id);
      live.push_back({p, size, id, stream});
      ++f.allocs;
    } else if (r < 0.97 && !live.empty()) {
      const size_t i = rng() % live.size();
      const Live l = live[i];
      live[i] = live.back();
      live.pop_back();
      const std::string bad = verify(l.ptr, l.size, l.id);
      EXPECT_EQ(bad, "") << "op " << op << ", before free";
      if (!bad.empty()) return f;
      ++f.verified;
      if (held[l.stream]) {  // queued work may still use it
        const uint64_t addr = reinterpret_cast<uint64_t>(l.ptr);
        pending.push_back({addr, l.size, l.stream, host.record_event(l.stream), physical_pieces(host, addr, l.size)});
        ++f.pending_frees;
      }
      a.free(l.ptr, int64_t(l.size));
    } else if (r < 0.985) {
      const StreamId s = rng() % kStreams;
      if (held[s]) host.complete_stream(s);
      else host.hold_stream(s);
      held[s] = !held[s];
    } else if (r < 0.9975) {
      a.empty_cache();
    } else {
      // A random check: every live block intact and on its own physical memory.
      ++f.checks;
      for (const Live& l : live) {
        const std::string bad = verify(l.ptr, l.size, l.id);
        EXPECT_EQ(bad, "") << "op " << op << ", random check";
        if (!bad.empty()) return f;
      }
      const std::string shared = physically_disjoint(host, live);
      EXPECT_EQ(shared, "") << "op " << op;
      if (!shared.empty()) return f;
      EXPECT_TRUE(InvariantsHold(a)) << "op " << op;
      EXPECT_EQ(uint64_t(a.stats().reserved_bytes.all.current), host.used_bytes());
    }
    if (!pending.empty()) check_pending(op);
  }
  for (const Live& l : live) {
    EXPECT_EQ(verify(l.ptr, l.size, l.id), "");
    a.free(l.ptr, int64_t(l.size));
  }
  for (StreamId s = 0; s < kStreams; ++s) host.complete_stream(s);
  check_pending(ops);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
  EXPECT_EQ(host.used_bytes(), 0u);
  EXPECT_TRUE(InvariantsHold(a));
  const Stats s = a.stats();
  std::printf(
      "%s: %llu ops (%llu allocs, %llu OOMs), %llu frees verified, %llu random checks of all live blocks, "
      "%llu frees with queued work; VMM: %lld created, %lld remapped (mapped again elsewhere), %lld released, "
      "%lld device syncs\n",
      conf.c_str(), (unsigned long long)f.ops, (unsigned long long)f.allocs, (unsigned long long)f.ooms,
      (unsigned long long)f.verified, (unsigned long long)f.checks, (unsigned long long)f.pending_frees,
      (long long)s.vmm.create, (long long)(s.vmm.map - s.vmm.create), (long long)s.vmm.release,
      (long long)s.num_sync_all_streams);
  EXPECT_GE(s.vmm.map - s.vmm.create, min_remaps) << "the run should remap";
  EXPECT_GT(s.num_sync_all_streams, 0) << "some remaps should have waited for queued work";
  return f;
}

// Slabs and large blocks all on 64 KiB granules of a 24 MiB device; every
// request that no free block fits remaps cached granules before growing.
constexpr const char* kConf = "granule_size:64KiB,slab_size:64KiB,small_size:16KiB,remap:always,remap_budget:off";

TEST(VmmIntegrity, HundredThousandRandomOperationsWithHeavyRemapping) {
  Figures f = RunIntegrity(100'000, 20261122, kConf, 10'000);
  EXPECT_EQ(f.ops, 100'000u);
  EXPECT_GT(f.checks, 150u);
}

TEST(VmmIntegrity, UnderPressureOnly) {
  Figures f = RunIntegrity(20'000, 7, "granule_size:64KiB,slab_size:64KiB,small_size:16KiB,remap:pressure,remap_budget:off", 100);
  EXPECT_EQ(f.ops, 20'000u);
}

TEST(VmmIntegrity, SlabsOnMidBlocksBesideTheArenas) {
  Figures f = RunIntegrity(20'000, 11, "granule_size:128KiB,slab_size:64KiB,small_size:16KiB,remap:always,remap_budget:off", 100);
  EXPECT_EQ(f.ops, 20'000u);
}

// One stream: its frees are fenced only for unmapping, from the first remap on.
TEST(VmmIntegrity, OneStreamRemappingWhileItsWorkIsHeld) {
  Figures f = RunIntegrity(20'000, 17, kConf, 100, /*streams=*/1);
  EXPECT_EQ(f.ops, 20'000u);
  EXPECT_GT(f.pending_frees, 1'000u);
}

// vmm:off: large blocks on plain segments, shared between streams as arenas are.
TEST(VmmIntegrity, PlainSegmentsOnlyStillKeepQueuedWorkSafe) {
  Figures f = RunIntegrity(20'000, 13, "vmm:off,slab_size:64KiB,small_size:16KiB", 0);
  EXPECT_EQ(f.ops, 20'000u);
}

}  // namespace
}  // namespace hbmalloc
