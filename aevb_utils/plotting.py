"""One consistent figure style, image grids, learning curves and latent scatter plots."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

from .training import History

BOOK_STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.constrained_layout.use": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "gray_r",
}


def use_book_style() -> None:
    """Apply the book's figure style (call once, in a chapter's first cell)."""
    mpl.rcParams.update(BOOK_STYLE)


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def image_grid(
    images: torch.Tensor | np.ndarray,
    ncols: int = 10,
    ax: plt.Axes | None = None,
    title: str | None = None,
    side: int = 28,
) -> plt.Axes:
    """Tile images (shape [N, side*side] or [N, side, side], values in [0, 1]) into one grid."""
    images = _to_numpy(images).reshape(-1, side, side)
    n = images.shape[0]
    nrows = -(-n // ncols)
    canvas = np.ones((nrows * (side + 2), ncols * (side + 2)))  # 2-pixel white gutters
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[
            r * (side + 2) + 1 : r * (side + 2) + 1 + side,
            c * (side + 2) + 1 : c * (side + 2) + 1 + side,
        ] = 1 - image
    if ax is None:
        _, ax = plt.subplots(figsize=(0.6 * ncols, 0.6 * nrows + (0.3 if title else 0)))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_learning_curves(
    histories: History | Mapping[str, History],
    ax: plt.Axes | None = None,
    ylabel: str = "ELBO (nats per example)",
) -> plt.Axes:
    """Training (solid) and held-out (dashed) ELBO against gradient steps, one colour a run."""
    if isinstance(histories, History):
        histories = {"": histories}
    if ax is None:
        _, ax = plt.subplots()
    for i, (name, history) in enumerate(histories.items()):
        colour = f"C{i}"
        prefix = f"{name}: " if name else ""
        ax.plot(history.step, history.train_elbo, color=colour, label=f"{prefix}training")
        if not np.all(np.isnan(history.valid_elbo)):
            ax.plot(
                history.step,
                history.valid_elbo,
                color=colour,
                linestyle="--",
                label=f"{prefix}held out",
            )
    ax.set_xlabel("gradient step")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def plot_confusion_matrix(
    matrix: torch.Tensor | np.ndarray,
    ax: plt.Axes | None = None,
    xlabel: str = "predicted label",
    ylabel: str = "true label",
    xticklabels: list | None = None,
) -> plt.Axes:
    """A matrix of counts as a heat map with each non-zero count written in its cell."""
    matrix = _to_numpy(matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if count > matrix.max() / 2 else "black"
            ax.text(j, i, int(count), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(matrix.shape[1]), labels=xticklabels)
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    return ax


def latent_scatter(
    z: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> plt.Axes:
    """2-D latent codes as points, coloured by label (e.g. the digit) when labels are given."""
    z = _to_numpy(z)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent_scatter needs 2-D codes of shape [N, 2], got {z.shape}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.6))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=3, alpha=0.5)
    else:
        labels = _to_numpy(labels)
        points = ax.scatter(
            z[:, 0], z[:, 1], c=labels, s=3, alpha=0.7, cmap="tab10", vmin=-0.5, vmax=9.5
        )
        ax.figure.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return ax
