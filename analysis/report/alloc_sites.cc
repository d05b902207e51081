#include "report/alloc_sites.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "report/layout_figures.h"

namespace hbmalloc::report {

namespace {

constexpr const char* kNoStackSite = "(no stack recorded)";
// A block live when the trace began whose stack the trace never gave.
constexpr const char* kBeforeTrace = "(allocated before the trace began)";

// PyTorch's own Python (torch/, its C++ frames, the code torch.compile
// generates), the interpreter's library, frozen importlib: none of them is
// the code a user would change.
bool internal(const trace::Frame& f) {
  const std::string_view file = f.filename;
  if (!file.ends_with(".py")) return true;
  return file.find("/torch/") != std::string_view::npos || file.starts_with("torch/") ||
         file.find("/torchinductor_") != std::string_view::npos ||
         file.find("/lib/python3") != std::string_view::npos || file.find("<frozen") != std::string_view::npos;
}

// A stack without Python (the autograd engine's thread runs the backward
// pass in C++): the autograd node that allocated, else the outermost ATen
// operator, as "autograd NllLossBackward0" or "aten mm"; "" when neither.
std::string cpp_site(const trace::Trace& t, const std::vector<uint32_t>& frames) {
  const auto word_after = [](std::string_view name, std::string_view marker) {
    const size_t at = name.find(marker);
    if (at == std::string_view::npos) return std::string_view();
    name.remove_prefix(at + marker.size());
    name = name.substr(0, name.find_first_of(":("));
    return name.substr(0, name.find("_apply_functional"));
  };
  for (uint32_t id : frames)
    if (std::string_view node = word_after(t.frames[id].name, "autograd::generated::"); !node.empty() && node != "details")
      return "autograd " + std::string(node);
  for (auto it = frames.rbegin(); it != frames.rend(); ++it)
    if (std::string_view op = word_after(t.frames[*it].name, "at::_ops::"); !op.empty()) return "aten " + std::string(op);
  return {};
}

std::string frame_text(const trace::Frame& f, bool short_file) {
  std::string_view file = f.filename;
  if (short_file)
    if (size_t slash = file.rfind('/'); slash != std::string_view::npos) file = file.substr(slash + 1);
  std::string out(file);
  if (f.line > 0) out += ":" + std::to_string(f.line);
  if (!f.name.empty()) out += " " + f.name;
  return out;
}

struct Tally {
  uint64_t bytes = 0, blocks = 0;
  uint32_t stack = trace::kNoStack;
};

SitesAt group(const trace::Trace& t, std::unordered_map<std::string, Tally>& by_site, std::string moment,
              uint64_t event, size_t top) {
  SitesAt out;
  out.moment = std::move(moment);
  out.event = event;
  std::vector<std::pair<std::string, Tally>> sorted(by_site.begin(), by_site.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.bytes != b.second.bytes ? a.second.bytes > b.second.bytes : a.first < b.first;
  });
  Site other{"(other sites)", 0, 0, {}};
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [where, tally] = sorted[i];
    out.live_bytes += tally.bytes;
    out.live_blocks += tally.blocks;
    if (i >= top) {
      other.bytes += tally.bytes;
      other.blocks += tally.blocks;
      continue;
    }
    Site s{where, tally.bytes, tally.blocks, {}};
    if (tally.stack != trace::kNoStack)
      for (uint32_t f : t.stacks[tally.stack]) s.stack.push_back(frame_text(t.frames[f], false));
    out.sites.push_back(std::move(s));
  }
  if (other.blocks > 0) out.sites.push_back(std::move(other));
  return out;
}

// Blocks' sites, each stack's worked out once: a block's stack's site, or,
// for a block live since before the trace with no stack, that.
class SiteNames {
 public:
  SiteNames(const trace::Trace& t, const trace::DeviceTrace& d) : t_(t), d_(d) {}
  const std::string& of(uint32_t id, uint32_t stack) {
    if (stack == trace::kNoStack && id < d_.live_at_start.size()) return before_;
    auto [it, added] = by_stack_.try_emplace(stack);
    if (added) it->second = site_of(t_, stack);
    return it->second;
  }
  const std::string& of_block(uint32_t id) {
    return of(id, id < d_.block_stacks.size() ? d_.block_stacks[id] : trace::kNoStack);
  }

 private:
  const trace::Trace& t_;
  const trace::DeviceTrace& d_;
  const std::string before_ = kBeforeTrace;
  std::unordered_map<uint32_t, std::string> by_stack_;
};

}  // namespace

std::string site_of(const trace::Trace& t, uint32_t stack) {
  if (stack == trace::kNoStack || stack >= t.stacks.size() || t.stacks[stack].empty()) return kNoStackSite;
  const std::vector<uint32_t>& frames = t.stacks[stack];
  const trace::Frame* first_python = nullptr;
  for (uint32_t id : frames) {
    const trace::Frame& f = t.frames[id];
    if (!internal(f)) return frame_text(f, true);
    if (first_python == nullptr && std::string_view(f.filename).ends_with(".py")) first_python = &f;
  }
  if (first_python != nullptr) return frame_text(*first_python, true);
  std::string cpp = cpp_site(t, frames);
  return cpp.empty() ? frame_text(t.frames[frames.front()], true) : cpp;
}

