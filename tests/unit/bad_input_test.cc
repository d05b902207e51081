// Every kind of bad input gets a named error, changes nothing, and leaves the
// invariants intact.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::SimAllocator;

constexpr uint64_t MiB = 1ull << 20;

void ExpectError(ErrorCode code, const std::string& needle, const std::function<void()>& f) {
  try {
    f();
    ADD_FAILURE() << "expected " << error_code_name(code);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class BadInput : public ::testing::TestWithParam<uint64_t> {};  // small and large sizes

TEST_P(BadInput, DoubleFree) {
  SimAllocator a;
  void* keep = a->malloc(GetParam());
  void* p = a->malloc(GetParam());
  a->free(p);
  Stats before = a->stats();
  ExpectError(ErrorCode::kDoubleFree, "already freed", [&] { a->free(p); });
  EXPECT_EQ(a->stats().allocation.all.freed, before.allocation.all.freed);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(keep);
  // Freed and coalesced into a neighbour: still recognised as free memory.
  ExpectError(ErrorCode::kDoubleFree, "already freed", [&] { a->free(p); });
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST_P(BadInput, PointerNeverReturned) {
  SimAllocator a;
  void* p = a->malloc(GetParam());
  int on_stack = 0;
  ExpectError(ErrorCode::kUnknownPointer, "not returned by hbmalloc", [&] { a->free(&on_stack); });
  // Inside a live block but not its start.
  ExpectError(ErrorCode::kUnknownPointer, "not returned by hbmalloc",
              [&] { a->free(static_cast<char*>(p) + 256); });
  EXPECT_EQ(a->stats().allocation.all.current, 1);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(p);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST_P(BadInput, SizeThatDisagreesWithTheBlock) {
  SimAllocator a;
  void* p = a->malloc(GetParam());
  ExpectError(ErrorCode::kSizeMismatch, "allocated with size " + std::to_string(GetParam()),
              [&] { a->free(p, int64_t(GetParam()) + 1); });
  EXPECT_EQ(a->stats().allocation.all.current, 1);  // the block is still live
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(p, int64_t(GetParam()));  // the right size frees it
  EXPECT_EQ(a->stats().allocation.all.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST_P(BadInput, NegativeSizeOnFree) {
  SimAllocator a;
  void* p = a->malloc(GetParam());
  ExpectError(ErrorCode::kInvalidArgument, "negative size", [&] { a->free(p, -5); });
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(p, -1);  // -1 means "size unknown"
}

TEST_P(BadInput, RecordStreamOnAFreedPointer) {
  SimAllocator a;
  void* p = a->malloc(GetParam());
  a->free(p);
  ExpectError(ErrorCode::kUnknownPointer, "record_stream", [&] { a->record_stream(p, 5); });
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST_P(BadInput, DoubleFreeOfABlockStillPendingOnAnotherStream) {
  SimAllocator a;
  void* p = a->malloc(GetParam(), 1);
  a->record_stream(p, 2);
  a.sim->hold_stream(2);
  a->free(p);
  ExpectError(ErrorCode::kDoubleFree, "already freed", [&] { a->free(p); });
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

INSTANTIATE_TEST_SUITE_P(SmallAndLarge, BadInput, ::testing::Values(uint64_t(1000), 8 * MiB));

TEST(BadInputConfig, UnknownKeyIsNamed) {
  ExpectError(ErrorCode::kConfig, "'max_split_sise'", [] { Config::parse("backend:sim,max_split_sise:10"); });
}

TEST(BadInputConfig, BadValueNamesKeyAndValue) {
  ExpectError(ErrorCode::kConfig, "capacity: bad value '80 Gigs'", [] { Config::parse("capacity:80 Gigs"); });
  ExpectError(ErrorCode::kConfig, "memory_fraction: bad value '2'", [] { Config::parse("memory_fraction:2"); });
  ExpectError(ErrorCode::kConfig, "backend: bad value 'rocm'", [] { Config::parse("backend:rocm"); });
}

TEST(BadInputRequest, AbsurdlyLargeRequest) {
  SimAllocator a;
  ExpectError(ErrorCode::kInvalidArgument, "more than the largest device hbmalloc models", [&] { a->malloc(uint64_t(1) << 62); });
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

}  // namespace
}  // namespace hbmalloc
