"""Data parallel over MPI: 2 ranks x half batch == 1 process x full batch, bucketed == per-tensor
allreduce, exact data shards, failures that stop every rank, SIGKILL + resume on another rank
count, and the start-up agreement check. Ranks are real ``mpiexec -n N`` processes (one thread
each) running tests/dist_child.py; every launch is bounded by a timeout."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the dist extra (mpi4py + mpich) is part of the test extra")

from scratchgpt.dist.launch import mpiexec_command, one_thread_env, run_ranks  # noqa: E402
from scratchgpt.dist.sharding import shard_bounds  # noqa: E402

HERE = Path(__file__).parent
CHILD = str(HERE / "dist_child.py")
ENV = one_thread_env({"PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])})


def ranks(n, *args, timeout=120):
    return run_ranks(n, [CHILD, *map(str, args)], timeout=timeout, env=ENV)


def result(d, rank=0):
    return json.loads((Path(d) / f"result_rank{rank}.json").read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, no MPI, the full batch."""
    d = tmp_path_factory.mktemp("one")
    subprocess.run([sys.executable, CHILD, "train", str(d)], env=ENV, check=True, timeout=120)
    return {**result(d), "dir": str(d)}


def assert_same_training(a, b):
    # float32 sums in another order (two half-batch means combined vs one full-batch mean)
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(a["val_losses"], b["val_losses"], rtol=1e-6, atol=0)
    for name, w in a["weights"].items():
        np.testing.assert_allclose(np.array(b["weights"][name]), np.array(w), rtol=1e-5, atol=5e-6, err_msg=name)


def test_shard_bounds_partition_every_batch_size():
    for size in (1, 2, 3, 5):
        for B in range(size, 3 * size + 2):
            b = shard_bounds(B, size)
            counts = np.diff(b)
            assert b[0] == 0 and b[-1] == B and counts.min() >= 1 and counts.max() - counts.min() <= 1


def test_shards_partition_the_global_batches_on_three_ranks(tmp_path):
    from scratchgpt.data.batches import PretrainBatches
    sys.path.insert(0, str(HERE))
    from dist_child import T, corpus
    r = ranks(3, "shards", tmp_path, "--dist", "--steps", 4, "--batch-size", 5)
    assert r.returncode == 0, r.stderr
    got = [json.loads((tmp_path / f"rows_rank{k}.json").read_text()) for k in range(3)]
    whole = PretrainBatches(corpus(), 5, T, seed=7)
    for step in range(4):
        rows = got[0][step] + got[1][step] + got[2][step]    # rank order = row order, 2 + 2 + 1 rows
        assert [len(g[step]) for g in got] == [2, 2, 1]
        assert rows == whole.next_batch().x.tolist()


def test_two_ranks_half_batch_equal_one_process_full_batch(tmp_path, one_process):
    r = ranks(2, "train", tmp_path, "--dist")
    assert r.returncode == 0, r.stderr
    two, other = result(tmp_path, 0), result(tmp_path, 1)
    assert two["tokens"] == one_process["tokens"]             # the global batch, not one rank's half
    assert_same_training(one_process, two)
    assert other["weights"] == two["weights"]                 # the ranks never drift apart: bit-identical
    # the buckets' allreduces started during backward (overlap; the early-stopping test runs without)
    assert two["buckets"] > 1 and two["started_in_backward"] == two["buckets"]


def test_mixed_precision_on_two_ranks_scales_and_skips_as_one_process(tmp_path):
    """--mixed-precision with a loss scale so large that step 1 overflows in float16: both runs skip
    that step and move the scale identically (every rank decides on the same summed gradient). The
    float16 gradients are rounded per rank (half-batch sums) instead of once, so weights agree to
    a small fraction of one AdamW step (lr = 3e-3), not to float32 rounding."""
    flags = ["--mixed-precision", "--loss-scale", 2 ** 17]
    subprocess.run([sys.executable, CHILD, "train", str(tmp_path / "one"), *map(str, flags)], env=ENV, check=True,
                   timeout=120)
    r = ranks(2, "train", tmp_path / "two", "--dist", *flags)
    assert r.returncode == 0, r.stderr
    one, two, other = result(tmp_path / "one"), result(tmp_path / "two", 0), result(tmp_path / "two", 1)
    assert one["skipped_steps"] == two["skipped_steps"] == 1
    assert one["loss_scales"] == two["loss_scales"] and len(set(one["loss_scales"])) > 1
    assert other["weights"] == two["weights"]
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5, atol=0)
    for name, w in one["weights"].items():
        np.testing.assert_allclose(np.array(two["weights"][name]), np.array(w), rtol=0, atol=3e-4, err_msg=name)


