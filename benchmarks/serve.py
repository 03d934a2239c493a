"""Serving benchmark: one-at-a-time serving vs continuous batching, measured per stream on the client.

    python benchmarks/serve.py                                  # runs/demo/sft/model, 1/8/32 streams
    python benchmarks/serve.py --model DIR --requests 96 --concurrency 1,8,32 --output-tokens 32
    python benchmarks/serve.py --rate 20                        # Poisson arrivals at 20 req/s instead

Like vLLM's serving benchmark: a fixed number of streaming chat requests at a given concurrency
(or Poisson arrival rate) against a real ``scratchgpt serve`` process (started here as a
subprocess on a free loopback port, so client and server do not share one GIL). Per request the
client records time to first token (TTFT), inter-token latency between streamed pieces (ITL),
time per output token after the first (TPOT = (end - first) / (tokens - 1)) and failures;
``ignore_eos`` makes every request generate exactly ``--output-tokens`` so both modes do the
same work. Modes: ``sequential`` = ``--max-batch-size 1`` (requests queue and run one at a time),
``batched`` = ``--max-batch-size 32`` (continuous batching). Both servers run side by side and
the modes take turns for ``--rounds`` rounds per load level (outside load hits both alike).
At the end: the engine's decode step profile (in-process) and the two targets as TARGET lines.

Prompts are the held-out customer-service questions (short, like real chat turns). A second
run, ``--ttft-prompt-tokens 200`` (default), measures TTFT for 200-token prompts at the highest
concurrency; the demo model's context is only 128 tokens, so that run serves a model of the
demo's shape with a 256-token context and random weights (speed depends on the shape, not on
the weights). Prints JSON (``--json FILE`` to save it) and a table.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, model_dir, batch: int, threads: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "scratchgpt", "serve", str(model_dir), "--port", str(self.port),
               "--max-batch-size", str(batch), "--max-queue", "1000", "--model-name", "bench",
               "--threads", threads]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout=120):
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.proc.stdout.read())
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RawHTTP:
    """The load generator's lean HTTP/1.1 client (asyncio streams, keep-alive, chunked bodies).

    Why not httpx (still available: ``--client httpx``): on the 2-core machine the client shares
    the cores with the server, and httpx spends ~0.1-0.2 ms of CPU per streamed event (its
    h11 / anyio / decoder layers, once per read) — as much as the server spends generating the
    token at 32 streams, so at high concurrency the load generator, not the server, set the
    pace. This client reads the same bytes and measures the same things (per event: the SSE
    line, parsed by the same code) with far less work per read: vLLM's serving benchmark uses
    aiohttp's C parser for the same reason."""

    def __init__(self, url):
        from urllib.parse import urlsplit
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self._idle = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    def stream(self, method, url, json=None):
        return _RawResponse(self, method, url, json)


