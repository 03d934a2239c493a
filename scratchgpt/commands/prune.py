"""``scratchgpt prune``: magnitude pruning, or structured pruning of heads / MLP neurons."""
from __future__ import annotations

from ._flags import add_progress, add_threads
from .quantize import _add_report_flags, check_out, report_data


def register(sub) -> None:
    p = sub.add_parser("prune", help="prune a model: magnitude (unstructured), attention heads or MLP neurons",
                       description="magnitude: zero the smallest block matmul weights (exact target sparsity; "
                                   "same shapes). heads / neurons: keep the most important attention heads / MLP "
                                   "neurons in every layer and write a smaller dense model. Optional short "
                                   "recovery fine-tuning on the SFT data.")
    p.add_argument("model", metavar="MODEL_DIR", help="float32 model directory (a LoRA directory is merged first)")
    p.add_argument("--method", choices=("magnitude", "heads", "neurons"), required=True,
                   help="magnitude: zero the smallest weights; heads / neurons: remove whole attention heads or "
                        "MLP neurons (a smaller dense model)")
    p.add_argument("--sparsity", type=float, required=True, metavar="S",
                   help="fraction to remove, in [0, 1): of the weights (magnitude), of the heads or neurons "
                        "of every layer (rounded to whole heads/neurons)")
    p.add_argument("--scope", choices=("global", "layer"), default="global",
                   help="magnitude: one threshold over all matrices (default) or the same fraction per matrix")
    p.add_argument("--importance", choices=("activation", "weight"), default=None,
                   help="heads/neurons: score by mean output on --data's validation conversations "
                        "(activation; the default when there is data) or by weight norms")
    p.add_argument("--recover-steps", type=int, default=0, metavar="N",
                   help="fine-tune N steps on --data's SFT shards after pruning (magnitude keeps its zeros)")
    p.add_argument("--lr", type=float, default=1e-3, help="recovery learning rate (default 1e-3)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the pruned model")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    _add_report_flags(p)
    add_progress(p)
    add_threads(p)
    p.set_defaults(func=run)


def _calibration(model, tok, data_dir, n: int = 16):
    """Token ids (B, T) of the first validation conversations, for activation importance."""
    import numpy as np

    from ..train.runs import sft_examples
    shard = sft_examples(data_dir, "val", tok)
    T = model.config.block_size
    rows = []
    for i in range(min(n, len(shard))):
        ids = np.asarray(shard[i][0])[:T]                             # (ids, loss mask) pairs
        rows.append(np.pad(ids, (0, T - len(ids)), constant_values=tok.special_tokens.get("<|pad|>", 0)))
    return np.stack(rows)


def run(args) -> int:
    from ..errors import ConfigError
    from ..infer import prune
    from ..infer.load import load_gpt_dir
    from ..nn.peft import merge_lora
    if args.recover_steps < 0:
        raise ConfigError(f"--recover-steps must be >= 0, got {args.recover_steps}")
    out = check_out(args.out, args.overwrite, args.model)
    data = report_data(args) if args.report else None
    train_data = args.data or data
    if args.recover_steps and train_data is None:
        from .quantize import demo_data_dir
        train_data = demo_data_dir(args.model)
        if train_data is None:
            raise ConfigError("--recover-steps needs --data DIR (a prepared dialogue directory)")
    model, tok = load_gpt_dir(args.model)
    merge_lora(model)
    model.eval()
    base = model
    masks = None
    if args.method == "magnitude":
        from ..models import GPT
        pruned = GPT(model.config, seed=0)
        for (_, p), (_, q) in zip(pruned.named_parameters(), model.named_parameters()):
            p.data[...] = q.data
        masks = prune.magnitude_prune(pruned, args.sparsity, args.scope)
        what = f"{prune.sparsity_of(pruned):.1%} of the block matmul weights are zero ({args.scope})"
    else:
        importance = args.importance or ("activation" if train_data else "weight")
        if importance == "activation" and train_data is None:
            raise ConfigError("--importance activation needs --data DIR")
        calib = _calibration(model, tok, train_data) if importance == "activation" else None
        fn = prune.prune_heads if args.method == "heads" else prune.prune_neurons
        pruned, kept = fn(model, args.sparsity, calib)
        c = pruned.config
        what = (f"{c.n_head} of {model.config.n_head} heads kept per layer" if args.method == "heads" else
                f"{c.mlp_dim} of {model.config.mlp_dim} MLP neurons kept per layer") + \
            f" ({importance} importance); {pruned.num_parameters():,} of {model.num_parameters():,} parameters"
    if args.recover_steps:
        prune.recover(pruned, tok, train_data, args.recover_steps, out / "recovery", masks=masks, lr=args.lr,
                      progress=args.progress)
        what += f"; {args.recover_steps} recovery steps"
    pruned.save(out)
    tok.save(str(out / "tokenizer.json"))
    print(f"{args.method} pruning: {what}; written to {out}")
    if args.report:
        from ..infer.report import report
        _, table = report(args.model, out, f"{args.method} {args.sparsity:g}", base, pruned, pruned, tok, data,
                          args.limit, progress=args.progress)
        print(table)
        print(f"report: {out / 'report.json'}")
    print(f"next: scratchgpt generate {out} --prompt \"...\"")
    return 0