def test_early_stopping_restores_the_same_best_weights_on_every_rank(tmp_path):
    """min_delta=10: the second evaluation (step 6) never counts as better, so the run stops there and
    restores the weights of step 3 — rank 0 from best.safetensors, rank 1 from memory (it writes nothing)."""
    flags = ["--patience", 1, "--min-delta", 10, "--steps", 9]
    subprocess.run([sys.executable, CHILD, "train", str(tmp_path / "one"), *map(str, flags)], env=ENV, check=True,
                   timeout=120)
    r = ranks(2, "train", tmp_path / "two", "--dist", "--no-overlap", *flags)
    assert r.returncode == 0, r.stderr
    one, two, other = result(tmp_path / "one"), result(tmp_path / "two", 0), result(tmp_path / "two", 1)
    assert two["started_in_backward"] == 0
    assert one["stopped_early"] and two["stopped_early"] and one["steps"] == two["steps"] == 6
    assert other["weights"] == two["weights"]
    assert_same_training(one, two)


def test_bucketed_allreduce_equals_per_tensor(tmp_path):
    r = ranks(2, "allreduce", tmp_path, "--dist")
    assert r.returncode == 0, r.stderr
    for k in range(2):
        res = json.loads((tmp_path / f"allreduce_rank{k}.json").read_text())
        assert res["n_buckets"] > 1
        # with two ranks every element is a + b either way: bit-identical
        assert res["exact"], res
        assert res["max_err_vs_float64"] < 1e-6


def test_a_rank_that_raises_stops_every_rank_with_one_line(tmp_path):
    t0 = time.perf_counter()
    r = ranks(2, "train", tmp_path, "--dist", "--steps", 30, "--fail-rank", 1, "--fail-step", 3, timeout=90)
    assert r.returncode != 0
    assert time.perf_counter() - t0 < 60
    lines = [ln for ln in r.stderr.splitlines() if "failed, stopping all ranks" in ln]
    assert lines == ["scratchgpt: rank 1 of 2 failed, stopping all ranks: RuntimeError: injected failure at step 3"]


def test_a_rank_that_hangs_is_detected_by_the_others_deadline(tmp_path):
    t0 = time.perf_counter()
    r = ranks(2, "train", tmp_path, "--dist", "--steps", 30, "--hang-rank", 1, "--fail-step", 2, "--timeout", 3,
              timeout=90)
    assert r.returncode != 0 and time.perf_counter() - t0 < 60
    line = [ln for ln in r.stderr.splitlines() if "failed, stopping all ranks" in ln]
    assert len(line) == 1 and line[0].startswith(
        "scratchgpt: rank 0 of 2 failed, stopping all ranks: rank 0: no answer from the other ranks for 3 s during ")
    assert "(a rank died or hangs" in line[0]


