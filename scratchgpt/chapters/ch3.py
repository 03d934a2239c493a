"""Chapter 3 — core algorithm, step by step. Section §3.2.1: data preprocessing (数据预处理).

    python -m scratchgpt.chapters.ch3            # all sections written so far
    python -m scratchgpt.chapters.ch3 --quick    # smaller tokenizer; what the tests run

Guide: chapters/ch3.md. Later sections (§3.2.2 model building, §3.2.3 fine-tuning, ...) are
added to ``SECTIONS``; each is a function ``(args, state) -> None`` that prints what it
computed and may leave results in ``state`` for the next section.
"""
from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from ..commands._flags import chapter_args, chapter_parser, kept_note, run_chapter
from ..data.augment import AugmentConfig, augment_conversation
from ..data.clean import CleanConfig
from ..data.pipeline import PrepareConfig, preset, prepare, read_jsonl, write_shards
from ..data.records import Conversation
from .ch3_training import SECTIONS as TRAINING_SECTIONS

# A deliberately messy file in the tutorial's CSV format: what real exports look like.
MESSY_CSV = (
    "context,reply,topic\n"
    "Where is my order A12345?,Order A12345 ships today.,orders\n"
    "Where is my order A12345?,Order A12345 ships today.,orders\n"          # exact duplicate
    "where is my order  A12345?,Order A12345 ships today.,orders\n"         # same after normalization
    "Where is my order A12345?,Order A12345 ships today!,orders\n"          # near duplicate (1 char)
    "Can I return the kettle?,NaN,returns_refunds\n"                       # NA reply
    ",Hello! How can I help?,small_talk\n"                                 # empty context
    "\"broken \"quote,oops,orders\n"                                       # bad CSV quoting
    "I forgot my password\u200b\x07,I sent a reset link to your e-mail.,\n"  # control chars, no topic
    "我的ＡＢＣ订单到哪了？,订单已发货。,\n"                                 # full-width letters
    "too,many,fields,here\n"                                               # wrong field count
)


def section_data(args, state) -> None:
    print("== §3.2.1 数据预处理 / data preprocessing ==")
    work = Path(state["workdir"])

    # (a) the tutorial's snippet on the messy file, emulated without pandas
    messy = work / "messy.csv"
    messy.write_text(MESSY_CSV, encoding="utf-8")
    with open(messy, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]   # lenient parsing, like pandas' C parser
    bad = [i + 2 for i, r in enumerate(rows) if len(r) != 3]
    rows = [r for r in rows if len(r) == 3]
    na = {"", "nan", "na", "n/a", "null", "none"}
    kept = [r for r in rows if r[0].strip().lower() not in na and r[1].strip().lower() not in na]
    print(f"(a) the tutorial's snippet: pd.read_csv stops at line(s) {bad} (wrong field count; pandas' "
          f"default is to raise). Without them, dropna(subset=['context','reply']) keeps {len(kept)} of "
          f"{len(rows)} rows, {len(kept) - len({tuple(r[:2]) for r in kept})} exact duplicate(s) and every "
          "near-duplicate stay, control characters stay, and the 'expanded' column is built then dropped: "
          "0 rows added by its 'augmentation'.")

    # (b) our pipeline on the same file: every drop has a reason, malformed rows a file:line
    cfg = PrepareConfig(inputs=[messy], ratios=(1.0, 0.0, 0.0), clean=CleanConfig(near_min_chars=20))
    rep = prepare(cfg, work / "messy_out", progress=False)
    print("(b) scratchgpt.data.prepare on the same file:")
    print("    " + rep.format().replace("\n", "\n    "))

    # (c) the bundled customer-service data: clean, annotate, split (test.csv held out)
    t0 = time.perf_counter()
    out = work / "customer_service"
    rep = prepare(preset("customer_service"), out, progress=False)
    dt = time.perf_counter() - t0
    print(f"(c) bundled customer-service data -> {out} in {dt:.2f} s")
    print("    " + rep.format().replace("\n", "\n    "))
    splits = {s: list(read_jsonl(out / f"{s}.jsonl")) for s in ("train", "val", "test")}
    leaks = sum(len({c.split_key for c in splits[a]} & {c.split_key for c in splits[b]})
                for a, b in (("train", "val"), ("train", "test"), ("val", "test")))
    print(f"    conversations per split: " + ", ".join(f"{s} {len(v)}" for s, v in splits.items())
          + f"; ids found in two splits: {leaks}")
    state["customer_service_dir"] = str(out)

    # (d) augmentation: one conversation, its seeded EDA copies
    src: Conversation = next(c for c in splits["train"] if c.language == "en" and len(c.messages[0].content) > 40)
    copies = augment_conversation(src, AugmentConfig(num_aug=3, alpha_sr=0.2, alpha_ri=0.2, alpha_rs=0.2, p_rd=0.2))
    print(f"(d) EDA augmentation of {src.id} (user turn only; slots {src.meta.get('slots', {})} protected):")
    print(f"    {'original':<19}: {src.messages[0].content}")
    for c in copies:
        print(f"    {c.meta['augment']:<19}: {c.messages[0].content}")
    rep_aug = prepare(preset("customer_service", augment=AugmentConfig(num_aug=2)), work / "cs_aug", progress=False)
    print(f"    with --augment the train split grows to {rep_aug.counts['records per split']['train']} "
          f"conversations ({rep_aug.steps['augment'].kept} marked copies, all in train)")

    # (e) tokenize and shard: a small BPE trained on the train split only
    from ..tokenizer import BPETokenizer
    from ..tokenizer.special import CHAT_SPECIAL_TOKENS
    vocab = 512 if args.quick else 2048
    train_texts = ["\n".join(m.content for m in c.messages) for c in splits["train"]]
    t0 = time.perf_counter()
    tok = BPETokenizer.train(train_texts, vocab, special_tokens=CHAT_SPECIAL_TOKENS)
    metas = write_shards(out, tok)
    dt = time.perf_counter() - t0
    sft = metas["sft_train"]
    from ..data.shards import SFTShard
    shard = SFTShard(out / "shards", "sft_train", tok=tok)
    mask_frac = float(np.asarray(shard.mask).mean())
    print(f"(e) BPE vocab {tok.vocab_size} trained on the train split + shards in {dt:.2f} s:")
    for name, meta in metas.items():
        print(f"    {name:<16} {meta['n_tokens']:>7} tokens ({meta['dtype']})")
    print(f"    SFT loss mask covers {mask_frac:.1%} of the {sft['n_tokens']} train tokens (assistant replies + <|end|>)")
    ids, mask = shard[0]
    print(f"    conversation 0 rendered: {tok.decode(np.asarray(ids).tolist())[:160]!r}")
    state["tokenizer"] = tok


