"""Render layer: matplotlib plots (Agg backend) for ``memdesc compare`` and ``memdesc sweep``
reports. matplotlib is optional (the ``plot`` extra) and imported only when a plot is
drawn; without it no plot is made and the reports carry text only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memdesc.analysis.compare import FRAG_ORDER, key_metrics
from memdesc.mm.mmzone import NR_PAGE_ORDERS

COMPONENT_ORDER = ("memmap", "folio descriptors", "anon_folio descriptors", "slab descriptors",
                   "ptdesc descriptors", "struct buddy", "radix nodes", "other")


def _plt() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_metadata(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """Stacked bars: metadata bytes by component per design (live at the end)."""
    plt = _plt()
    ok = [r for r in results if "metadata" in r]
    km = [key_metrics(r) for r in ok]
    labels = [k["label"] for k in km]
    comps = []
    for k in km:
        for c in k["components"]:
            if c not in comps:
                comps.append(c)
    comps = ["memmap"] + sorted(comps, key=lambda c: COMPONENT_ORDER.index(c) if c in COMPONENT_ORDER else 99)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(labels) + 4.5), 4.8))
    bottom = [0.0] * len(km)
    cmap = plt.get_cmap("tab10")
    for i, c in enumerate(comps):
        vals = [(k["memmap_bytes"] if c == "memmap" else k["components"].get(c, 0)) / (1 << 20) for k in km]
        ax.bar(labels, vals, bottom=bottom, label=c, color=cmap(i % 10))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    for x, (k, b) in enumerate(zip(km, bottom, strict=True)):
        ax.annotate(f"{k['metadata_pct_of_ram']:.2f} %\n{k['struct_page_bytes']} B/page", (x, b),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(bottom + [1e-9]) * 1.25)
    ax.set_ylabel("MiB")
    ax.set_title("struct page / memdesc metadata by component (end of run; label: % of RAM)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return _save(fig, path)


def _with_samples(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r.get("samples")]


def _tidy_x(ax: Any) -> None:
    from matplotlib.ticker import EngFormatter, MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def plot_free_by_order(results: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Free pages by order over time, one panel per design."""
    rs = _with_samples(results)
    if not rs:
        return None
    plt = _plt()
    n = len(rs)
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, r in zip(axes.flat, rs, strict=False):
        xs = [s["ops"] for s in r["samples"]]
        ys = [[s["free_blocks_per_order"][o] << o for s in r["samples"]] for o in range(NR_PAGE_ORDERS)]
        ax.stackplot(xs, ys, labels=[f"order {o}" for o in range(NR_PAGE_ORDERS)],
                     colors=[cmap(o / (NR_PAGE_ORDERS - 1)) for o in range(NR_PAGE_ORDERS)])
        ax.set_title(r["label"], fontsize=10)
        ax.set_xlabel("operations")
        _tidy_x(ax)
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0][0].set_ylabel("free pages")
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h[::-1], lab[::-1], loc="center right", fontsize=7)
    fig.suptitle("free pages by block order over time")
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fragmentation(results: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Unusable free space index and extfrag index at order 9 over time, and dynamic metadata."""
    rs = _with_samples(results)
    if not rs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in rs:
        xs = [s["ops"] for s in r["samples"]]
        axes[0].plot(xs, [s.get(f"unusable_index_{FRAG_ORDER}", 0) for s in r["samples"]], label=r["label"])
        axes[1].plot(xs, [s.get(f"extfrag_index_{FRAG_ORDER}", 0) for s in r["samples"]], label=r["label"])
        axes[2].plot(xs, [s.get("dynamic_metadata_bytes", 0) / (1 << 20) for s in r["samples"]], label=r["label"])
    axes[0].set_title(f"unusable free space index, order {FRAG_ORDER}")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_title(f"extfrag (fragmentation) index, order {FRAG_ORDER}\n"
                      f"(-1: a free order-{FRAG_ORDER} block exists)", fontsize=10)
    axes[1].set_ylim(-1.05, 1.05)
    axes[2].set_title("dynamic metadata (MiB)")
    for ax in axes:
        ax.set_xlabel("operations")
        ax.grid(alpha=0.3)
        _tidy_x(ax)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_success(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: high-order, order-9, contiguous (CMA) and offline success rates."""
    plt = _plt()
    km = [key_metrics(r) for r in results if "metadata" in r]
    cats = [("order>=3", lambda k: k["high_order_rate"]), (f"order {FRAG_ORDER}", lambda k: k["order9_rate"]),
            ("cma_alloc", lambda k: k["cma_succeeded"] / k["cma_attempted"] if k["cma_attempted"] else None),
            ("offline", lambda k: k["offline_succeeded"] / k["offline_attempted"] if k["offline_attempted"] else None)]
    cats = [c for c in cats if any(c[1](k) is not None for k in km)]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * max(1, len(cats)) + 0.5 * len(km) + 2), 4))
    width = 0.8 / max(1, len(km))
    for i, k in enumerate(km):
        vals = [c[1](k) for c in cats]
        xs = [j + i * width for j in range(len(cats))]
        ax.bar(xs, [100 * v if v is not None else 0 for v in vals], width, label=k["label"])
        for x, v in zip(xs, vals, strict=True):
            ax.annotate("n/a" if v is None else f"{100 * v:.0f}", (x, 100 * (v or 0)), ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], [c[0] for c in cats])
    ax.set_ylim(0, 115)
    ax.set_ylabel("success %")
    ax.set_title("allocation success: high-order, contiguous (CMA), offline")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def make_plots(results: Sequence[dict[str, Any]], out: Path) -> list[tuple[str, Path]]:
    """[(caption, png path)]; empty without matplotlib."""
    try:
        _plt()
    except ImportError:
        return []
    plots = [("Metadata by component", plot_metadata(results, out / "metadata.png")),
             ("Free pages by order over time", plot_free_by_order(results, out / "free_by_order.png")),
             ("Fragmentation over time", plot_fragmentation(results, out / "fragmentation.png")),
             ("High-order, contiguous and offline success", plot_success(results, out / "success.png"))]
    return [(c, p) for c, p in plots if p is not None]


def plot_sweep(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars: peak metadata % of RAM per design, one group per machine (mean over
    workloads and seeds); None without matplotlib or rows with metadata."""
    try:
        plt = _plt()
    except ImportError:
        return None
    ok = [r for r in rows if "peak_metadata_pct_of_ram" in r]
    if not ok:
        return None
    machines = list(dict.fromkeys(r["machine"] for r in ok))
    designs = list(dict.fromkeys(r["design"] for r in ok))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(machines) * max(1, len(designs)) / 3 + 4), 4.5))
    width = 0.8 / len(designs)
    for i, d in enumerate(designs):
        vals = []
        for m in machines:
            xs = [r["peak_metadata_pct_of_ram"] for r in ok if r["design"] == d and r["machine"] == m]
            vals.append(sum(xs) / len(xs) if xs else 0.0)
        ax.bar([k + i * width for k in range(len(machines))], vals, width, label=d)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(machines))], machines, fontsize=8)
    ax.set_ylabel("peak metadata, % of RAM")
    ax.set_title("struct page + dynamic metadata by design and machine (mean over workloads, seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


__all__ = ["make_plots", "plot_metadata", "plot_free_by_order", "plot_fragmentation", "plot_success", "plot_sweep"]
