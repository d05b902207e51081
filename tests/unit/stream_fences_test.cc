// StreamFences: when a block one stream freed is done with, recording events
// only on a stream while its caller uses it.
#include "policy/hbm/stream_fences.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "backend/forwarding_backend.h"
#include "backend/sim_backend.h"
#include "hbmalloc/error.hpp"

namespace hbmalloc::hbm {
namespace {

// A sim that counts events and names every stream an event was recorded on.
class CountingSim final : public ForwardingBackend {
 public:
  CountingSim() : ForwardingBackend(std::make_unique<SimBackend>(0, 0)) {}
  SimBackend& sim() { return static_cast<SimBackend&>(inner()); }
  EventId record_event(StreamId stream) override {
    if (gone.count(stream)) throw Error(ErrorCode::kBackend, "an event recorded on a stream that is gone");
    ++recorded;
    return ForwardingBackend::record_event(stream);
  }
  bool event_done(EventId event) override {
    ++queried;
    return ForwardingBackend::event_done(event);
  }
  int recorded = 0, queried = 0;
  std::set<StreamId> gone;
};

struct Fixture {
  CountingSim backend;
  LiveStats stats;
  StreamFences fences{backend, stats};
};

// Streams 2 and 1 have allocated, 1 last: frees are fenced.
struct TwoStreams : Fixture {
  TwoStreams() {
    fences.allocating(2);
    fences.allocating(1);
  }
};

TEST(StreamFences, OneStreamRecordsNothing) {
  Fixture f;
  f.fences.allocating(1);
  const uint64_t stamp = f.fences.freed(1);
  f.fences.allocating(1);
  EXPECT_FALSE(f.fences.several());
  EXPECT_EQ(f.backend.recorded, 0);
  EXPECT_FALSE(f.fences.settled(1, stamp)) << "nothing fenced it";
  EXPECT_TRUE(f.fences.settled(1, 0)) << "a block no request used";
}

TEST(StreamFences, AFreeIsSettledOnceTheWorkBeforeItIsDone) {
  TwoStreams f;
  f.backend.sim().hold_stream(1);
  const uint64_t stamp = f.fences.freed(1);
  EXPECT_EQ(f.backend.recorded, 1);
  EXPECT_FALSE(f.fences.settled(1, stamp));
  f.backend.sim().complete_stream(1);
  EXPECT_TRUE(f.fences.settled(1, stamp));
  EXPECT_TRUE(f.fences.settled(2, f.fences.freed(2))) << "stream 2 has no queued work";
}

TEST(StreamFences, OneFencePendingAtATime) {
  TwoStreams f;
  f.backend.sim().hold_stream(1);
  const uint64_t first = f.fences.freed(1);
  const uint64_t second = f.fences.freed(1);  // the first fence is pending: none recorded
  EXPECT_EQ(f.backend.recorded, 1);
  f.backend.sim().complete_stream(1);
  EXPECT_TRUE(f.fences.settled(1, first));
  EXPECT_FALSE(f.fences.settled(1, second)) << "recorded before the second free";
  f.fences.allocating(1);  // the stream's next call fences it
  EXPECT_EQ(f.backend.recorded, 2);
  EXPECT_TRUE(f.fences.settled(1, second));
  f.fences.allocating(1);  // nothing freed since: no event
  EXPECT_EQ(f.backend.recorded, 2);
}

TEST(StreamFences, EarlierFreesStaySettledWhileANewerFenceIsPending) {
  TwoStreams f;
  const uint64_t early = f.fences.freed(1);
  EXPECT_TRUE(f.fences.settled(1, early));
  f.backend.sim().hold_stream(1);
  const uint64_t late = f.fences.freed(1);
  EXPECT_TRUE(f.fences.settled(1, early));
  EXPECT_FALSE(f.fences.settled(1, late));
}

TEST(StreamFences, NoEventOnAStreamOnceItsCallerStopped) {
  TwoStreams f;
  f.backend.sim().hold_stream(1);
  const uint64_t stamp = f.fences.freed(1);
  f.backend.gone.insert(1);  // destroyed; its work still runs to the end
  f.backend.sim().complete_stream(1);
  f.fences.allocating(2);
  EXPECT_TRUE(f.fences.settled(1, stamp)) << "its fence, recorded at the free, is queried";
  EXPECT_EQ(f.backend.recorded, 1);
}

// A block freed after its stream was destroyed: the free goes through, the
// block stays unfenced, and only a synchronization settles it.
TEST(StreamFences, AFreeOnAStreamThatIsGoneIsLeftUnfenced) {
  TwoStreams f;
  f.backend.gone.insert(1);
  uint64_t stamp = 0;
  EXPECT_NO_THROW(stamp = f.fences.freed(1));
  EXPECT_FALSE(f.fences.settled(1, stamp));
  f.fences.synchronize();
  EXPECT_TRUE(f.fences.settled_or_synced(1, stamp));
}

TEST(StreamFences, WhileCapturingNothingIsRecordedOrQueried) {
  TwoStreams f;
  const uint64_t before = f.fences.freed(1);
  const int queried = f.backend.queried;
  f.fences.set_capturing(true);
  const uint64_t during = f.fences.freed(1);
  EXPECT_EQ(f.backend.recorded, 1);
  EXPECT_FALSE(f.fences.settled(1, during));
  EXPECT_EQ(f.backend.queried, queried);
  f.fences.set_capturing(false);
  EXPECT_TRUE(f.fences.settled(1, before));
}

TEST(StreamFences, ASynchronizationSettlesForUnmappingNotForPlacement) {
  TwoStreams f;
  f.backend.sim().hold_stream(1);
  f.fences.freed(1);
  const uint64_t stamp = f.fences.freed(1);
  f.fences.synchronize();
  EXPECT_EQ(f.stats.num_sync_all_streams, 1);
  EXPECT_TRUE(f.fences.settled_or_synced(1, stamp));
  EXPECT_FALSE(f.fences.settled(1, stamp)) << "where blocks go must not follow a remap's synchronization";
}

}  // namespace
}  // namespace hbmalloc::hbm
