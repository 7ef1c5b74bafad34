#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Load test for `parallama serve` (loopback only, bounded in time and count).

N concurrent streaming clients (the official openai client, one per thread) send greedy requests
for a fixed set of prompts, over and over, for --duration seconds. Every streamed text and token
count must equal the answer the same prompt got alone before the load started (no lost, duplicated
or mixed-up tokens, whatever the batch), nothing may fail, and at the end the server must be idle
with every KV block back. Prints time-to-first-token and time-per-output-token percentiles and the
aggregate tokens/s, and writes them as JSON with --out.

Exit codes: 0 pass, 1 fail, 77 skipped (model or openai missing, unless PARALLAMA_REQUIRE_TEST_DATA=1).
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_proc import Server, demo_model, require_data  # noqa: E402

PROMPTS = [
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "Here is a recipe for pancakes:",
    "The capital of France is",
    "In the year 2050, computers",
    "My favourite animal is the",
    "Write a short poem about the sea.",
    "The quick brown fox",
]


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF model (default: the demo model)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--max-requests", type=int, default=20000, help="stop after this many requests in all")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=0, help="server -t (0: all cores)")
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    a = ap.parse_args()

    model = a.model or demo_model()
    try:
        import openai
    except ImportError:
        openai = None
    if model is None or openai is None:
        what = "the demo model (scripts/fetch-model.sh)" if model is None else "the openai package (scripts/setup.sh --test)"
        print(f"load_test: {what} not available", file=sys.stderr)
        return 1 if require_data() else 77

    server = Server(model, "-c", "512", "--parallel", str(a.clients), "--max-queue", str(2 * a.clients), "--alias", "m",
                    threads=a.threads or None)
    failures = []
    try:
        base = server.url + "/v1"
        solo = openai.OpenAI(base_url=base, api_key="x", max_retries=0, timeout=120)
        # Answers alone, before the load: what every streamed answer must equal.
        ref = []
        for i, p in enumerate(PROMPTS):
            n = a.max_tokens - 4 * i
            r = solo.completions.create(model="m", prompt=p, max_tokens=n, temperature=0)
            ref.append((n, r.choices[0].text, r.usage.completion_tokens))

        lock = threading.Lock()
        results = []  # (ttft, tpot or None, completion tokens)
        count = [0]
        t_start = time.time()
        deadline = t_start + a.duration

        def client(k):
            c = openai.OpenAI(base_url=base, api_key="x", max_retries=0, timeout=120)
            j = k
            while time.time() < deadline:
                with lock:
                    if count[0] >= a.max_requests:
                        return
                    count[0] += 1
                idx = j % len(PROMPTS)
                j += 1
                n, want_text, want_tokens = ref[idx]
                t0 = time.time()
                t_first = t_last = None
                text, usage, finish = [], None, None
                try:
                    for ch in c.completions.create(model="m", prompt=PROMPTS[idx], max_tokens=n, temperature=0, stream=True,
                                                   stream_options={"include_usage": True}):
                        if ch.usage is not None:
                            usage = ch.usage
                        for choice in ch.choices:
                            if choice.text:
                                t_last = time.time()
                                t_first = t_first or t_last
                                text.append(choice.text)
                            finish = choice.finish_reason or finish
                except Exception as e:  # any error fails the test
                    with lock:
                        failures.append(f"client {k}: prompt {idx}: {type(e).__name__}: {e}")
                    continue
                got = "".join(text)
                problems = []
                if got != want_text:
                    problems.append(f"text differs from the lone answer: {got!r} vs {want_text!r}")
                if usage is None or usage.completion_tokens != want_tokens:
                    problems.append(f"completion_tokens {usage and usage.completion_tokens} vs {want_tokens}")
                if finish is None:
                    problems.append("no finish_reason")
                with lock:
                    if problems:
                        failures.append(f"client {k}: prompt {idx}: " + "; ".join(problems))
                    if t_first is not None:
                        ntok = usage.completion_tokens if usage else len(text)
                        tpot = (t_last - t_first) / (ntok - 1) if ntok > 1 else None
                        results.append((t_first - t0, tpot, ntok))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=a.duration + 180)
        wall = time.time() - t_start
        if any(t.is_alive() for t in threads):
            failures.append("clients still running long after the deadline")
        m = server.wait_idle(timeout=30)
        if m["parallama_kv_blocks_used"] != 0:
            failures.append(f"{m['parallama_kv_blocks_used']} KV blocks still in use at the end")
        ttft = [r[0] for r in results]
        tpot = [r[1] for r in results if r[1] is not None]
        tokens = sum(r[2] for r in results)
        summary = {
            "clients": a.clients,
            "duration_s": round(wall, 2),
            "requests": len(results),
            "errors": len(failures),
            "completion_tokens": tokens,
            "aggregate_tokens_per_s": round(tokens / wall, 1),
            "ttft_s": {p: round(percentile(ttft, int(p[1:])), 4) for p in ("p50", "p90", "p99")},
            "tpot_s": {p: round(percentile(tpot, int(p[1:])), 4) for p in ("p50", "p90", "p99")},
            "kv_blocks_used_at_end": m["parallama_kv_blocks_used"],
            "mean_step_batch_tokens": round(m["parallama_step_batch_tokens_sum"] / max(1, m["parallama_step_batch_tokens_count"]), 1),
        }
        print(json.dumps(summary, indent=2))
        if a.out:
            with open(a.out, "w") as f:
                json.dump(summary, f, indent=2)
        if len(results) < a.clients:
            failures.append(f"only {len(results)} requests completed")
    finally:
        rc = server.stop()
        if rc != 0:
            failures.append(f"server exit code {rc}")
    for f in failures[:20]:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
