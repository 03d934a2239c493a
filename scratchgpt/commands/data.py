"""``scratchgpt data prepare``: load, clean, annotate, [augment], split and write a corpus;
``scratchgpt data shard``: tokenize a prepared corpus into token shards."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError
from ._flags import add_progress, add_threads, add_tokenizer


def _languages(text: str):
    """'english,chinese' -> chatterbot folders ('english', 'chinese') and codes ('en', 'zh')."""
    from ..data.language import CORPUS_LANGUAGE_CODES
    names = tuple(x.strip().lower() for x in text.split(",") if x.strip())
    if not names:
        raise ConfigError(f"--languages {text!r}: expected a comma-separated list such as english,chinese")
    by_code = {v: k for k, v in CORPUS_LANGUAGE_CODES.items() if k != "traditionalchinese"}
    folders = tuple(by_code.get(n, n) for n in names)
    codes = tuple(sorted({CORPUS_LANGUAGE_CODES.get(f, "other") for f in folders}))
    return folders, codes


def register(subparsers):
    p = subparsers.add_parser("data", help="prepare dialogue / text corpora (clean, annotate, augment, split, shard)")
    sub = p.add_subparsers(dest="data_command", metavar="<action>")

    pp = sub.add_parser("prepare", help="load -> clean -> annotate -> [augment] -> split -> JSONL + report.json")
    pp.add_argument("--preset", choices=["default", "customer_service", "none"], default=None,
                    help="default: offline pretraining corpus; customer_service: the bundled dialogues "
                         "(default: 'default' without --input, 'none' with it)")
    pp.add_argument("--input", nargs="+", default=[], metavar="PATH", help="your own files or folders")
    pp.add_argument("--test-input", nargs="+", default=[], metavar="PATH",
                    help="held-out files: every record goes to the test split")
    pp.add_argument("--format", default="auto", choices=["auto", "csv", "jsonl", "yaml", "text"],
                    help="input format (default auto: by file extension)")
    pp.add_argument("--languages", default=None, metavar="LIST",
                    help="e.g. english,chinese: chatterbot languages to load and languages to keep")
    pp.add_argument("--augment", action="store_true", help="add EDA-augmented copies of train conversations")
    pp.add_argument("--num-aug", type=int, default=2, metavar="N", help="augmented copies per conversation (with --augment)")
    pp.add_argument("--ratios", default=None, metavar="TRAIN,VAL,TEST", help="split ratios, e.g. 0.9,0.05,0.05")
    pp.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the split hash and the augmentation")
    pp.add_argument("--no-near-dedup", action="store_true", help="skip MinHash near-duplicate removal")
    pp.add_argument("--download", choices=["tinyshakespeare", "tinystories"], default=None,
                    help="also fetch a public corpus (needs a network)")
    add_tokenizer(pp, required=False, help="also write token shards with this tokenizer "
                                           "(tokenizer.json or a directory holding one)")
    pp.add_argument("--out", required=True, metavar="DIR", help="output directory (JSONL splits, report.json)")
    add_progress(pp)
    add_threads(pp)
    pp.set_defaults(func=run_prepare)

    ps = sub.add_parser("shard", help="tokenize a prepared corpus (DIR/{train,val,test}.jsonl) into shards")
    ps.add_argument("--dir", required=True, metavar="DIR", help="output folder of 'data prepare'")
    add_tokenizer(ps)
    add_progress(ps)
    add_threads(ps)
    ps.set_defaults(func=run_shard)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load_tokenizer(path):
    from ..tokenizer import load_tokenizer
    return load_tokenizer(path)


def run_prepare(args) -> int:
    from ..data.augment import AugmentConfig
    from ..data.download import download
    from ..data.pipeline import preset, prepare

    name = args.preset or ("none" if args.input or args.test_input or args.download else "default")
    cfg = preset(name)
    cfg = replace(cfg, inputs=list(cfg.inputs) + list(args.input),
                  test_inputs=list(cfg.test_inputs) + list(args.test_input), fmt=args.format, split_seed=args.seed)
    if args.languages:
        folders, codes = _languages(args.languages)
        cfg = replace(cfg, clean=replace(cfg.clean, languages=codes),
                      chatterbot_languages=folders if cfg.chatterbot_languages else ())
    if args.ratios:
        try:
            ratios = tuple(float(x) for x in args.ratios.split(","))
        except ValueError:
            raise ConfigError(f"--ratios {args.ratios!r}: expected three numbers such as 0.9,0.05,0.05") from None
        cfg = replace(cfg, ratios=ratios)
    if args.no_near_dedup:
        cfg = replace(cfg, clean=replace(cfg.clean, near_dedup=False))
    if args.augment:
        if args.num_aug < 1:
            raise ConfigError(f"--num-aug must be >= 1, got {args.num_aug}")
        cfg = replace(cfg, augment=AugmentConfig(num_aug=args.num_aug, seed=args.seed))
    out = Path(args.out)
    if args.download:
        cfg = replace(cfg, inputs=cfg.inputs + [download(args.download, out / "downloads")], write_text=True)
    tok = _load_tokenizer(args.tokenizer) if args.tokenizer else None
    report = prepare(cfg, out, tokenizer=tok, progress=args.progress)
    print(f"prepared preset={name} -> {out}")
    print(report.format())
    print(f"report written to {out / 'report.json'}")
    return 0


def run_shard(args) -> int:
    import numpy as np

    from ..data.pipeline import write_shards
    metas = write_shards(args.dir, _load_tokenizer(args.tokenizer), progress=args.progress)
    for name, meta in metas.items():
        extra = f", {meta['n_documents']} documents" if "n_documents" in meta else f", {meta['n_conversations']} conversations"
        dtype = np.dtype(meta["dtype"]).name  # "<u2" -> "uint16"
        print(f"{name}: {meta['n_tokens']} tokens (stored as {dtype}){extra}")
    return 0