TINY_CORPUS = ["where is my order", "where is my order", "my order is late", "where is the refund",
               "我的订单在哪里", "我的订单在哪里", "退款在哪里"]


def section_text_to_ids(args, state) -> None:
    """Text -> ids: a BPE merge learned step by step, then the fast tokenizers on real text."""
    from ..data.loaders import load_records
    from ..data.report import Report
    from .tokenization_walkthrough import compare_fast_tokenizers, show_merges_step_by_step

    print("\n== §3.2.1 (cont.) text -> token ids: byte-level BPE ==")
    print("(a) the readable reference (scratchgpt/tokenizer/bpe_ref.py) learning merges on a tiny corpus:")
    show_merges_step_by_step(TINY_CORPUS, 4 if args.quick else 8, print_fn=lambda line: print("    " + line))
    from ..datasets import customer_service_file
    csv_path = customer_service_file("train")
    en, zh = [], []
    for conv in load_records([csv_path], Report()):
        (zh if conv.language == "zh" else en).extend(m.content for m in conv.messages)
    n = 400 if args.quick else 3000
    print(f"(b) the fast tokenizers on {min(n, len(en))} English and {min(n, len(zh))} Chinese turns of the "
          "bundled dialogues (same vocab size), side by side:")
    rows = compare_fast_tokenizers("\n".join(en[:n]), "\n".join(zh[:n]), vocab_size=600 if args.quick else 2000,
                                   print_fn=lambda line: print("    " + line))
    state["tokenizer_comparison"] = rows


SECTIONS = [("3.2.1", "数据预处理 data preprocessing", section_data),
            ("3.2.1b", "text -> ids", section_text_to_ids)]
SECTIONS += TRAINING_SECTIONS
# sections that build on §3.2.1's prepared data and tokenizer: run alone, they get §3.2.1 first
NEEDS_DATA = {number for number, _, _ in TRAINING_SECTIONS}


def _deploy_sections():
    from .ch3_compress import SECTIONS as compress
    from .ch3_deploy import SECTIONS as deploy
    return deploy + compress


SECTIONS += _deploy_sections()


def main(argv=None) -> int:
    ap = chapter_parser("ch3", "Chapter 3: core algorithm step by step", quick_help="smaller settings (seconds)",
                        out_help="keep the prepared data and models here (default: a temporary folder, "
                                 "deleted at the end)")
    ap.add_argument("--section", default=None, choices=[number for number, _, _ in SECTIONS],
                    help="run only this section")
    args = chapter_args(ap, argv)
    with tempfile.TemporaryDirectory() as tmp:
        state = {"workdir": args.out or tmp}
        Path(state["workdir"]).mkdir(parents=True, exist_ok=True)
        for number, title, fn in SECTIONS:
            if args.section in (None, number):
                if number in NEEDS_DATA and "tokenizer" not in state:
                    section_data(args, state)
                fn(args, state)
        print(f"\n({kept_note(args.out, 'the prepared data and models printed above')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch3"))
