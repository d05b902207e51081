// write_pytorch_snapshot: read(write(t)) gives t's events and figures back,
// and Python's pickle.load reads it with the fields memory_viz uses.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "hbmalloc/error.hpp"
#include "support/scratch.h"
#include "support/slurp.h"
#include "support/trace_samples.h"
#include "trace/read_trace.h"
#include "record/snapshot_writer.h"

namespace hbmalloc::trace {
namespace {

namespace fs = std::filesystem;
const fs::path kTraces = fs::path(HBMALLOC_SOURCE_DIR) / ".." / "shared" / "traces";

using testing::slurp;

TEST(SnapshotWriter, RoundTripsSharedSnapshots) {
  ASSERT_TRUE(fs::exists(kTraces / "README.md")) << "../shared/traces must be beside the repository: no " << kTraces;
  for (const char* name : {"snapshots/codelocation_memory_snapshot.pickle", "snapshots/sqattn_cuda_memory_snapshot.pickle",
                           "snapshots/shreyansh26_profile_grad.pkl", "static/llminf_oom_snapshot.pickle",
                           "static/empty_hitsbe_my_snapshot.pickle"}) {
    SCOPED_TRACE(name);
    const std::string bytes = slurp(kTraces / name);
    const Trace original = read_pytorch_snapshot(bytes, name);
    const std::string written = write_pytorch_snapshot(original);
    const Trace again = read_pytorch_snapshot(written, "written.pickle");
    testing::ExpectSameTrace(original, again);
  }
}

// A trace from a format with no segment picture: the writer derives one.
Trace synthetic() {
  Trace t;
  t.source = "synthetic";
  t.has_history = true;
  t.settings = {{"max_split_size", "-1"}, {"expandable_segments", "True"}, {"PYTORCH_CUDA_ALLOC_CONF", ""}};
  DeviceTrace d;
  d.device = 1;
  d.live_at_start = {BlockInfo{0, 0x10000, 0, 4096, 0, BlockState::kActiveAllocated}};
  d.events = {
      Event{1, 0x200000, 2 << 20, 0, kNoBlock, Action::kSegmentAlloc},
      Event{2, 0x200000, 1000, 0, 1, Action::kAlloc},
      Event{3, 0x200400, 2000, 0, 2, Action::kAlloc},
      Event{4, 0x200000, 0, 0, 1, Action::kFreeRequested},  // sizes of frees come from their alloc
      Event{5, 0x200000, 0, 0, 1, Action::kFree},
      Event{6, 0x10000, 4096, 0, 0, Action::kFree},
      Event{7, 123456, 1ull << 40, 0, kNoBlock, Action::kOom},
  };
  d.block_count = 3;
  t.devices.push_back(std::move(d));
  return t;
}

TEST(SnapshotWriter, DerivesAPictureWhenTheTraceHasNone) {
  const Trace t = synthetic();
  const Trace back = read_pytorch_snapshot(write_pytorch_snapshot(t), "synthetic.pickle");
  ASSERT_EQ(back.devices.size(), 2u);  // device_traces lists devices 0 and 1
  EXPECT_TRUE(back.devices[0].events.empty());
  const DeviceTrace& d = back.devices[1];
  ASSERT_EQ(d.events.size(), t.devices[0].events.size());
  EXPECT_EQ(d.events[4].size, 1000u);
  EXPECT_EQ(d.events[6].action, Action::kOom);
  EXPECT_EQ(d.events[6].addr, 123456u);
  EXPECT_EQ(figures_of(d).peak_requested, figures_of(t.devices[0]).peak_requested);
  EXPECT_EQ(figures_of(d).peak_requested, 4096u + 1000u + 2000u);
  ASSERT_EQ(d.segments_at_end.size(), 1u);  // the 2 MiB segment, holding the block live at the end
  EXPECT_TRUE(d.segments_at_end[0].small_pool);
  EXPECT_EQ(back.settings, t.settings);
}

// Found by tests/fuzz/convert_fuzz: a trace with a start picture and no end
// (the first events of a longer one) wrote its empty end, and its block live
// at the end made the pickle unreadable. The end is derived instead.
TEST(SnapshotWriter, APictureWithoutItsEndGetsOneDerived) {
  Trace t = synthetic();
  DeviceTrace& d = t.devices[0];
  d.has_segment_picture = true;
  d.live_at_start[0].size = 4096;
  SegmentInfo start;
  start.addr = 0x10000;
  start.size = 64 << 10;
  start.small_pool = true;
  start.blocks = {d.live_at_start[0]};
  d.segments_at_start = {start};
  const Trace back = read_pytorch_snapshot(write_pytorch_snapshot(t), "cut.pickle");
  ASSERT_EQ(back.devices.size(), 2u);
  const DeviceTrace& again = back.devices[1];
  EXPECT_EQ(figures_of(again).peak_requested, figures_of(d).peak_requested);
  ASSERT_EQ(again.segments_at_end.size(), 2u);  // both segments: none was freed
  // With nothing live at the end its segments are still held.
  d.events.resize(5);  // up to block 1's free; then blocks 2 and 0 are freed too
  d.events.push_back(Event{8, 0x200400, 2000, 0, 2, Action::kFree});
  d.events.push_back(Event{9, 0x10000, 4096, 0, 0, Action::kFree});
  const Trace freed = read_pytorch_snapshot(write_pytorch_snapshot(t), "cut.pickle");
  EXPECT_EQ(freed.devices[1].segments_at_end.size(), 2u);
  EXPECT_EQ(figures_of(freed.devices[1]).native_peak_reserved, (2u << 20) + (64u << 10));
}

TEST(SnapshotWriter, ContradictoryTraceIsAnError) {
  Trace t = synthetic();
  t.devices[0].events[1].id = 99;
  EXPECT_THROW(write_pytorch_snapshot(t), Error);
  // Found by tests/fuzz/convert_fuzz: two allocations of 0 bytes were both
  // written live at address 0, and the snapshot did not read back.
  Trace empty = synthetic();
  empty.devices[0].events[1].size = 0;
  try {
    write_pytorch_snapshot(empty);
    ADD_FAILURE() << "wrote a block of 0 bytes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("synthetic: cannot write a PyTorch snapshot: device 1 block 1 is an allocation "
                                         "of 0 bytes"),
              std::string::npos)
        << e.what();
  }
}

