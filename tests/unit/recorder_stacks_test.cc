// Allocation stacks through the runtime recorder (hbmalloc/stacks.hpp): a
// token taken under a StackScope at each alloc, named later by the caller's
// namer, reaches the .hbt file (also for blocks freed or a file started
// before the naming), the OOM dump and the memory buffer after it dropped
// its first half; a failing namer loses only its stacks.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/sim_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/recorder.hpp"
#include "hbmalloc/stacks.hpp"
#include "record/recorder.h"
#include "support/scratch.h"
#include "trace/read_trace.h"

namespace hbmalloc {
namespace {

namespace fs = std::filesystem;
using trace::Action;

// A token is the name of the function that allocated; its stack is that
// frame over a shared "main" frame.
StackToken token(const std::string& where) { return std::make_shared<const std::string>(where); }

class NameNamer final : public StackNamer {
 public:
  std::vector<std::vector<StackFrame>> name(const std::vector<StackToken>& stacks) override {
    ++calls;
    if (fail) throw std::runtime_error("the namer's runtime is gone");
    std::vector<std::vector<StackFrame>> out;
    for (const StackToken& t : stacks) {
      const auto& where = *static_cast<const std::string*>(t.get());
      if (where.empty()) out.emplace_back();  // a stack the namer cannot name
      else out.push_back({StackFrame{"model.py", where, 10}, StackFrame{"train.py", "main", 1}});
    }
    return out;
  }
  int calls = 0;
  bool fail = false;
};

std::unique_ptr<Allocator> sim_allocator(uint64_t capacity) {
  return std::make_unique<Allocator>(Config::parse("backend:sim,capacity:" + std::to_string(capacity)),
                                     std::make_unique<SimBackend>(0, capacity));
}

// A sim allocator recorded by a recorder that names stacks with a NameNamer.
struct Recorded {
  std::unique_ptr<Allocator> allocator;
  std::shared_ptr<Recorder> recorder;
  std::shared_ptr<NameNamer> namer = std::make_shared<NameNamer>();
};
Recorded recorded(const RecorderOptions& options, uint64_t capacity = 1ull << 30) {
  Recorded r{sim_allocator(capacity), std::make_shared<Recorder>(options)};
  r.recorder->set_stack_namer(r.namer);
  r.allocator->attach_recorder(r.recorder);
  return r;
}

void* malloc_in(Allocator& a, uint64_t size, const std::string& where) {
  const StackToken t = token(where);
  StackScope scope(t);
  return a.malloc(size);
}

// The allocating function named by the stack of each alloc event's block, in event order ("" when none).
std::vector<std::string> alloc_sites(const trace::Trace& t) {
  std::vector<std::string> out;
  const trace::DeviceTrace& d = t.devices.at(0);
  for (const trace::Event& e : d.events) {
    if (e.action != Action::kAlloc) continue;
    const uint32_t s = e.id < d.block_stacks.size() ? d.block_stacks[e.id] : trace::kNoStack;
    if (s == trace::kNoStack) {
      out.emplace_back();
      continue;
    }
    const std::vector<uint32_t>& frames = t.stacks.at(s);
    EXPECT_EQ(frames.size(), 2u);
    EXPECT_EQ(t.frames.at(frames.at(1)).name, "main");
    out.push_back(t.frames.at(frames.at(0)).name);
  }
  return out;
}

TEST(RecorderStacks, NamedStacksReachTheFileEvenForBlocksFreedBeforeTheNaming) {
  const fs::path dir = testing::scratch_dir("recorder_stacks_file");
  auto [a, recorder, namer] = recorded(RecorderOptions{(dir / "run.hbt").string(), "", 0});

  void* embed = malloc_in(*a, 3 << 20, "embed");
  void* plain = a->malloc(1 << 20);  // no scope: no stack
  void* attn = malloc_in(*a, 5 << 20, "attention");
  a->free(attn);  // freed before its stack is named
  EXPECT_EQ(recorder->pending_stacks(), 2u);
  EXPECT_EQ(recorder->name_stacks(), 2u);
  EXPECT_EQ(recorder->pending_stacks(), 0u);
  void* mlp = malloc_in(*a, 7 << 20, "mlp");
  void* unnamed = malloc_in(*a, 1 << 10, "");  // the namer gives no frames
  EXPECT_EQ(recorder->name_stacks(), 1u);
  EXPECT_EQ(recorder->name_stacks(), 0u) << "nothing waits";
  for (void* p : {embed, plain, mlp, unnamed}) a->free(p);
  recorder->stop_file();

  const trace::Trace t = trace::read_trace_file((dir / "run.hbt").string());
  EXPECT_EQ(alloc_sites(t), (std::vector<std::string>{"embed", "", "attention", "mlp", ""}));
  EXPECT_EQ(t.frames.size(), 4u) << "each distinct frame once";
  EXPECT_EQ(t.stacks.size(), 3u);
}

TEST(RecorderStacks, AFileStartedLaterListsTheLiveBlocksWithTheirStacks) {
  const fs::path dir = testing::scratch_dir("recorder_stacks_late");
  auto [a, recorder, namer] = recorded(RecorderOptions{(dir / "first.hbt").string(), "", 0});
  void* named_before = malloc_in(*a, 2 << 20, "before");
  recorder->name_stacks();
  void* named_after = malloc_in(*a, 4 << 20, "after");  // taken in the first file, named in the second
  recorder->stop_file();
  recorder->start_file((dir / "second.hbt").string());
  recorder->name_stacks();
  recorder->stop_file();

  const trace::Trace t = trace::read_trace_file((dir / "second.hbt").string());
  const trace::DeviceTrace& d = t.devices.at(0);
  ASSERT_EQ(d.live_at_start.size(), 2u);
  std::vector<std::string> sites;
  for (const trace::BlockInfo& b : d.live_at_start) {
    const uint32_t s = trace::stack_of(d, b);
    ASSERT_NE(s, trace::kNoStack) << "block at " << b.addr;
    sites.push_back(t.frames.at(t.stacks.at(s).front()).name);
  }
  std::sort(sites.begin(), sites.end());
  EXPECT_EQ(sites, (std::vector<std::string>{"after", "before"}));
  a->free(named_before);
  a->free(named_after);
}

TEST(RecorderStacks, TheOomDumpNamesTheStacksStillWaiting) {
  const fs::path dir = testing::scratch_dir("recorder_stacks_oom");
  for (size_t events : {size_t(1) << 16, size_t(8)}) {  // the second drops its first half many times
    SCOPED_TRACE(events);
    auto [a, recorder, namer] = recorded(RecorderOptions{"", (dir / std::to_string(events)).string(), events}, 64ull << 20);
    std::vector<void*> held;
    for (int i = 0; i < 6; ++i) held.push_back(malloc_in(*a, 8 << 20, "layer" + std::to_string(i)));
    std::string text;
    try {
      malloc_in(*a, 60 << 20, "too_big");
      FAIL() << "60 MiB fit beside 48 MiB in 64 MiB";
    } catch (const Error& e) {
      text = e.what();
    }
    EXPECT_EQ(namer->calls, 1) << "named once, at the failure";
    const size_t at = text.find("OOM dump: trace ");
    ASSERT_NE(at, std::string::npos) << text;
    const std::string file = text.substr(at + 16, text.find(", summary ") - at - 16);
    const trace::Trace t = trace::read_trace_file(file);
    const trace::DeviceTrace& d = t.devices.at(0);
    // Every live block of the dump's final picture has its allocation's stack.
    size_t live = 0;
    for (const trace::SegmentInfo& s : d.segments_at_end)
      for (const trace::BlockInfo& b : s.blocks) {
        if (b.state == trace::BlockState::kInactive) continue;
        ++live;
        const uint32_t stack = trace::stack_of(d, b);
        ASSERT_NE(stack, trace::kNoStack);
        EXPECT_EQ(t.frames.at(t.stacks.at(stack).front()).name.rfind("layer", 0), 0u);
      }
    EXPECT_EQ(live, 6u);
    for (void* p : held) a->free(p);
  }
}

TEST(RecorderStacks, AFailingNamerLosesOnlyItsStacks) {
  const fs::path dir = testing::scratch_dir("recorder_stacks_fail");
  auto [a, recorder, namer] = recorded(RecorderOptions{(dir / "run.hbt").string(), "", 0});
  void* lost = malloc_in(*a, 1 << 20, "lost");
  namer->fail = true;
  EXPECT_EQ(recorder->name_stacks(), 0u);
  EXPECT_EQ(recorder->pending_stacks(), 0u) << "a failed batch is not retried forever";
  namer->fail = false;
  void* kept = malloc_in(*a, 1 << 20, "kept");
  EXPECT_EQ(recorder->name_stacks(), 1u);
  // Without a namer no token is taken.
  recorder->set_stack_namer(nullptr);
  void* untaken = malloc_in(*a, 1 << 20, "untaken");
  EXPECT_EQ(recorder->pending_stacks(), 0u);
  for (void* p : {lost, kept, untaken}) a->free(p);
  recorder->stop_file();
  const trace::Trace t = trace::read_trace_file((dir / "run.hbt").string());
  EXPECT_EQ(alloc_sites(t), (std::vector<std::string>{"", "kept", ""}));
}

}  // namespace
}  // namespace hbmalloc