def test_sigkill_a_rank_then_resume_on_one_process(tmp_path, one_process):
    """Rank 1 is killed mid-run under the supervised launcher (python -m scratchgpt.dist.launch): rank 0
    is stopped too, within seconds, and the user reads one line naming rank 1 (not mpiexec's banner);
    the run resumes from the last complete checkpoint with ONE process (a 2-rank checkpoint on 1 rank)
    and ends where the uninterrupted one-process run ends."""
    cmd = [sys.executable, "-m", "scratchgpt.dist.launch", "-n", "2", CHILD, "train", str(tmp_path), "--dist",
           "--print-steps"]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                           start_new_session=True)
    try:
        killed = False
        for line in job.stdout:
            if line.startswith("step ") and int(line.split()[1]) >= 3:
                victim = int((tmp_path / "pid_rank1").read_text())
                os.kill(victim, signal.SIGKILL)
                killed = True
                break
        t0 = time.perf_counter()
        out, err = job.communicate(timeout=60)                 # no hang: rank 0 is stopped too
        assert killed and job.returncode != 0 and time.perf_counter() - t0 < 30
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    with pytest.raises(ProcessLookupError):                    # rank 0 is gone, not orphaned
        os.kill(int((tmp_path / "pid_rank0").read_text()), 0)
    said = [ln for ln in err.splitlines() if ln.startswith("scratchgpt:")]
    assert len(said) == 1 and said[0].startswith(
        f"scratchgpt: rank 1 of 2 (pid {victim} on ") and " was killed by signal 9 (SIGKILL); all ranks stopped" \
        in said[0], err
    assert "BAD TERMINATION" not in out + err and "@scratchgpt" not in out + err
    from scratchgpt.train.run_checkpoints import latest_checkpoint
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt is not None and ckpt.name in ("step_0000002", "step_0000004")
    resumed = subprocess.run([sys.executable, CHILD, "train", str(tmp_path), "--resume"], env=ENV, timeout=120,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    res = result(tmp_path)
    assert res["steps"] == one_process["steps"]
    for name, w in one_process["weights"].items():
        np.testing.assert_allclose(np.array(res["weights"][name]), np.array(w), rtol=1e-5, atol=5e-6, err_msg=name)


def test_launcher_output_filter_names_the_dead_rank_and_passes_the_rest_through():
    """supervise.StreamFilter on canned mpiexec output (MPICH's banner on stdout, Open MPI's line)."""
    from scratchgpt.dist.supervise import MpiexecOutput, StreamFilter
    seen = MpiexecOutput()
    err, out = StreamFilter(seen), StreamFilter(seen)
    shown = err.feed(b"@scratchgpt rank 0 of 2 pid 101 host a\n@scratchgpt rank 1 of 2 pid 202 host b\nstep 1\n")
    assert shown == b"step 1\n"
    assert out.feed(b"Hel") == b"Hel" and out.feed(b"lo\n\nthere") == b"lo\n\nthere"  # streamed, not held
    banner = ("\n" + "=" * 83 + "\n=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n=   PID 202 RUNNING AT b\n"
              "=   EXIT CODE: 9\n" + "=" * 83 + "\nYOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)\n"
              "This typically refers to a problem with your application.\n")
    assert out.feed(banner.encode()) == b"\n" and out.close() == b""
    assert seen.summary(9).startswith("scratchgpt: rank 1 of 2 (pid 202 on b) was killed by signal 9 (SIGKILL)")
    ompi = MpiexecOutput()
    assert StreamFilter(ompi).feed(b"mpirun noticed that process rank 3 with PID 77 on node n2 exited on signal 9 "
                                   b"(Killed).\n") == b""
    assert ompi.summary(1).startswith("scratchgpt: rank 3 (pid 77 on n2) was killed by signal 9 (SIGKILL)")
    ours = MpiexecOutput()                     # a rank that raised said so itself: nothing more to add
    line = b"scratchgpt: rank 1 of 2 failed, stopping all ranks: RuntimeError: x\n"
    assert StreamFilter(ours).feed(line) == line and ours.summary(1) is None
    assert MpiexecOutput().summary(0) is None


def test_a_one_process_checkpoint_resumes_on_two_ranks(tmp_path, one_process):
    """The other direction: the reference run's step-4 checkpoint, continued by 2 ranks, ends where
    the one-process run ended."""
    import shutil
    from scratchgpt.train.run_checkpoints import write_json_atomic
    shutil.copytree(Path(one_process["dir"]) / "run", tmp_path / "run")
    write_json_atomic(tmp_path / "run" / "checkpoints" / "latest", {"dir": "step_0000004", "step": 4})
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step_0000006")
    r = ranks(2, "train", tmp_path, "--dist", "--resume")
    assert r.returncode == 0, r.stderr
    res = result(tmp_path)
    assert res["steps"] == 6 and len(res["losses"]) == 2               # steps 5 and 6 trained here
    np.testing.assert_allclose(res["losses"], one_process["losses"][4:], rtol=1e-6)
    for name, w in one_process["weights"].items():
        np.testing.assert_allclose(np.array(res["weights"][name]), np.array(w), rtol=1e-5, atol=5e-6, err_msg=name)


def test_zero1_trainer_equals_plain_data_parallel_and_its_checkpoints_move_between_rank_counts(tmp_path, one_process):
    """--zero 1: AdamW's moments sharded over 2 ranks. (a) From the one-process run's step-4 checkpoint
    (full state sliced on load), 2 ZeRO ranks train steps 5-6 to where the one-process run ended, each
    rank holding half of the optimizer state; (b) the ZeRO run's own step-6 checkpoint (the slices
    gathered on save) holds the same optimizer state as the one-process one, and resumes on 3 ranks."""
    import shutil
    from safetensors.numpy import load_file
    from scratchgpt.train.run_checkpoints import write_json_atomic
    shutil.copytree(Path(one_process["dir"]) / "run", tmp_path / "run")
    write_json_atomic(tmp_path / "run" / "checkpoints" / "latest", {"dir": "step_0000004", "step": 4})
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step_0000006")
    r = ranks(2, "train", tmp_path, "--dist", "--resume", "--zero", 1)
    assert r.returncode == 0, r.stderr
    res, other = result(tmp_path), result(tmp_path, 1)
    assert res["steps"] == 6 and other["weights"] == res["weights"]
    np.testing.assert_allclose(res["losses"], one_process["losses"][4:], rtol=1e-6)
    for name, w in one_process["weights"].items():
        np.testing.assert_allclose(np.array(res["weights"][name]), np.array(w), rtol=1e-5, atol=5e-6, err_msg=name)
    full = one_process["optimizer_state_bytes"]
    assert res["optimizer_state_bytes"] + other["optimizer_state_bytes"] == full      # 1/2 each, nothing twice
    assert abs(res["optimizer_state_bytes"] - full / 2) <= 8
    ours = load_file(str(tmp_path / "run" / "checkpoints" / "step_0000006" / "optimizer.safetensors"))
    ref = load_file(str(Path(one_process["dir"]) / "run" / "checkpoints" / "step_0000006" / "optimizer.safetensors"))
    assert sorted(ours) == sorted(ref)
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-4, atol=1e-9, err_msg=k)
    r = ranks(3, "train", tmp_path, "--dist", "--resume", "--zero", 1, "--steps", 8)
    assert r.returncode == 0, r.stderr
    assert result(tmp_path)["steps"] == 8 and result(tmp_path, 2)["weights"] == result(tmp_path)["weights"]


