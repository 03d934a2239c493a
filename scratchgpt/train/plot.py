"""Training curves as a hand-written SVG (no matplotlib needed).

SVG is text: a ``<polyline>`` per series inside a panel with axes, ticks and a legend. A figure
is panels stacked vertically: (1) train and validation loss, (2) learning rate, (3) grad norm.
``scratchgpt plot RUN_DIR`` writes ``RUN_DIR/curves.svg``; any browser shows it.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

from ..errors import DataError
from .metrics import read_metrics

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of 10)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


def log_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Ticks for a log axis spanning log10 values [lo, hi], as log10 values of round numbers:
    1, 2, 5 x 10^k, or only the powers of ten when that would be too many (labels read 0.5, 1,
    2 — never 10^0.5 = 3.16228)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    out = []
    for mults in ((1, 2, 5), (1,)):
        out = [math.log10(m * 10.0 ** k) for k in range(math.floor(lo), math.ceil(hi) + 1) for m in mults
               if lo - 1e-9 <= math.log10(m * 10.0 ** k) <= hi + 1e-9]
        if len(out) <= max_ticks:
            break
    if len(out) < 2:  # a narrow range holds at most one such number: round values, linearly spaced
        out = [math.log10(t) for t in nice_ticks(10 ** lo, 10 ** hi) if t > 0 and lo <= math.log10(t) <= hi]
    return out[::math.ceil(len(out) / max_ticks)] if out else out  # very wide: every 2nd, 3rd ... decade


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.0e}"
    return f"{v:g}"


def panel(series: dict, title: str, x0: float, y0: float, w: float = 640, h: float = 220,
          xlabel: str = "step", log_y: bool = False) -> str:
    """One chart as an SVG <g>. ``series``: label -> (xs, ys); non-finite points are skipped."""
    pts = {k: [(x, y) for x, y in zip(*v) if y is not None and math.isfinite(y) and (not log_y or y > 0)]
           for k, v in series.items()}
    pts = {k: v for k, v in pts.items() if v}
    left, right, top, bottom = 64, 16, 28, 36
    out = [f'<g transform="translate({x0},{y0})">',
           f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    pw, ph = w - left - right, h - top - bottom
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    if not pts:
        out.append(f'<text x="{w / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#888">no data</text></g>')
        return "\n".join(out)
    xs = [x for v in pts.values() for x, _ in v]
    ys = [y for v in pts.values() for _, y in v]
    f = (lambda y: math.log10(y)) if log_y else (lambda y: y)
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(f(y) for y in ys), max(f(y) for y in ys)
    if xhi == xlo:
        xhi = xlo + 1
    if yhi == ylo:
        pad = abs(ylo) * 0.05 or 0.5
        ylo, yhi = ylo - pad, yhi + pad
    pad = (yhi - ylo) * 0.05
    ylo, yhi = ylo - pad, yhi + pad

    def sx(x):
        return left + (x - xlo) / (xhi - xlo) * pw

    def sy(y):
        return top + ph - (f(y) - ylo) / (yhi - ylo) * ph

    for t in nice_ticks(xlo, xhi):
        X = sx(t)
        out.append(f'<line x1="{X:.1f}" y1="{top + ph}" x2="{X:.1f}" y2="{top + ph + 4}" stroke="#444"/>')
        out.append(f'<text x="{X:.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11">{_fmt(t)}</text>')
    yt = log_ticks(ylo, yhi) if log_y else nice_ticks(ylo, yhi)
    for t in yt:
        Y = top + ph - (t - ylo) / (yhi - ylo) * ph
        label = _fmt(round(10 ** t, 12)) if log_y else _fmt(t)
        out.append(f'<line x1="{left}" y1="{Y:.1f}" x2="{left + pw}" y2="{Y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{Y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 4}" text-anchor="middle" font-size="12">{html.escape(xlabel)}</text>')
    for i, (label, v) in enumerate(pts.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in v)
        if len(v) == 1:
            X, Y = coords.split(",")
            out.append(f'<circle cx="{X}" cy="{Y}" r="3" fill="{color}"/>')
        else:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{coords}"/>')
        ly = top + 14 + 16 * i
        out.append(f'<line x1="{left + pw - 150}" y1="{ly - 4}" x2="{left + pw - 130}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw - 125}" y="{ly}" font-size="11">{html.escape(str(label))}</text>')
    out.append("</g>")
    return "\n".join(out)


def figure(panels: list[str], w: float = 640, h_each: float = 220) -> str:
    H = h_each * len(panels)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{H}" viewBox="0 0 {w} {H}" '
            f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(panels) + "\n</svg>\n")


def _column(records, key):
    rows = [(r["step"], r[key]) for r in records if key in r and isinstance(r.get(key), (int, float))]
    return [s for s, _ in rows], [float(v) for _, v in rows]


def run_figure(records: list[dict], title: str = "") -> str:
    """Loss/val-loss, learning-rate and grad-norm panels for one run's metrics."""
    w, h = 640, 220
    panels = [
        panel({"train loss": _column(records, "loss"), "val loss": _column(records, "val_loss")},
              f"{title} loss".strip(), 0, 0, w, h),
        panel({"lr": _column(records, "lr")}, "learning rate", 0, h, w, h),
        panel({"grad norm": _column(records, "grad_norm")}, "gradient norm (before clipping)", 0, 2 * h, w, h,
              log_y=True),
    ]
    return figure(panels, w, h)


def compare_figure(runs: dict, key: str = "val_loss", title: str | None = None, log_y: bool = False) -> str:
    """One panel comparing ``key`` across runs: label -> records."""
    series = {label: _column(recs, key) for label, recs in runs.items()}
    return figure([panel(series, title or key, 0, 0, log_y=log_y)])


def plot_run(run_dir, out=None) -> Path:
    """Write the curves of ``run_dir``/metrics.jsonl to ``out`` (default ``run_dir``/curves.svg)."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl" if run_dir.is_dir() else run_dir
    records = read_metrics(path)
    if not records:
        size = path.stat().st_size
        if size:
            raise DataError(f"{path}: no complete record in its {size} bytes (the last line is cut off: was the "
                            "run killed while writing it, or is this not a metrics.jsonl?)")
        raise DataError(f"{path}: empty, no step logged yet (training writes a line every --log-every steps)")
    out = Path(out) if out else path.parent / "curves.svg"
    out.write_text(run_figure(records, title=path.parent.name), encoding="utf-8")
    return out