SitesAt sites_at(const trace::Trace& t, const trace::DeviceTrace& d, uint64_t events, std::string moment,
                 NotAllocated replayed, size_t top) {
  // Each block's requested bytes, and whether it is live, by id.
  std::vector<uint64_t> requested(d.block_count, 0);
  std::vector<char> live(d.block_count, 0);
  for (const trace::BlockInfo& b : d.live_at_start)
    if (b.id < live.size() && b.id < replayed.start_done) {
      requested[b.id] = b.requested;
      live[b.id] = 1;
    }
  const uint64_t n = std::min<uint64_t>(events, d.events.size());
  for (uint64_t i = 0; i < n; ++i) {
    const trace::Event& e = d.events[i];
    if (e.id >= live.size()) continue;
    if (e.action == trace::Action::kAlloc) {
      requested[e.id] = e.size;
      live[e.id] = 1;
    } else if (e.action == trace::Action::kFree) {
      live[e.id] = 0;
    }
  }
  if (replayed.failed != nullptr)
    for (uint32_t id = 0; id < live.size() && id < replayed.failed->size(); ++id)
      if ((*replayed.failed)[id]) live[id] = 0;
  SiteNames names(t, d);
  std::unordered_map<std::string, Tally> by_site;
  for (uint32_t id = 0; id < live.size(); ++id) {
    if (!live[id]) continue;
    const uint32_t stack = id < d.block_stacks.size() ? d.block_stacks[id] : trace::kNoStack;
    Tally& tally = by_site[names.of(id, stack)];
    tally.bytes += requested[id];
    ++tally.blocks;
    if (tally.stack == trace::kNoStack) tally.stack = stack;
  }
  return group(t, by_site, std::move(moment), events == 0 ? 0 : events - 1, top);
}

SitesAt sites_of_picture(const trace::Trace& t, const trace::DeviceTrace& d, std::string moment, size_t top) {
  std::unordered_map<std::string, Tally> by_site;
  for (const trace::SegmentInfo& s : d.segments_at_end)
    for (const trace::BlockInfo& b : s.blocks) {
      if (b.state == trace::BlockState::kInactive) continue;
      const uint32_t stack = trace::stack_of(d, b);
      Tally& tally = by_site[site_of(t, stack)];
      tally.bytes += b.requested;
      ++tally.blocks;
      if (tally.stack == trace::kNoStack) tally.stack = stack;
    }
  return group(t, by_site, std::move(moment), 0, top);
}

PinsAt pins_at(const trace::Trace& t, const trace::DeviceTrace& d, const Layout& layout,
               const std::vector<std::pair<uint64_t, uint32_t>>& ids, std::string moment, size_t top) {
  struct Tally {
    uint64_t pinned = 0, blocks = 0, live = 0, segments = 0;
  };
  std::unordered_map<std::string, Tally> by_site;
  SiteNames names(t, d);
  const auto site_at = [&](uint64_t addr) -> const std::string& {
    auto it = std::lower_bound(ids.begin(), ids.end(), std::make_pair(addr, uint32_t(0)));
    return names.of_block(it != ids.end() && it->first == addr ? it->second : trace::kNoBlock);
  };
  PinsAt out;
  out.moment = std::move(moment);
  for (const SegmentLayout& seg : layout) {
    uint64_t free = 0, live = 0;
    for (const BlockLayout& b : seg.blocks)
      if (b.allocated) live += b.size;
      else free += unreleasable_bytes(seg, b);
    if (free == 0 || live == 0) continue;
    out.pinned += free;
    // This segment's live bytes by site, then its free bytes shared out; the
    // rounding remainder goes to the site holding the most.
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> here;  // site -> (bytes, blocks)
    for (const BlockLayout& b : seg.blocks) {
      if (!b.allocated) continue;
      const std::string& where = site_at(b.addr);
      auto it = std::find_if(here.begin(), here.end(), [&](const auto& h) { return h.first == where; });
      if (it == here.end()) here.push_back({where, {b.size, 1}});
      else it->second.first += b.size, ++it->second.second;
    }
    uint64_t given = 0;
    size_t biggest = 0;
    for (size_t i = 0; i < here.size(); ++i) {
      const auto& [where, bytes_blocks] = here[i];
      const uint64_t share = uint64_t((unsigned __int128)free * bytes_blocks.first / live);
      Tally& tally = by_site[where];
      tally.pinned += share;
      tally.blocks += bytes_blocks.second;
      tally.live += bytes_blocks.first;
      ++tally.segments;
      given += share;
      if (bytes_blocks.first > here[biggest].second.first) biggest = i;
    }
    by_site[here[biggest].first].pinned += free - given;
  }
  std::vector<std::pair<std::string, Tally>> sorted(by_site.begin(), by_site.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.pinned != b.second.pinned ? a.second.pinned > b.second.pinned : a.first < b.first;
  });
  Pin other{"(other sites)", 0, 0, 0, 0};
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [where, tally] = sorted[i];
    if (i < top) {
      out.sites.push_back({where, tally.pinned, tally.blocks, tally.live, tally.segments});
    } else {
      other.pinned += tally.pinned;
      other.blocks += tally.blocks;
      other.live += tally.live;
      other.segments += tally.segments;
    }
  }
  if (other.blocks > 0) out.sites.push_back(other);
  return out;
}

}  // namespace hbmalloc::report
