"""One plotting style for every figure of the toolkit; figures are saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["new_figure", "save", "save_result_figure", "result_title", "COLORS"]

COLORS = plt.get_cmap("tab10").colors

_STYLE = {
    "figure.dpi": 120,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 7,
    "legend.frameon": False,
}


def new_figure(ncols: int = 1, width: float = 5.5, height: float = 4.0):
    """A figure and its axes in the toolkit's style."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    for ax in axes.ravel():
        ax.grid(True, which="major", alpha=0.3)
    return fig, axes.ravel()


def save(fig, out_dir: Path, stem: str) -> list[Path]:
    """Write out_dir/stem.png and out_dir/stem.pdf; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    with plt.rc_context(_STYLE):
        fig.tight_layout()
        for path in paths:
            fig.savefig(path, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def result_title(result, text: str) -> str:
    """'text: paper <verdict>', with the control named when the result is a negative control's."""
    title = f"{text}: paper {result.paper_verdict.value}"
    return title + (f"  [control: {result.control}]" if result.control else "")


def save_result_figure(fig, out_dir: Path, result) -> list[Path]:
    """Save a check's figure as <claim>.png/.pdf, or <claim>_control_<name>.png/.pdf for a negative control."""
    return save(fig, out_dir, result.claim + (f"_control_{result.control}" if result.control else ""))