class _RawResponse:
    def __init__(self, client, method, url, body):
        from urllib.parse import urlsplit
        self.client, self.method, self.path, self.body = client, method, urlsplit(url).path, body
        self.status_code, self.complete, self._conn = None, False, None

    async def __aenter__(self):
        c = self.client
        self._conn = c._idle.pop() if c._idle else await asyncio.open_connection(c.host, c.port)
        reader, writer = self._conn
        data = json.dumps(self.body).encode()
        writer.write(b"%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                     % (self.method.encode(), self.path.encode(), c.host.encode(), c.port, len(data), data))
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        self.status_code = int(head[0].split(" ", 2)[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if ":" in h)}
        return self

    async def aiter_lines(self):
        """The body's lines (str, without the newline), de-chunked; sets ``complete`` at its end."""
        reader = self._conn[0]
        buf = b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                n = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if n == 0:
                    await reader.readuntil(b"\r\n")          # end of the (empty) trailer
                    break
                buf += (await reader.readexactly(n + 2))[:-2]
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8")
        else:
            buf = await reader.readexactly(int(self.headers.get("content-length", 0)))
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.decode("utf-8")
        if buf:
            yield buf.decode("utf-8")
        self.complete = True

    async def __aexit__(self, *exc):
        reusable = self.complete and exc[0] is None and self.headers.get("connection", "").lower() != "close"
        if reusable:
            self.client._idle.append(self._conn)
        elif self._conn is not None:
            self._conn[1].close()


async def one_request(client, url, messages, output_tokens):
    body = {"model": "bench", "messages": messages, "max_tokens": output_tokens, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    stamps, usage, end = [], None, None
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                return {"ok": False, "error": f"HTTP {r.status_code}"}
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or end is not None:
                    continue                       # (after [DONE]: read the body to its end)
                if line == "data: [DONE]":
                    end = time.perf_counter()
                    continue
                ev = json.loads(line[6:])
                if "error" in ev:
                    return {"ok": False, "error": ev["error"]["message"]}
                usage = ev.get("usage") or usage
                if ev["choices"] and ev["choices"][0]["delta"].get("content"):
                    stamps.append(time.perf_counter())
    except Exception as e:  # noqa: BLE001 - every failure counts, whatever it is
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    if end is None or not stamps or usage is None:
        return {"ok": False, "error": "incomplete stream"}
    n = usage["completion_tokens"]
    return {"ok": True, "ttft": stamps[0] - t0, "e2e": end - t0, "tokens": n,
            "prompt_tokens": usage["prompt_tokens"], "itl": list(np.diff(stamps)),
            "tpot": (end - stamps[0]) / max(1, n - 1)}


def make_client(kind, url, concurrency):
    if kind == "raw":
        return RawHTTP(url)
    import httpx
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    return httpx.AsyncClient(timeout=600, limits=limits)


async def run_load(url, prompts, n_requests, concurrency, output_tokens, rate=None, seed=0, client="raw"):
    rng = random.Random(seed)
    results = []
    async with make_client(client, url, concurrency) as client:
        t0 = time.perf_counter()
        if rate:                                   # Poisson arrivals, no cap on concurrency
            tasks = []
            for i in range(n_requests):
                tasks.append(asyncio.create_task(one_request(client, url, prompts[i % len(prompts)], output_tokens)))
                await asyncio.sleep(rng.expovariate(rate))
            results = await asyncio.gather(*tasks)
        else:
            queue = list(range(n_requests))

            async def worker():
                while queue:
                    i = queue.pop()
                    results.append(await one_request(client, url, prompts[i % len(prompts)], output_tokens))
            await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    return results, wall


def process_cpu_s(pid=None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (None: this one), all threads.

    On a shared machine wall-clock throughput depends on what else runs; CPU per output token
    does much less, so it is reported beside tokens/s."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def measured(server, coro_fn):
    """Run ``coro_fn()`` (one load level) and return (results, wall, cpu: dict of CPU s)."""
    s0, c0 = process_cpu_s(server.proc.pid), process_cpu_s()
    results, wall = asyncio.run(coro_fn())
    return results, wall, {"server": process_cpu_s(server.proc.pid) - s0, "client": process_cpu_s() - c0}


def cpu_fields(cpu, results) -> dict:
    n = sum(r["tokens"] for r in results if r["ok"]) or 1
    return {"server_cpu_ms_per_token": round(cpu["server"] / n * 1000, 3),
            "client_cpu_ms_per_token": round(cpu["client"] / n * 1000, 3)}


def pct(xs, q):
    return float(np.percentile(xs, q)) * 1000 if len(xs) else float("nan")


def summarize(results, wall):
    ok = [r for r in results if r["ok"]]
    itl = [x for r in ok for x in r["itl"]]
    return {"requests": len(results), "failures": len(results) - len(ok),
            "errors": sorted({r["error"] for r in results if not r["ok"]})[:3],
            "wall_s": round(wall, 3), "req_per_s": round(len(ok) / wall, 3),
            "output_tok_per_s": round(sum(r["tokens"] for r in ok) / wall, 1),
            "mean_prompt_tokens": round(float(np.mean([r["prompt_tokens"] for r in ok])), 1) if ok else None,
            "ttft_ms_p50": round(pct([r["ttft"] for r in ok], 50), 1),
            "ttft_ms_p99": round(pct([r["ttft"] for r in ok], 99), 1),
            "tpot_ms_p50": round(pct([r["tpot"] for r in ok], 50), 2),
            "tpot_ms_p99": round(pct([r["tpot"] for r in ok], 99), 2),
            "itl_ms_p50": round(pct(itl, 50), 2), "itl_ms_p99": round(pct(itl, 99), 2)}


def chat_prompts(n=64):
    from scratchgpt.datasets import customer_service_file
    with open(customer_service_file("test"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["turn"] == "0"]
    return [[{"role": "user", "content": r["context"]}] for r in rows[:n]]


def long_prompts(tok, n_tokens, n=16):
    """Chat prompts of exactly ``n_tokens`` tokens (template included), from the bundled text."""
    from scratchgpt.tokenizer.chat_template import render_chat
    from scratchgpt.datasets import customer_service_file
    text = customer_service_file("train").read_text(encoding="utf-8")
    out = []
    for i in range(n):
        lo, hi = 0, 4 * n_tokens
        start = 997 * i
        while lo < hi:                             # longest slice whose prompt fits n_tokens
            mid = (lo + hi + 1) // 2
            msgs = [{"role": "user", "content": text[start:start + mid]}]
            if len(render_chat(tok, msgs, add_generation_prompt=True)[0]) <= n_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append([{"role": "user", "content": text[start:start + lo]}])
    return out


def long_context_twin(model_dir, block_size, out_dir):
    """The model's shape with a longer context and random weights (for the 200-token TTFT run)."""
    from dataclasses import replace
    from scratchgpt.infer import load_for_inference
    from scratchgpt.models import GPT
    model, tok = load_for_inference(model_dir)
    cfg = replace(model.config, block_size=block_size)
    GPT(cfg, seed=0).save(out_dir)
    tok.save(Path(out_dir) / "tokenizer.json")
    return tok


def engine_step_profile(model_dir, sizes=(1, 8, 32), steps=40, prompt_tokens=20):
    """In-process engine decode step at 1/8/32 live sequences: median ms per step, split into
    decode attention, linears, the rest of the forward, and sampling + text (the engine's Python
    around the forward); each part is the median of its per-step values, so on a busy machine
    the parts need not add up exactly to the median step.
    Run in a child process (``--engine-profile``) so the thread settings apply as in the server."""
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams, load_for_inference
    from scratchgpt.infer import forward as fwd
    from scratchgpt.serve.server import _serial_builds_on_one_thread
    model, tok = load_for_inference(model_dir)
    spent = {}

    def timed(fn, key):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t
        return wrapper
    fwd.cached_attention = timed(fwd.cached_attention, "attention")
    fwd._apply = timed(fwd._apply, "linears")
    out = {}
    rng = np.random.default_rng(0)
    for B in sizes:
        eng = Engine(model, tok, max_batch_size=B)
        _serial_builds_on_one_thread(eng)    # the kernel builds the server runs (serve/server.py)
        eng.runner.forward = timed(eng.runner.forward, "forward")
        params = SamplingParams(max_new_tokens=steps + 8, ignore_eos=True)
        for _ in range(2):                   # the first round compiles / loads kernel builds
            for _ in range(B):
                eng.add(GenerationRequest(rng.integers(0, tok.vocab_size, prompt_tokens).tolist(), params))
            eng.step()                        # prefill
            eng.step()
            per_step = []                     # medians over steps: robust to a busy machine
            for _ in range(steps):
                spent.clear()
                t0 = time.perf_counter()
                eng.step()
                per_step.append({"step": time.perf_counter() - t0, **spent})
            for rid in list(eng._seqs):
                eng.cancel(rid)
        for d in per_step:                    # each step's own split, then medians of each part
            d["other"] = d.get("forward", 0.0) - d.get("attention", 0.0) - d.get("linears", 0.0)
            d["python"] = d["step"] - d.get("forward", 0.0)
        ms = {k: float(np.median([d.get(k, 0.0) for d in per_step])) * 1000
              for k in ("step", "attention", "linears", "other", "python")}
        out[B] = {"step_ms": round(ms["step"], 3), "attention_ms": round(ms["attention"], 3),
                  "linears_ms": round(ms["linears"], 3), "other_forward_ms": round(ms["other"], 3),
                  "sampling_text_ms": round(ms["python"], 3), "ms_per_token": round(ms["step"] / B, 3)}
    return out


def thread_env(threads: str) -> dict:
    n = str(threads)
    return {**os.environ, "NUMBA_NUM_THREADS": n, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            "MKL_NUM_THREADS": n, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def machine_load():
    try:
        return os.getloadavg()
    except OSError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="runs/demo/sft/model")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--rate", type=float, default=None, help="Poisson arrival rate (req/s) instead of concurrency")
    ap.add_argument("--output-tokens", type=int, default=32)
    ap.add_argument("--modes", default="sequential,batched")
    ap.add_argument("--ttft-prompt-tokens", type=int, default=200, help="0 skips the long-prompt run")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds per load level, the modes taking turns (tok/s pooled over the rounds)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="load generator's HTTP client (raw: lean asyncio client, see RawHTTP)")
    ap.add_argument("--no-engine-profile", action="store_true", help="skip the in-process engine step profile")
    ap.add_argument("--engine-profile", action="store_true", help=argparse.SUPPRESS)   # the child's job
    args = ap.parse_args(argv)
    if args.engine_profile:
        print(json.dumps(engine_step_profile(args.model)))
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    prompts = chat_prompts()
    report = {"model": args.model, "requests": args.requests, "output_tokens": args.output_tokens,
              "client": args.client,
              "threads": args.threads, "cpus": os.cpu_count(), "loadavg_before": machine_load(), "runs": []}
    modes = args.modes.split(",")
    servers = {mode: ServerProcess(args.model, 1 if mode == "sequential" else 32, args.threads) for mode in modes}
    try:
        for mode, server in servers.items():
            server.wait_ready()
            # warm-up at the highest concurrency (kernel builds, caches, the client's own code paths)
            asyncio.run(run_load(server.url, prompts, max(levels), max(levels), 4, client=args.client))
        for c in ([None] if args.rate else levels):
            # the modes take turns, round by round (ABBA...), both servers up the whole time: on a
            # shared machine a burst of outside load then hits both sides alike, and each round
            # gives one batched/sequential ratio (the report keeps every round's and the median)
            per_mode = {mode: [] for mode in modes}
            for k in range(args.rounds):
                for mode in (modes if k % 2 == 0 else modes[::-1]):
                    server = servers[mode]
                    per_mode[mode].append(measured(server, lambda: run_load(
                        server.url, prompts, args.requests, c or 32, args.output_tokens, rate=args.rate,
                        client=args.client)))
            for mode, rounds in per_mode.items():
                results = [r for res, _, _ in rounds for r in res]
                wall = sum(w for _, w, _ in rounds)
                cpu = {k: sum(cp[k] for _, _, cp in rounds) for k in ("server", "client")}
                row = {"mode": mode, "concurrency": c, "rate": args.rate, **summarize(results, wall),
                       **cpu_fields(cpu, results), "rounds": len(rounds),
                       "round_tok_per_s": [summarize(res, w)["output_tok_per_s"] for res, w, _ in rounds]}
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    if args.ttft_prompt_tokens:
        with tempfile.TemporaryDirectory() as tmp:
            block = max(256, args.ttft_prompt_tokens + args.output_tokens)
            tok = long_context_twin(args.model, block, tmp)
            long = long_prompts(tok, args.ttft_prompt_tokens)
            server = ServerProcess(tmp, 32, args.threads)
            try:
                server.wait_ready()
                c = max(levels)
                asyncio.run(run_load(server.url, long, c, c, 4, client=args.client))
                results, wall, cpu = measured(server, lambda: run_load(server.url, long, args.requests, c,
                                                                       args.output_tokens, client=args.client))
                row = {"mode": f"batched, {args.ttft_prompt_tokens}-token prompts (random weights, "
                               f"block {block})", "concurrency": c, **summarize(results, wall),
                       **cpu_fields(cpu, results)}
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
            finally:
                server.stop()
    if not args.no_engine_profile:
        child = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--model", str(args.model),
                                "--engine-profile"], env=thread_env(args.threads), capture_output=True, text=True)
        if child.returncode == 0:
            report["engine_step_profile"] = json.loads(child.stdout.strip().splitlines()[-1])
        else:
            report["engine_step_profile_error"] = child.stderr.strip().splitlines()[-1:]
    report["loadavg_after"] = machine_load()
    top = max(levels)
    by = {(r["mode"], r["concurrency"]): r for r in report["runs"]}
    seq, bat = by.get(("sequential", top)), by.get(("batched", top))
    if seq and bat:
        report["batched_over_sequential_tok_s"] = round(bat["output_tok_per_s"] / seq["output_tok_per_s"], 2)
        report["ratio_per_round"] = [round(b / q, 2) for b, q in zip(bat["round_tok_per_s"], seq["round_tok_per_s"])]
        report["ratio_median_of_rounds"] = round(float(np.median(report["ratio_per_round"])), 2)
    long_row = next((r for r in report["runs"] if r["mode"].startswith("batched, ")), None)
    print("\n" + json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\n{'mode':<58} {'conc':>4} {'req/s':>7} {'tok/s':>7} {'TTFT p50/p99 ms':>17} "
          f"{'TPOT p50/p99 ms':>16} {'ITL p50/p99 ms':>15} {'fail':>4} {'CPU ms/tok srv+cli':>18}")
    for r in report["runs"]:
        conc = str(r["concurrency"]) if r.get("concurrency") else f"{r['rate']:g}/s"
        print(f"{r['mode']:<58} {conc:>4} {r['req_per_s']:>7.2f} {r['output_tok_per_s']:>7.1f} "
              f"{r['ttft_ms_p50']:>8.0f}/{r['ttft_ms_p99']:<8.0f} {r['tpot_ms_p50']:>7.1f}/{r['tpot_ms_p99']:<8.1f} "
              f"{r['itl_ms_p50']:>7.1f}/{r['itl_ms_p99']:<7.1f} {r['failures']:>4} "
              f"{r['server_cpu_ms_per_token']:>8.3f}+{r['client_cpu_ms_per_token']:<8.3f}")
    prof = report.get("engine_step_profile")
    if prof:
        print("\nengine decode step (in-process, ms): live seqs  step  attention  linears  other-forward  "
              "sampling+text  per-token")
        for B, p in prof.items():
            print(f"{'':<36}{B:>10} {p['step_ms']:>5.2f} {p['attention_ms']:>10.2f} {p['linears_ms']:>8.2f} "
                  f"{p['other_forward_ms']:>14.2f} {p['sampling_text_ms']:>14.2f} {p['ms_per_token']:>10.3f}")
    failures = sum(r["failures"] for r in report["runs"])
    print(f"\nload average before/after: {report['loadavg_before']} / {report['loadavg_after']} "
          f"({report['cpus']} CPUs); failures in all runs: {failures}")
    if "batched_over_sequential_tok_s" in report:
        ok = "meets" if report["batched_over_sequential_tok_s"] >= 4 else "below"
        print(f"TARGET 1: batched / sequential output tok/s at {top} streams = "
              f"{report['batched_over_sequential_tok_s']}x  ({bat['output_tok_per_s']:.0f} / "
              f"{seq['output_tok_per_s']:.0f} tok/s over {bat['rounds']} alternating rounds; per round "
              f"{report['ratio_per_round']}, median {report['ratio_median_of_rounds']}x; target >= 4x: {ok})")
    if long_row:
        ok = "meets" if long_row["ttft_ms_p99"] < 1000 else "above"
        print(f"TARGET 2: p99 time to first token, {args.ttft_prompt_tokens}-token prompts at {top} streams = "
              f"{long_row['ttft_ms_p99']:.0f} ms  (target < 1000 ms: {ok})")

if __name__ == "__main__":
    main()
