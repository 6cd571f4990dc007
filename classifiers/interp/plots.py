"""PNG figures for the studies and diagnostics (matplotlib's Agg canvas on a ``Figure``
object: no global backend switch, safe inside a process that also uses pyplot)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=110, layout="constrained")


def _save(fig: Any, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path)
    return path


def _wrap(text: str, width: int = 60, lines: int = 4) -> str:
    out = textwrap.wrap(text.replace("\n", " ⏎ "), width)[:lines]
    return "\n".join(out) if out else "(empty)"


def sweep_png(path: str | Path, feature: int, values: Sequence[float | None], kls: Sequence[float],
              texts: Sequence[str], prompt: str) -> Path:
    """Left: KL of the next-token distribution vs unclamped, per value (None: the
    unchanged baseline). Right: the continuation at each value, one row per value."""
    labels = ["base" if v is None else f"{v:g}" for v in values]
    fig = _figure(13, 1.2 + 0.9 * len(values))
    ax, tx = fig.subplots(1, 2, width_ratios=[1, 2.2])
    ax.plot(range(len(values)), kls, marker="o")
    ax.set_xticks(range(len(values)), labels)
    ax.set_xlabel(f"clamp value of feature {feature}")
    ax.set_ylabel("KL(clamped || base), next token")
    ax.set_title(_wrap(prompt, 50, 2), fontsize=8)
    tx.axis("off")
    n = len(values)
    for i, (v, t) in enumerate(zip(labels, texts, strict=True)):
        y = 1 - (i + 0.5) / n
        tx.text(0.0, y, v, fontsize=9, fontweight="bold", va="center")
        tx.text(0.08, y, _wrap(t, 90, 3), fontsize=7.5, va="center", family="monospace")
    return _save(fig, path)


def ablation_png(path: str | Path, labels: Sequence[str], kls: Sequence[float], changed: Sequence[bool],
                 title: str) -> Path:
    fig = _figure(10, 1.5 + 0.35 * len(labels))
    ax = fig.subplots()
    colors = ["tab:red" if c else "tab:gray" for c in changed]
    ax.barh(range(len(labels)), kls, color=colors)
    ax.set_yticks(range(len(labels)), [_wrap(s, 50, 1) for s in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("KL(ablated || normal), first response token (red: greedy output changed)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def specificity_png(path: str | Path, title: str, scores: dict[str, Sequence[float]], ppl: dict[str, float]) -> Path:
    """Left: probe score per concept prompt, base vs intervention. Right: neutral perplexity."""
    fig = _figure(10, 4)
    ax, bx = fig.subplots(1, 2, width_ratios=[2.5, 1])
    names = list(scores)
    n = len(next(iter(scores.values()))) if scores else 0
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        ax.bar([i + j * width for i in range(n)], scores[name], width=width, label=name)
    ax.set_xlabel("concept-eliciting prompt")
    ax.set_ylabel("probe score of the continuation")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    bx.bar(list(ppl), list(ppl.values()), color=["tab:gray", "tab:red", "tab:blue"][: len(ppl)])
    bx.set_ylabel("perplexity on neutral text")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def heatmap_png(path: str | Path, matrix: Sequence[Sequence[float]], row_labels: Sequence[str],
                col_labels: Sequence[str], title: str, cbar: str, cmap: str = "RdBu_r",
                center: bool = True) -> Path:
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    fig = _figure(max(6, 0.45 * len(col_labels) + 2), max(4, 0.22 * len(row_labels) + 1.5))
    ax = fig.subplots()
    lim = float(np.nanmax(np.abs(m))) if m.size else 1.0
    kw = {"vmin": -lim, "vmax": lim} if center else {}
    im = ax.imshow(m, aspect="auto", cmap=cmap, **kw)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=cbar)
    return _save(fig, path)


_METHOD_COLORS = {"base": "tab:gray", "caa": "tab:blue", "lstsq": "tab:orange", "logistic": "tab:green"}


def compare_bars_png(path: str | Path, title: str, metrics: dict[str, dict[str, float]],
                     log_panels: Sequence[str] = ()) -> Path:
    """One panel per metric, one bar per method (colour by the label's first word, e.g.
    ``caa x1``); panels named in ``log_panels`` use a log y axis (perplexities)."""
    names = list(metrics)
    fig = _figure(4.5 * max(len(names), 1), 3.8)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=False):
        vals = metrics[name]
        colors = [_METHOD_COLORS.get(k.split()[0], "tab:purple") for k in vals]
        ax.bar(range(len(vals)), list(vals.values()), color=colors)
        ax.set_xticks(range(len(vals)), list(vals), rotation=35, fontsize=7, ha="right")
        if name in log_panels:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
