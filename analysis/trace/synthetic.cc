#include "trace/synthetic.h"

#include <random>
#include <string>
#include <vector>

namespace hbmalloc::trace {
namespace {

constexpr uint64_t kFloat = 4;
constexpr uint64_t kTempStream = 1;  // side stream for small temporaries

class Builder {
 public:
  explicit Builder(DeviceTrace& d) : d_(d) {}

  uint32_t alloc(uint64_t size, uint64_t stream = 0) {
    uint32_t id = d_.block_count++;
    push(Event{0, 0, size, stream, id, Action::kAlloc});
    sizes_.push_back(size);
    streams_.push_back(stream);
    return id;
  }
  // PyTorch records both halves of a free; with no stream work pending they
  // follow each other at once.
  void free(uint32_t id) {
    push(Event{0, 0, sizes_[id], streams_[id], id, Action::kFreeRequested});
    push(Event{0, 0, sizes_[id], streams_[id], id, Action::kFree});
  }
  void free_all(std::vector<uint32_t>& ids) {
    for (uint32_t id : ids) free(id);
    ids.clear();
  }
  void marker() { push(Event{0, 0, 0, 0, kNoBlock, Action::kMarker}); }

 private:
  void push(Event e) {
    time_us_ += 7;
    e.time_us = time_us_;
    d_.events.push_back(e);
  }

  DeviceTrace& d_;
  std::vector<uint64_t> sizes_, streams_;
  int64_t time_us_ = 1'700'000'000'000'000;
};

}  // namespace

Trace synthetic_training_trace(const SyntheticOptions& o) {
  Trace t;
  t.source = "synthetic";
  t.format = "synthetic";
  t.recorder = "hbmalloc synth";
  t.has_history = true;
  t.settings = {{"model", "gpt layers=" + std::to_string(o.layers) + " hidden=" + std::to_string(o.hidden) +
                              " vocab=" + std::to_string(o.vocab)},
                {"batch", std::to_string(o.batch)},
                {"seq", std::to_string(o.min_seq) + ".." + std::to_string(o.max_seq)},
                {"steps", std::to_string(o.steps)},
                {"seed", std::to_string(o.seed)}};
  DeviceTrace& d = t.devices.emplace_back();
  Builder b(d);
  std::mt19937_64 rng(o.seed);
  const uint64_t h = o.hidden, heads = std::max<uint64_t>(1, h / 64);

  // Parameters: embedding, then per layer qkv, projection, two MLP matrices,
  // their biases and two layer norms.
  std::vector<uint64_t> params{o.vocab * h * kFloat};  // bytes of each
  for (int l = 0; l < o.layers; ++l) {
    for (uint64_t bytes : {3 * h * h, 3 * h, h * h, h, 4 * h * h, 4 * h, 4 * h * h, h, h, h, h, h})
      params.push_back(bytes * kFloat);
  }
  params.push_back(h * kFloat);
  params.push_back(h * kFloat);
  for (uint64_t bytes : params) b.alloc(bytes);  // the weights live to the end

  std::uniform_int_distribution<uint64_t> seq_dist(o.min_seq / 64, o.max_seq / 64);
  std::uniform_int_distribution<uint64_t> small_dist(512, 256 << 10);
  for (int step = 0; step < o.steps; ++step) {
    b.marker();
    const uint64_t seq = seq_dist(rng) * 64, tokens = o.batch * seq;
    std::vector<uint32_t> saved;  // activations kept for backward
    std::vector<uint32_t> temps;
    uint32_t input = b.alloc(tokens * 8);  // int64 token ids
    saved.push_back(b.alloc(tokens * h * kFloat));  // embedding output
    for (int l = 0; l < o.layers; ++l) {
      saved.push_back(b.alloc(tokens * h * kFloat));      // layer norm 1 out
      saved.push_back(b.alloc(tokens * 3 * h * kFloat));  // qkv
      uint32_t scores = b.alloc(o.batch * heads * seq * seq * kFloat);
      saved.push_back(b.alloc(o.batch * heads * seq * seq * kFloat));  // softmax out
      b.free(scores);
      saved.push_back(b.alloc(tokens * h * kFloat));      // attention out
      saved.push_back(b.alloc(tokens * h * kFloat));      // layer norm 2 out
      saved.push_back(b.alloc(tokens * 4 * h * kFloat));  // mlp up
      saved.push_back(b.alloc(tokens * 4 * h * kFloat));  // gelu out
      for (int k = 0; k < 6; ++k) temps.push_back(b.alloc(small_dist(rng), kTempStream));
      b.free_all(temps);
    }
    uint32_t logits = b.alloc(tokens * o.vocab * kFloat);
    uint32_t probs = b.alloc(tokens * o.vocab * kFloat);
    uint32_t loss = b.alloc(kFloat);
    b.free(probs);

    // Backward: gradients appear as activations go, in reverse layer order.
    std::vector<uint32_t> grads(params.size(), kNoBlock);
    uint32_t dlogits = b.alloc(tokens * o.vocab * kFloat);
    b.free(logits);
    size_t next_param = params.size();
    while (!saved.empty()) {
      uint32_t grad_in = b.alloc(tokens * h * kFloat);
      for (int k = 0; k < 2 && next_param > 0; ++k) {
        --next_param;
        grads[next_param] = b.alloc(params[next_param]);
      }
      b.free(saved.back());
      saved.pop_back();
      if (rng() % 3 == 0) temps.push_back(b.alloc(small_dist(rng), kTempStream));
      b.free(grad_in);
    }
    while (next_param > 0) {
      --next_param;
      grads[next_param] = b.alloc(params[next_param]);
    }
    b.free_all(temps);
    b.free(dlogits);
    b.free(loss);
    b.free(input);

    // Adam's two moments appear at the first step and stay.
    if (step == 0)
      for (uint64_t bytes : params) {
        b.alloc(bytes);
        b.alloc(bytes);
      }
    // zero_grad(set_to_none=True)
    for (uint32_t g : grads) b.free(g);
  }
  return t;
}

}  // namespace hbmalloc::trace