def test_zero_without_dist_is_one_line_exit_2(capsys, tmp_path):
    from scratchgpt.cli import main
    assert main(["pretrain", "--data", str(tmp_path), "--tokenizer", str(tmp_path), "--zero", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--zero 1" in err and "--dist dp" in err


def test_ranks_with_different_configs_refuse_to_start(tmp_path):
    one = [sys.executable, CHILD, "train", str(tmp_path), "--dist"]
    cmd = mpiexec_command(1) + one + [":", "-n", "1"] + one + ["--corpus-tag", "other"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=90)
    assert r.returncode != 0
    assert "rank 1 disagrees with rank 0 about the config (config.corpus: rank 0 has 'same', it has 'other')" \
        in r.stderr, r.stderr


class _OneRankOfMany:
    """A stand-in for rank ``rank`` of ``size`` whose allreduce does nothing: the test sums the
    ranks' partial outputs itself (the split arithmetic, without MPI)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def allreduce_(self, buf, what=""):
        return buf


def test_tensor_parallel_split_sums_to_the_full_linears():
    from scratchgpt.dist.tensor_parallel import tensor_parallel_weights
    from scratchgpt.infer.weights import decoder_weights
    from scratchgpt.models import GPT, GPTConfig
    full = decoder_weights(GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32), seed=1))
    N, R, C, HS = 2, 3, 32, 8
    shares = [tensor_parallel_weights(full, _OneRankOfMany(r, N)) for r in range(N)]
    rng = np.random.default_rng(0)
    for i in range(2):
        p = f"transformer.h.{i}"
        h = rng.standard_normal((R, C)).astype(np.float32)
        want = np.empty((R, 3 * C), np.float32)
        full.linears[f"{p}.attn.c_attn"](h, want)
        got = []
        for s in shares:
            o = np.empty((R, 3 * C // N), np.float32)
            s.linears[f"{p}.attn.c_attn"](h, o)
            got.append(o.reshape(R, 3, C // N))                     # this rank's q | k | v heads
        np.testing.assert_array_equal(np.concatenate(got, axis=2).reshape(R, 3 * C), want)
        for name, width in (("attn.c_proj", C), ("mlp.c_proj", 4 * C)):
            y = rng.standard_normal((R, width)).astype(np.float32)
            want = np.empty((R, C), np.float32)
            full.linears[f"{p}.{name}"](y, want)
            total = np.zeros((R, C), np.float64)
            for r, s in enumerate(shares):
                o = np.empty((R, C), np.float32)
                s.linears[f"{p}.{name}"](np.ascontiguousarray(y[:, r * width // N:(r + 1) * width // N]), o)
                total += o
            np.testing.assert_allclose(total, want, rtol=1e-5, atol=1e-5)
    assert shares[0].n_head == 2 and shares[0].head_dim == HS


def test_tensor_parallel_generation_matches_one_process(tmp_path):
    r = ranks(2, "tp", tmp_path, "--dist")
    assert r.returncode == 0, r.stderr
    for k in range(2):
        res = json.loads((tmp_path / f"tp_rank{k}.json").read_text())
        assert len(set(res["tokens_one"])) > 2                     # a real sequence, not one token repeated
        assert res["tokens_tp"] == res["tokens_one"]
        assert res["max_logit_diff"] <= 1e-5 * max(1.0, res["max_logit"])
        # each rank holds half of the block weights (+ its half of the biases; rank 0 keeps the
        # row-parallel biases) and half of the KV cache
        assert abs(res["block_bytes_rank"] - res["block_bytes_full"] / 2) <= 0.01 * res["block_bytes_full"]
        assert res["cache_bytes_rank"] * 2 == res["cache_bytes_full"]


def test_generate_and_chat_cli_with_tp2_print_what_one_process_prints(tmp_path):
    """`mpiexec -n 2 scratchgpt generate MODEL_DIR --tp 2` (and chat) against the one-process command."""
    sys.path.insert(0, str(HERE.parent))
    from tests.infer_helpers import tiny_gpt
    from tests.test_infer_text import TOK
    d = tmp_path / "model"
    d.mkdir()
    tiny_gpt(seed=3, vocab=TOK.vocab_size, block=64, n_embd=16, scale=4.0).save(d)
    TOK.save(d / "tokenizer.json")
    gen = ["-m", "scratchgpt.cli", "generate", str(d), "--prompt", "Hello", "--max-new-tokens", "9", "--raw",
           "--ignore-eos"]
    one = subprocess.run([sys.executable, *gen], capture_output=True, text=True, env=ENV, timeout=120)
    two = run_ranks(2, [*gen, "--tp", "2"], timeout=120, env=ENV)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert two.stdout == one.stdout and one.stdout.strip()          # printed once, same tokens
    chat = ["-m", "scratchgpt.cli", "chat", str(d), "--temperature", "0", "--max-new-tokens", "8"]
    script = "hello there\n/reset\norder 42?\n/exit\n"
    one = subprocess.run([sys.executable, *chat], input=script, capture_output=True, text=True, env=ENV, timeout=120)
    two = subprocess.run(mpiexec_command(2) + [sys.executable, *chat, "--tp", "2"], input=script,
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert two.stdout == one.stdout and len(one.stdout.splitlines()) == 2
    bad = run_ranks(2, [*gen, "--tp", "3"], timeout=60, env=ENV)
    assert bad.returncode == 2 and "--tp 3 needs 3 MPI ranks" in bad.stderr


def test_ctrl_c_in_tensor_parallel_chat_stops_the_reply_and_keeps_the_conversation(tmp_path):
    """Ctrl+C (SIGINT to the supervised launcher -> mpiexec -> every rank) during a long reply of
    `chat --tp 2`: the reply stops on both ranks after the same piece, ' [stopped]' ends the line,
    the partial answer stays in the conversation (a prefix of what one process replies) and the
    next message is answered; mpiexec's Ctrl-C notices are not shown; the job exits 0."""
    sys.path.insert(0, str(HERE.parent))
    from tests.infer_helpers import tiny_gpt
    from tests.test_infer_text import TOK
    d = tmp_path / "model"
    d.mkdir()
    tiny_gpt(seed=3, vocab=TOK.vocab_size, block=512, n_embd=16, scale=4.0).save(d)
    TOK.save(d / "tokenizer.json")
    chat = ["-m", "scratchgpt.cli", "chat", str(d), "--temperature", "0", "--max-new-tokens", "120", "--ignore-eos"]
    one = subprocess.run([sys.executable, *chat], input=f"hello there\n/save {tmp_path / 'one.json'}\n/exit\n",
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert one.returncode == 0, one.stderr
    full = json.loads((tmp_path / "one.json").read_text())["messages"][1]["content"]
    job = subprocess.Popen([sys.executable, "-m", "scratchgpt.dist.launch", "-n", "2", *chat[2:], "--tp", "2"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                           start_new_session=True)
    try:
        job.stdin.write(b"hello there\n")
        job.stdin.flush()
        got = os.read(job.stdout.fileno(), 4096)                 # the first piece of the reply
        job.send_signal(signal.SIGINT)
        while b"\n" not in got:
            got += os.read(job.stdout.fileno(), 4096)
        job.stdin.write(f"order 42?\n/save {tmp_path / 'two.json'}\n/exit\n".encode())
        job.stdin.close()
        rest = job.stdout.read()
        err = job.stderr.read().decode()
        assert job.wait(timeout=120) == 0, err
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    lines = (got + rest).decode().splitlines()
    assert len(lines) == 2 and lines[0].endswith(" [stopped]") and "mpiexec" not in lines[0], lines
    msgs = json.loads((tmp_path / "two.json").read_text())["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    partial = msgs[1]["content"]
    assert partial and full.startswith(partial) and len(partial) < len(full)
    assert lines[0] == partial + " [stopped]" and lines[1] == msgs[3]["content"]


def test_ch9_dist_quick_reports_equivalence_cost_and_projection():
    proc = subprocess.run([sys.executable, "-m", "scratchgpt.chapters.ch9", "--dist", "--quick"], capture_output=True,
                          text=True, env=ENV, timeout=300, cwd=str(HERE.parent))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    eq = next(ln for ln in out.splitlines() if ln.startswith("equivalence:"))
    assert float(eq.split("max |loss diff| ")[1].split(",")[0]) < 1e-5
    assert "same greedy tokens as one process: True" in out
    assert "allreduce per step:" in out and "alpha-beta fit" in out
    for p in (8, 64, 512):
        assert f"\n| {p} | " in out
    assert "data parallelism stops paying" in out


def test_alpha_beta_model_fit_and_projection():
    from scratchgpt.dist.cost_model import (GPT2_124M, break_even_ranks, fit_alpha_beta, gpt2_parameters, project,
                                            ring_allreduce_seconds)
    alpha, beta = 7e-6, 2e-10
    sizes = [4096 * 4 ** k for k in range(8)]
    times = [ring_allreduce_seconds(n, 4, alpha, beta) for n in sizes]
    a, b = fit_alpha_beta(sizes, times, 4)
    assert abs(a - alpha) < 1e-9 and abs(b - beta) < 1e-14
    assert ring_allreduce_seconds(10 ** 9, 1, alpha, beta) == 0.0
    # 2 (p-1) alpha + 2 (p-1)/p n beta, by hand for p = 8
    assert abs(ring_allreduce_seconds(800, 8, 1.0, 1.0) - (14 + 1400)) < 1e-9
    n = gpt2_parameters(**GPT2_124M)
    assert n == 124_439_808                                  # GPT-2 small with tied embeddings
    rows = project([1, 2], 1000, 100, 6.0, 600.0, alpha=0.0, beta=0.0)
    assert rows[0]["step_s"] == 1.0 and rows[1]["speedup"] == 2.0 and rows[1]["efficiency"] == 1.0
    p = break_even_ranks(n, 2 ** 19, 6.0 * n, 50e12, 5e-6, 8e-11)
    c1 = 2 ** 19 * 6.0 * n / 50e12
    assert ring_allreduce_seconds(4 * n, p, 5e-6, 8e-11) >= c1 / p                 # here it no longer pays
    assert ring_allreduce_seconds(4 * n, p - 1, 5e-6, 8e-11) < c1 / (p - 1)       # one rank fewer it did


def test_without_the_dist_extra_dist_dp_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    from scratchgpt.cli import main
    monkeypatch.setitem(sys.modules, "mpi4py", None)          # as if mpi4py were not installed
    assert main(["pretrain", "--data", str(tmp_path), "--tokenizer", str(tmp_path), "--dist", "dp"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'scratchgpt[dist]'" in err


def test_zero1_equals_allreduce_adamw_with_a_third_of_the_moments(tmp_path):
    r = ranks(3, "zero", tmp_path, "--dist")
    assert r.returncode == 0, r.stderr
    for k in range(3):
        res = json.loads((tmp_path / f"zero_rank{k}.json").read_text())
        n = res["n_params"]
        assert res["state_bytes_full"] == 8 * n                          # two float32 moments per parameter
        assert res["state_bytes_zero1"] == 8 * -(-n // 3)                 # this rank's slice only
        # AdamW is elementwise: the same update on slices; only the 3-way sum's order may differ
        assert res["max_diff"] <= 1e-6, res


def test_gpu_ranks_stage_gradients_through_the_host(tmp_path):
    """`--device cuda --dist dp` (on the CUDA simulator here): two GPU ranks with half batches
    train like one CPU process on the whole batch; the gradients go device -> host bucket ->
    MPI allreduce -> device (dist/allreduce.py), and the ranks stay bit-identical."""
    args = ["--steps", "2", "--n-layer", "1"]
    subprocess.run([sys.executable, CHILD, "train", str(tmp_path / "one"), *args], env=ENV, check=True, timeout=120)
    r = run_ranks(2, [CHILD, "train", str(tmp_path / "two"), "--dist", "--device", "cuda", *args], timeout=240,
                  env={**ENV, "NUMBA_ENABLE_CUDASIM": os.environ.get("NUMBA_ENABLE_CUDASIM", "1")})
    assert r.returncode == 0, r.stderr
    one, two, other = result(tmp_path / "one"), result(tmp_path / "two", 0), result(tmp_path / "two", 1)
    assert two["tokens"] == one["tokens"] and two["started_in_backward"] == two["buckets"] > 1
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5, atol=0)
    assert other["weights"] == two["weights"]
    for name, w in one["weights"].items():
        g, c = np.array(two["weights"][name]), np.array(w)
        if name.endswith("attn.c_attn.bias"):
            # the key bias: its gradient is 0 in exact arithmetic, so each device holds rounding
            # noise that Adam scales to steps of about lr (tests/test_cuda_train.py)
            C = c.shape[0] // 3
            assert np.abs(g[C:2 * C] - c[C:2 * C]).max() <= 2 * 3e-3 * 2, name
            g[C:2 * C] = c[C:2 * C]
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=2e-5, err_msg=name)


def test_gpu_ranks_refuse_zero1_in_one_line(capsys, tmp_path):
    from scratchgpt.cli import main
    assert main(["pretrain", "--data", str(tmp_path), "--tokenizer", str(tmp_path), "--dist", "dp", "--zero", "1",
                 "--device", "cuda", "--sim"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--zero 1" in err and "--device cuda" in err
