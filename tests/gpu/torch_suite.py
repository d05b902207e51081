"""hbmalloc under PyTorch on a real GPU: every check of issue 6 in one run.

    python tests/gpu/torch_suite.py --out results.json

Each part runs in a child process twice, with PyTorch's native allocator and
with hbmalloc installed (an allocator is chosen once per process), and the
results are compared here:
  gpt      a small GPT trained 50 steps, same seed, deterministic: losses must be
           identical; step time ratio; peak reserved/allocated; and, under
           hbmalloc, torch's memory APIs checked against hbmalloc's own
  latency  alloc+free through torch.empty for a size mix (median ns per pair)
  graph    a CUDA graph captured and replayed (private pool), then reset
  conv     a conv net with cudnn.benchmark (uses cacheInfo)
  streams  two streams and record_stream: no reuse while another stream reads
  oom      an OOM caught as torch.OutOfMemoryError, then allocations succeed
  graph_trees  torch.compile(mode="reduce-overhead") over two input shapes
           (CUDA graph trees: pool checkpoint and restore), matching eager
  ipc      a CUDA tensor sent to a child process with torch.multiprocessing,
           changed there and read back here
  late_install  hbmalloc.install() after the first CUDA tensor fails clearly
                (run once, on the native allocator)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PARTS = ("gpt", "latency", "graph", "conv", "streams", "oom", "graph_trees", "ipc", "late_install")


# --------------------------------------------------------------------------- parts


def part_gpt(torch, hbm):
    import torch.nn as nn

    torch.manual_seed(0)
    # Same kernels in both runs: deterministic algorithms, math attention
    # (the fused attention kernels' backward passes are not deterministic).
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.enable_flash_sdp(False)
    torch.backends.cuda.enable_mem_efficient_sdp(False)
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)
    vocab, ctx, width, layers, heads, batch = 8192, 256, 512, 6, 8, 16

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(ctx, width)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln, self.head = nn.LayerNorm(width), nn.Linear(width, vocab, bias=False)

        def forward(self, idx):
            t = idx.shape[1]
            mask = torch.triu(torch.full((t, t), float("-inf"), device=idx.device), diagonal=1)
            x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
            for b in self.blocks:
                x = b(x, mask)
            return self.head(self.ln(x))

    model = GPT().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    gen = torch.Generator(device="cpu").manual_seed(1)
    data = torch.randint(0, vocab, (50, batch, ctx + 1), generator=gen)
    losses, times = [], []
    for step in range(50):
        batch_t = data[step].cuda(non_blocking=False)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        logits = model(batch_t[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), batch_t[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    out = {
        "losses": losses,
        "step_time_median_s": statistics.median(times[5:]),
        "peak_reserved": torch.cuda.max_memory_reserved(),
        "peak_allocated": torch.cuda.max_memory_allocated(),
    }
    if hbm is not None:
        out["api_checks"] = api_checks(torch, hbm)
    return out


def api_checks(torch, hbm):
    """torch.cuda's memory APIs against hbmalloc's own figures (full install)."""
    checks = {}
    ts, hs = torch.cuda.memory_stats(), hbm.memory_stats()
    checks["stats_keys_equal"] = set(ts) == set(hs)
    differing = [k for k in ts if k in hs and ts[k] != hs[k]]
    checks["stats_values_equal"] = not differing
    checks["stats_values_differing"] = differing[:10]
    checks["memory_allocated_matches"] = torch.cuda.memory_allocated() == hs["allocated_bytes.all.current"]
    checks["max_memory_reserved_matches"] = torch.cuda.max_memory_reserved() == hs["reserved_bytes.all.peak"]
    torch.cuda.reset_peak_memory_stats()
    s = torch.cuda.memory_stats()
    checks["reset_peak"] = s["allocated_bytes.all.peak"] == s["allocated_bytes.all.current"]
    checks["memory_summary"] = "Allocated memory" in torch.cuda.memory_summary()
    before = torch.cuda.memory_reserved()
    torch.cuda.empty_cache()
    checks["empty_cache_released"] = torch.cuda.memory_reserved() <= before
    torch.cuda.set_per_process_memory_fraction(0.9)
    total = torch.cuda.get_device_properties(0).total_memory
    limit = hbm.memory_stats(hbmalloc_figures=True)["hbmalloc.memory_limit"]
    checks["memory_fraction_applied"] = abs(limit - 0.9 * total) <= (1 << 20)
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.memory._record_memory_history(max_entries=10000)
    x = torch.empty(3 << 20, dtype=torch.uint8, device="cuda")
    del x
    snap = torch.cuda.memory._snapshot()
    actions = [e["action"] for e in snap["device_traces"][0]]
    checks["history_records_alloc_and_free"] = "alloc" in actions and "free_completed" in actions
    checks["snapshot_segments_match_stats"] = len([s for s in snap["segments"] if s["device"] == 0]) == \
        torch.cuda.memory_stats()["segment.all.current"]
    path = os.path.join(os.environ.get("HBMALLOC_GPU_OUT", "."), "gpt_snapshot.pickle")
    torch.cuda.memory._dump_snapshot(path)
    checks["dump_snapshot_written"] = os.path.getsize(path) > 0
    os.remove(path)
    torch.cuda.memory._record_memory_history(enabled=None)
    largest = torch.cuda.memory.mem_get_info()[0]
    checks["hbmalloc_summary"] = "largest free block" in hbm.memory_summary()
    checks["report"] = "reserved" in hbm.report().lower()
    checks["device_free_bytes"] = largest
    checks["all_passed"] = all(v for k, v in checks.items() if isinstance(v, bool))
    return checks


def part_latency(torch, hbm):
    sizes = [512, 4096, 65536, 1 << 20, 8 << 20, 64 << 20]
    for s in sizes * 50:  # warm the cache of every size
        torch.empty(s, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    per_size = {}
    for s in sizes:
        samples = []
        for _ in range(15):
            n = 2000
            t0 = time.perf_counter_ns()
            for _ in range(n):
                torch.empty(s, dtype=torch.uint8, device="cuda")
            samples.append((time.perf_counter_ns() - t0) / n)
        per_size[str(s)] = statistics.median(samples)
    mix = []
    for _ in range(15):
        t0 = time.perf_counter_ns()
        for _ in range(200):
            kept = [torch.empty(s, dtype=torch.uint8, device="cuda") for s in sizes]
            del kept
        mix.append((time.perf_counter_ns() - t0) / (200 * len(sizes)))
    return {"ns_per_alloc_free": per_size, "mix_ns_per_alloc_free": statistics.median(mix)}


def part_graph(torch, hbm):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 1024)).cuda()
    static_x = torch.randn(64, 1024, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            model(static_x)  # warm up on a side stream, as PyTorch documents
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_y = model(static_x)
    ok = True
    for i in range(5):
        x = torch.randn(64, 1024, device="cuda")
        static_x.copy_(x)
        g.replay()
        ok = ok and torch.allclose(static_y, model(x), atol=1e-5)
    torch.cuda.synchronize()
    reserved_with_graph = torch.cuda.memory_reserved()
    del static_y
    g.reset()
    torch.cuda.empty_cache()
    return {"replay_matches_eager": bool(ok), "reserved_with_graph": reserved_with_graph,
            "reserved_after_reset": torch.cuda.memory_reserved()}


def part_conv(torch, hbm):
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 128, 3, padding=1),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(128, 10)).cuda()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(64, 3, 128, 128, device="cuda")
    y = torch.randint(0, 10, (64,), device="cuda")
    times = []
    for _ in range(20):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"loss_finite": bool(torch.isfinite(loss).item()), "step_time_median_s": statistics.median(times[5:])}


def part_streams(torch, hbm):
    s2 = torch.cuda.Stream()
    n = 16 << 20
    a = torch.full((n,), 3.0, device="cuda")
    big = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    with torch.cuda.stream(s2):
        s2.wait_stream(torch.cuda.default_stream())
        for _ in range(20):
            big = big @ big / 4096  # keeps s2 busy while the default stream goes on
        total = a.sum()  # reads a on s2
    a.record_stream(s2)
    ptr = a.data_ptr()
    del a
    b = torch.full((n,), 5.0, device="cuda")  # must not land on a's memory while s2 reads it
    reused_early = b.data_ptr() == ptr
    s2.synchronize()
    torch.cuda.synchronize()
    return {"sum_on_second_stream": float(total.item()), "expected": 3.0 * n, "reused_while_in_use": reused_early,
            "correct": float(total.item()) == 3.0 * n and not reused_early}


def part_oom(torch, hbm):
    total = torch.cuda.get_device_properties(0).total_memory
    keep = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    caught, message = False, ""
    try:
        torch.empty(2 * total, dtype=torch.uint8, device="cuda")
    except torch.OutOfMemoryError as e:
        caught, message = True, str(e)
    after = [torch.empty(256 << 20, dtype=torch.uint8, device="cuda") for _ in range(4)]
    ok_after = all(t.numel() == 256 << 20 for t in after)
    del keep, after
    out = {"caught_out_of_memory_error": caught, "allocations_after_oom_ok": ok_after, "message": message[:2000]}
    if hbm is not None:
        out["message_has_fragmentation_summary"] = "fragmentation" in message and "largest free block" in message
        dump_dir = os.environ.get("HBMALLOC_OOM_DUMP", "")
        out["message_names_dump"] = bool(dump_dir) and dump_dir in message
        out["num_ooms"] = hbm.memory_stats()["num_ooms"]
    return out


def part_graph_trees(torch, hbm):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.GELU(), torch.nn.Linear(2048, 512)).cuda()
    compiled = torch.compile(model, mode="reduce-overhead")
    ok = True
    for step in range(6):
        for batch in (32, 48):  # two shapes: two recordings in one tree
            x = torch.randn(batch, 512, device="cuda")
            with torch.no_grad():
                ok = ok and torch.allclose(compiled(x), model(x), atol=1e-4)
    torch.cuda.synchronize()
    return {"matches_eager": bool(ok)}


def _ipc_child(queue, done, install):
    if install:  # the receiving process opens the handle with the allocator that made it
        import hbmalloc

        hbmalloc.install()
    t = queue.get()
    t.add_(1)
    torch_module = sys.modules["torch"]
    torch_module.cuda.synchronize()
    done.put(float(t.sum().item()))


def part_ipc(torch, hbm):
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue, done = ctx.Queue(), ctx.Queue()
    t = torch.zeros(1 << 20, device="cuda")
    worker = ctx.Process(target=_ipc_child, args=(queue, done, hbm is not None))
    worker.start()
    queue.put(t)
    seen_there = done.get(timeout=300)
    worker.join(timeout=300)
    torch.cuda.synchronize()
    return {"child_saw": seen_there, "changed_here": float(t.sum().item()) == float(1 << 20),
            "child_exit": worker.exitcode}


def part_late_install(torch, hbm):
    import hbmalloc

    x = torch.ones(4, device="cuda")
    try:
        hbmalloc.install()
        return {"refused": False}
    except hbmalloc.InstallError as e:
        return {"refused": "already initialized" in str(e), "message": str(e), "tensor_ok": x.sum().item() == 4}


# --------------------------------------------------------------------------- driver


def child(part: str, allocator: str) -> None:
    hbm = None
    if allocator == "hbmalloc":
        import hbmalloc

        hbm = hbmalloc
        mode = hbmalloc.install()
        assert mode == "full", mode
    import torch

    result = globals()[f"part_{part}"](torch, hbm)
    if hbm is not None:
        result["hbmalloc_invariants_ok"] = hbm._native.lib().hbm_check_invariants(0) == 0
    result["allocator"] = allocator
    print("RESULT " + json.dumps(result))


def run_child(part: str, allocator: str, env: dict) -> dict:
    started = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", part, allocator], capture_output=True, text=True,
                          env=env, timeout=600)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["wall_s"] = round(time.time() - started, 1)
            return result
    return {"error": f"exit {done.returncode}", "stderr": done.stderr[-4000:], "stdout": done.stdout[-2000:]}


def compare(results: dict) -> dict:
    s = {}
    n, h = results["gpt"]["native"], results["gpt"]["hbmalloc"]
    if "losses" in n and "losses" in h:
        s["losses_identical"] = n["losses"] == h["losses"]
        s["final_loss"] = [n["losses"][-1], h["losses"][-1]]
        s["step_time_ratio_hbm_over_native"] = h["step_time_median_s"] / n["step_time_median_s"]
        s["step_speed_vs_native"] = n["step_time_median_s"] / h["step_time_median_s"]
        s["peak_reserved"] = {"native": n["peak_reserved"], "hbmalloc": h["peak_reserved"]}
        s["peak_reserved_ratio_hbm_over_native"] = h["peak_reserved"] / n["peak_reserved"]
        s["api_checks_passed"] = h.get("api_checks", {}).get("all_passed")
    ln, lh = results["latency"]["native"], results["latency"]["hbmalloc"]
    if "mix_ns_per_alloc_free" in ln and "mix_ns_per_alloc_free" in lh:
        s["latency_mix_ns"] = {"native": ln["mix_ns_per_alloc_free"], "hbmalloc": lh["mix_ns_per_alloc_free"]}
        s["latency_ratio_hbm_over_native"] = lh["mix_ns_per_alloc_free"] / ln["mix_ns_per_alloc_free"]
        s["latency_ratio_per_size"] = {k: lh["ns_per_alloc_free"][k] / v for k, v in ln["ns_per_alloc_free"].items()}
    s["graph_ok"] = results["graph"]["hbmalloc"].get("replay_matches_eager")
    s["conv_ok"] = results["conv"]["hbmalloc"].get("loss_finite")
    s["streams_ok"] = results["streams"]["hbmalloc"].get("correct")
    o = results["oom"]["hbmalloc"]
    s["oom_ok"] = bool(o.get("caught_out_of_memory_error") and o.get("allocations_after_oom_ok"))
    s["oom_text_ok"] = bool(o.get("message_has_fragmentation_summary") and o.get("message_names_dump"))
    s["graph_trees_ok"] = results.get("graph_trees", {}).get("hbmalloc", {}).get("matches_eager")
    ipc = results.get("ipc", {}).get("hbmalloc", {})
    s["ipc_ok"] = bool(ipc.get("changed_here") and ipc.get("child_exit") == 0)
    s["late_install_refused"] = results.get("late_install", {}).get("native", {}).get("refused")
    s["targets"] = {
        "identical_losses": s.get("losses_identical"),
        "latency_no_slower": (s.get("latency_ratio_hbm_over_native") or 9) <= 1.0,
        "step_time_at_least_0.99x": (s.get("step_speed_vs_native") or 0) >= 0.99,
        "peak_reserved_le_native": (s.get("peak_reserved_ratio_hbm_over_native") or 9) <= 1.0,
    }
    return s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, metavar=("PART", "ALLOCATOR"))
    ap.add_argument("--out", default="gpu_results.json")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":4096:8", PYTHONUNBUFFERED="1", HBMALLOC_GPU_OUT=out_dir)
    import torch

    results = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "note": a.note}
    for part in a.parts.split(","):
        results[part] = {}
        for allocator in ("native",) if part == "late_install" else ("native", "hbmalloc"):
            child_env = dict(env)
            if part == "oom" and allocator == "hbmalloc":
                child_env["HBMALLOC_OOM_DUMP"] = os.path.join(out_dir, "oom-dump")
            results[part][allocator] = run_child(part, allocator, child_env)
            print(f"{part:8s} {allocator:9s} {json.dumps(results[part][allocator])[:300]}", flush=True)
    try:
        results["summary"] = compare(results)
    except Exception as e:  # a failed part leaves the others' figures
        results["summary"] = {"error": repr(e)}
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results.get("summary"), indent=1))


if __name__ == "__main__":
    main()
