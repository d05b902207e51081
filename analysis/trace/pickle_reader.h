// A strict, data-only pickle parser (protocols 2 to 5). It builds builtin
// values only (None, bool, int, float, str, bytes, tuple, list, dict, set,
// frozenset) and refuses every opcode that imports, calls or builds objects,
// so an untrusted pickle can never run code. The result is a flat arena of
// nodes addressed by index; strings and bytes point into the input buffer,
// which the caller keeps alive for as long as the tree is used.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hbmalloc::trace {

enum class PickleKind : uint8_t {
  kNone,
  kBool,
  kInt,
  kFloat,
  kStr,
  kBytes,
  kTuple,
  kList,
  kDict,
  kSet,
  kFrozenSet,
};
const char* pickle_kind_name(PickleKind kind);

using PickleNode = uint32_t;

class PickleTree {
 public:
  // Items of a container in order; a dict yields key, value, key, value...
  // Containers can be appended to after they are first referenced (memo), so
  // their items lie in runs, not one slice.
  class Items {
   public:
    class iterator {
     public:
      iterator(const PickleTree* tree, uint32_t run, uint32_t pos) : tree_(tree), run_(run), pos_(pos) {}
      PickleNode operator*() const { return tree_->items_[tree_->runs_[run_].begin + pos_]; }
      iterator& operator++() {
        if (++pos_ == tree_->runs_[run_].count) {
          run_ = tree_->runs_[run_].next;
          pos_ = 0;
        }
        return *this;
      }
      bool operator==(const iterator& o) const { return run_ == o.run_ && pos_ == o.pos_; }

     private:
      const PickleTree* tree_;
      uint32_t run_;
      uint32_t pos_;
    };
    iterator begin() const { return {tree_, first_run_, 0}; }
    iterator end() const { return {tree_, kNoRun, 0}; }

   private:
    friend class PickleTree;
    Items(const PickleTree* tree, uint32_t first_run) : tree_(tree), first_run_(first_run) {}
    const PickleTree* tree_;
    uint32_t first_run_;
  };

  PickleNode root() const { return root_; }
  // Nodes are numbered 0 .. node_count() - 1.
  size_t node_count() const { return nodes_.size(); }

  PickleKind kind(PickleNode n) const { return nodes_[n].kind; }
  bool is_int(PickleNode n) const { return kind(n) == PickleKind::kInt || kind(n) == PickleKind::kBool; }
  bool is_str(PickleNode n) const { return kind(n) == PickleKind::kStr; }
  bool is_container(PickleNode n) const { return kind(n) >= PickleKind::kTuple; }

  // Accessors expect the matching kind (check it first); a bool is an int.
  // An int in [2^63, 2^64) is kept too (C++ frames carry line = 2^64-1):
  // as_int() wraps it, as_uint() gives it.
  int64_t as_int(PickleNode n) const { return nodes_[n].value.i; }
  bool is_big_uint(PickleNode n) const { return kind(n) == PickleKind::kInt && nodes_[n].b == kBigUint; }
  uint64_t as_uint(PickleNode n) const { return nodes_[n].value.u; }
  bool as_bool(PickleNode n) const { return nodes_[n].value.i != 0; }
  double as_float(PickleNode n) const { return nodes_[n].value.f; }
  std::string_view as_str(PickleNode n) const {  // str (UTF-8) and bytes
    return input_.substr(nodes_[n].a, nodes_[n].value.u);
  }

  // Containers: number of items (a dict counts its pairs; a scalar has 0) and the items.
  size_t size(PickleNode n) const;
  Items items(PickleNode n) const { return Items(this, is_container(n) ? nodes_[n].a : kNoRun); }  // none for scalars
  // Calls f(key, value) for each pair of dict `dict`, in order.
  template <typename F>
  void for_each_pair(PickleNode dict, F&& f) const {
    bool is_key = true;
    PickleNode key = 0;
    for (PickleNode item : items(dict)) {
      if (is_key) {
        key = item;
      } else {
        f(key, item);
      }
      is_key = !is_key;
    }
  }
  // The value of the first str key equal to `key` in dict `n`.
  std::optional<PickleNode> find(PickleNode dict, std::string_view key) const;

 private:
  friend class PickleParser;
  static constexpr uint32_t kNoRun = UINT32_MAX;
  static constexpr uint32_t kBigUint = 1;  // Node::b of an int >= 2^63

  struct Node {
    PickleKind kind = PickleKind::kNone;
    uint32_t a = kNoRun;  // str/bytes: offset into the input; container: first run
    uint32_t b = kNoRun;  // container: last run; int: kBigUint or kNoRun
    union {
      int64_t i;
      double f;
      uint64_t u;  // str/bytes: length; container: item count (a dict: 2 per pair)
    } value{};
  };
  // A slice of items_ that belongs to one container, linked in order.
  struct Run {
    uint32_t begin;
    uint32_t count;
    uint32_t next;
  };

  std::string_view input_;
  std::vector<Node> nodes_;
  std::vector<Run> runs_;
  std::vector<PickleNode> items_;
  PickleNode root_ = 0;
};

// Parses `bytes` (one pickle; bytes after its STOP are ignored). Throws
// Error(kInvalidArgument) "<source>: ..." naming the problem and, for a bad
// opcode, its name and byte offset.
PickleTree parse_pickle(std::string_view bytes, const std::string& source);

}  // namespace hbmalloc::trace
