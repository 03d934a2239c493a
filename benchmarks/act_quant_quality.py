"""What int8 activations (QuantConfig.act_quant) cost in quality, measured through the engine.

    PYTHONPATH=. python benchmarks/act_quant_quality.py [MODEL_DIR] [--data DIR] [--limit N] [--accuracy]

The compression report's val perplexity runs the training-side code on the dequantized float twin
(QuantizedGPT.simulated_gpt), which has float32 activations, so it cannot see act_quant. Here every
validation conversation is teacher-forced through the engine's decode path instead, one row per
step (DecoderRunner.forward with R = 1: exactly the kernels `generate` and `chat` run), for
float32, int8/int4 weight-only (``wo``) and int8/int4 with int8 activations. Printed per variant:
    val ppl        exp(mean cross-entropy of the assistant tokens), decode-path logits
    logit rel RMS  RMS(logits - float32 logits) / RMS(float32 logits) over all those positions
    greedy agree   share of positions where the argmax equals float32's
    task acc       (--accuracy) train/evaluate.py's task accuracy through the engine (slow)
Default model: the demo's runs/final/sft/model with its data next to it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = (("float32", None, None), ("int8 wo", 8, False), ("int8", 8, True), ("int4 wo", 4, False), ("int4", 4, True))


def decode_logits(model, sequences):
    """Per sequence: (T-1, V) logits of positions 0..T-2, fed one token per engine step."""
    from scratchgpt.infer.forward import DecoderRunner
    from scratchgpt.infer.kv_cache import KVCache
    from scratchgpt.infer.weights import as_decoder_weights
    w = as_decoder_weights(model)
    cache = KVCache(w.n_layer, 1, w.n_head, w.block_size, w.head_dim, w.prefixes, w.prefix_len)
    runner = DecoderRunner(w, cache, max_rows=8, max_last=1)
    zero = np.zeros(1, np.int64)
    out = []
    for ids in sequences:
        rows = []
        for p, t in enumerate(ids[:-1]):
            rows.append(runner.forward(np.array([t], np.int64), np.array([p], np.int64), zero, zero)[0].copy())
        out.append(np.array(rows))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="/work/runs/final/sft/model")
    ap.add_argument("--data", default=None)
    ap.add_argument("--limit", type=int, default=60, help="validation conversations (default 60)")
    ap.add_argument("--accuracy", action="store_true", help="also the task accuracy (engine, greedy)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from scratchgpt.commands.quantize import demo_data_dir
    from scratchgpt.infer.load import load_gpt_dir
    from scratchgpt.infer.quantize import QuantConfig, quantize_gpt
    from scratchgpt.infer.report import task_accuracy
    from scratchgpt.train.runs import sft_examples
    model, tok = load_gpt_dir(args.model)
    model.eval()
    data = args.data or demo_data_dir(args.model)
    shard = sft_examples(data, "val", tok)
    T = model.config.block_size
    seqs, masks = [], []
    for i in range(min(args.limit, len(shard))):
        ids, mask = shard[i]
        seqs.append(np.asarray(ids[:T], np.int64))
        masks.append(np.asarray(mask[:T], bool))
    rows, ref = [], None
    for name, bits, act in VARIANTS:
        m = model if bits is None else quantize_gpt(model, QuantConfig(bits=bits, act_quant=act))
        t0 = time.perf_counter()
        lg = decode_logits(m, seqs)
        nll, n = 0.0, 0
        for lgs, ids, mask in zip(lg, seqs, masks):
            z = lgs.astype(np.float64)
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            tgt = ids[1:]
            sel = mask[1:]
            nll -= logp[np.arange(len(tgt)), tgt][sel].sum()
            n += int(sel.sum())
        allg = np.concatenate(lg).astype(np.float64)
        row = {"variant": name, "val_ppl": math.exp(nll / n), "tokens": n, "positions": len(allg),
               "seconds": time.perf_counter() - t0}
        if ref is None:
            ref = allg
        else:
            row["logit_rel_rms"] = math.sqrt(np.mean((allg - ref) ** 2) / np.mean(ref ** 2))
            row["greedy_agree"] = float(np.mean(allg.argmax(1) == ref.argmax(1)))
        if args.accuracy:
            row.update(task_accuracy(m, tok, data))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| variant | val ppl (decode path) | logit rel RMS vs float32 | greedy agree | task acc |")
    print("|---|---|---|---|---|")
    for r in rows:
        acc = f"{r['task_accuracy']:.1%}" if "task_accuracy" in r else "-"
        print(f"| {r['variant']} | {r['val_ppl']:.4f} | {r.get('logit_rel_rms', 0):.4f} | "
              f"{r.get('greedy_agree', 1):.4f} | {acc} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