TEST(SnapshotWriter, PythonPickleLoadsItAsMemoryVizExpects) {
  if (std::system("python3 -c 'import pickle' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  std::vector<std::string> inputs = {write_pytorch_snapshot(synthetic())};
  const fs::path real = kTraces / "snapshots" / "codelocation_memory_snapshot.pickle";
  if (fs::exists(real)) inputs.push_back(write_pytorch_snapshot(read_pytorch_snapshot(slurp(real), "real")));
  const fs::path dir = hbmalloc::testing::scratch_dir("writer");
  // The fields torch/cuda/_memory_viz.py and MemoryViz.js read, with their types,
  // and segsum's rule that blocks tile their segment.
  const fs::path script = dir / "check.py";
  std::ofstream(script) << R"(import pickle, sys
s = pickle.load(open(sys.argv[1], 'rb'))
def check_frames(frames):
    assert isinstance(frames, list), frames
    for f in frames:
        assert isinstance(f['name'], str) and isinstance(f['filename'], str) and isinstance(f['line'], int), f
assert set(s) >= {'segments', 'device_traces', 'allocator_settings'}, s.keys()
for seg in s['segments']:
    for k, t in [('device', int), ('address', int), ('total_size', int), ('allocated_size', int),
                 ('active_size', int), ('requested_size', int), ('stream', int), ('segment_type', str),
                 ('segment_pool_id', tuple), ('is_expandable', bool), ('frames', list), ('blocks', list)]:
        assert isinstance(seg[k], t), (k, seg)
    assert seg['segment_type'] in ('small', 'large')
    assert sum(b['size'] for b in seg['blocks']) == seg['total_size'], seg
    assert seg['allocated_size'] == sum(b['size'] for b in seg['blocks'] if b['state'] == 'active_allocated')
    for b in seg['blocks']:
        assert b['state'] in ('active_allocated', 'active_pending_free', 'inactive'), b
        for k in ('address', 'size', 'requested_size'):
            assert isinstance(b[k], int), b
        check_frames(b['frames'])
assert isinstance(s['device_traces'], list)
for trace in s['device_traces']:
    for e in trace:
        assert isinstance(e['action'], str) and isinstance(e['size'], int) and isinstance(e['time_us'], int)
        assert isinstance(e['device_free'] if e['action'] == 'oom' else e['addr'], int), e
        check_frames(e['frames'])
        assert e['action'] == 'alloc' or e['frames'] == [], e  # stacks are kept where blocks are allocated
assert isinstance(s['allocator_settings'], dict)
print('ok', len(s['segments']), sum(len(t) for t in s['device_traces']))
)";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const fs::path file = dir / ("snapshot" + std::to_string(i) + ".pickle");
    std::ofstream(file, std::ios::binary) << inputs[i];
    const std::string cmd = "python3 " + script.string() + " " + file.string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hbmalloc::trace
