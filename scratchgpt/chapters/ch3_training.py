"""Chapter 3, sections §3.2.2 (模型构建 model building) and §3.2.3 (微调过程 fine-tuning).

Two section functions with ch3's signature ``(args, state) -> None``. They run after §3.2.1,
which leaves in ``state``: ``workdir``, ``customer_service_dir`` (prepared splits with shards)
and ``tokenizer`` (the BPE trained there). ch3.py lists them in its ``SECTIONS``.

§3.2.2 follows the tutorial's three steps: define the model (a decoder-only GPT — one causal
stack, not the two ``nn.Transformer`` of §4.3.2), initialize it (GPT-2's init, then pretraining
on unlabeled text; the tutorial's "load pretrained weights" is ``GPT.load`` of that checkpoint),
and tune its hyper-parameters (here: measured loss at init vs the ln V of a uniform guess).
§3.2.3 then does data preparation (chat template -> ids + assistant-only mask), model loading,
training (SFT) and evaluation on the held-out test conversations.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..train.config import ModelConfig, TrainConfig


def _sizes(quick: bool):
    if quick:
        return (ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=96),
                TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=5, max_steps=30, batch_size=8, seq_len=96,
                            eval_every=15, eval_batches=2, progress=False),
                TrainConfig(lr=2e-3, min_lr=2e-4, warmup_steps=5, max_steps=30, batch_size=8, seq_len=96,
                            weight_decay=0.0, eval_every=15, eval_batches=2, progress=False), 6)
    return (ModelConfig(n_layer=3, n_head=4, n_embd=96, block_size=128),
            TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=20, max_steps=300, batch_size=16, seq_len=128,
                        eval_every=100, eval_batches=4, progress=True),
            TrainConfig(lr=1.5e-3, min_lr=1.5e-4, warmup_steps=20, max_steps=300, batch_size=16, seq_len=128,
                        weight_decay=0.0, eval_every=100, eval_batches=4, progress=True), 40)


def section_model(args, state) -> None:
    """§3.2.2: define, initialize (pretrain) and check a GPT on the bundled corpus."""
    from ..autograd import no_grad
    from ..models import GPT, GPTConfig
    from ..train.runs import pretrain
    if "customer_service_dir" not in state or "tokenizer" not in state:
        raise RuntimeError("§3.2.2 needs §3.2.1's data and tokenizer in state (ch3.main runs it first)")
    print("\n== §3.2.2 模型构建 / model building ==")
    work = Path(state["workdir"])
    data_dir = Path(state["customer_service_dir"])
    tok = state["tokenizer"]
    tok_path = work / "tokenizer.json"
    tok.save(str(tok_path))
    model_cfg, pre_cfg, _, _ = _sizes(args.quick)
    # (a) model definition
    gcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=model_cfg.block_size, n_layer=model_cfg.n_layer,
                     n_head=model_cfg.n_head, n_embd=model_cfg.n_embd)
    model = GPT(gcfg, seed=0)
    n = model.num_parameters()
    print(f"(a) model definition: GPT {gcfg.n_layer} layers x {gcfg.n_embd} wide, {gcfg.n_head} heads, context "
          f"{gcfg.block_size}, vocab {gcfg.vocab_size}: {n:,} parameters (a single causal stack)")
    # (b) initialization: at GPT-2's init the model should be close to a uniform guess
    from ..data.shards import load_pretrain_shard
    toks, _ = load_pretrain_shard(data_dir / "shards", "pretrain_val", tok)
    T = min(64, len(toks) - 1)
    x = np.asarray(toks[:T], dtype=np.int64)[None]
    y = np.asarray(toks[1:T + 1], dtype=np.int64)[None]
    with no_grad():
        _, loss0 = model(x, y)
    print(f"(b) initialization: loss at init {loss0.item():.3f} vs ln(V) = {math.log(gcfg.vocab_size):.3f} for a "
          "uniform guess — small init weights make every token about equally likely, as they should")
    # (c) pretraining gives the initial weights that fine-tuning starts from
    t0 = time.perf_counter()
    res = pretrain(data_dir, tok_path, work / "ch3_pretrain", model_cfg, pre_cfg, log=lambda s: None)
    print(f"(c) pretraining on the unlabeled text of the train split: {res.steps} steps in "
          f"{time.perf_counter() - t0:.1f}s, loss {res.history[0]['loss']:.3f} -> {res.final_loss:.3f}, "
          f"val loss {res.last_val_loss:.3f} (perplexity {math.exp(res.last_val_loss):.1f})")
    print(f"    saved to {work / 'ch3_pretrain' / 'model'} (config.json + model.safetensors + tokenizer.json); "
          "this is the 'pretrained model' §3.2.3 loads")
    state["base_model_dir"] = str(work / "ch3_pretrain" / "model")


def section_finetune(args, state) -> None:
    """§3.2.3: data preparation, model loading, training, evaluation."""
    from ..tokenizer.chat_template import render_chat
    from ..train.runs import evaluate_model, load_model_dir, sft
    print("\n== §3.2.3 微调过程 / fine-tuning ==")
    work = Path(state["workdir"])
    data_dir = Path(state["customer_service_dir"])
    if "base_model_dir" not in state:
        section_model(args, state)
    _, _, sft_cfg, n_eval = _sizes(args.quick)
    tok = state["tokenizer"]
    # (a) data preparation: a conversation -> token ids + loss mask
    msgs = [{"role": "user", "content": "Where is order SG-123456?"},
            {"role": "assistant", "content": "Order SG-123456 has shipped."}]
    ids, mask = render_chat(tok, msgs)
    shown = "".join(f"[{tok.decode([i])}]" if m else tok.decode([i]) for i, m in zip(ids, mask))
    print(f"(a) data preparation: chat template -> {len(ids)} ids, {sum(mask)} of them trained (in [brackets]):")
    print(f"    {shown}")
    # (b) model loading + (c) training
    base, _ = load_model_dir(state["base_model_dir"])
    print(f"(b) model loading: GPT.load({state['base_model_dir']}) -> {base.num_parameters():,} parameters")
    t0 = time.perf_counter()
    res = sft(data_dir, state["base_model_dir"], work / "ch3_sft", sft_cfg, log=lambda s: None)
    print(f"(c) training (SFT, loss on assistant tokens only): {res.steps} steps in {time.perf_counter() - t0:.1f}s, "
          f"train loss {res.history[0]['loss']:.3f} -> {res.final_loss:.3f}, val loss {res.last_val_loss:.3f}")
    # (d) evaluation
    ev = evaluate_model(res.model, res.tokenizer, data_dir, seq_len=sft_cfg.seq_len, limit=n_eval,
                        max_new_tokens=32, progress=False)
    print(f"(d) evaluation on {ev['n_conversations']} held-out test conversations: val loss {ev['val_loss']:.3f}, "
          f"perplexity {ev['perplexity']:.1f}, task accuracy {ev['task_accuracy']:.0%}, ROUGE-L {ev['rouge_l']:.3f}")
    ex = (ev["examples_ok"] + ev["examples_failed"])[0]
    print(f"    User: {ex['prompt'][-1]['content']}\n    Bot:  {ex['reply']}\n    (reference: {ex['reference']})")
    state["sft_eval"] = ev


SECTIONS = [("3.2.2", "模型构建 model building", section_model),
            ("3.2.3", "微调过程 fine-tuning", section_finetune)]
