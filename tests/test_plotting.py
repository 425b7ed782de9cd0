"""Figures (aevb_utils.plotting), drawn with the Agg backend (set in conftest)."""

from __future__ import annotations

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage

from aevb_utils.plotting import (
    BOOK_STYLE,
    image_grid,
    latent_scatter,
    plot_learning_curves,
    use_book_style,
)
from aevb_utils.training import History


def test_backend_is_agg():
    assert mpl.get_backend().lower() == "agg"


def test_use_book_style():
    with mpl.rc_context():
        mpl.rcParams["axes.spines.top"] = True
        use_book_style()
        for key, value in BOOK_STYLE.items():
            assert mpl.rcParams[key] == (list(value) if isinstance(value, tuple) else value), key
        assert mpl.rcParams["axes.spines.top"] is False


def test_image_grid_layout():
    rng = np.random.default_rng(0)
    images = rng.random((13, 784))
    ax = image_grid(torch.as_tensor(images), ncols=5, title="samples")
    assert isinstance(ax, plt.Axes)
    (artist,) = ax.get_images()
    assert isinstance(artist, AxesImage)
    canvas = np.asarray(artist.get_array())
    assert canvas.shape == (3 * 30, 5 * 30)  # 3 rows of 5, 28 pixels and a 2-pixel gutter each
    # image 7 (row 1, column 2) is drawn dark-on-light, inside its gutter
    np.testing.assert_allclose(canvas[31:59, 61:89], 1 - images[7].reshape(28, 28))
    assert (canvas[30, :] == 1).all() and (canvas[:, 0] == 1).all()
    assert (canvas[61:89, 3 * 30 + 1 :] == 1).all()  # the two empty cells of the last row
    assert ax.get_title() == "samples"
    assert not ax.axison


def test_image_grid_accepts_square_images_an_axes_and_side():
    _, ax = plt.subplots()
    images = np.zeros((4, 8, 8))
    images[2, 3, 4] = 1.0
    assert image_grid(images, ncols=2, ax=ax, side=8) is ax
    canvas = np.asarray(ax.get_images()[0].get_array())
    assert canvas.shape == (20, 20)
    assert canvas[10 + 1 + 3, 1 + 4] == 0.0 and canvas.sum() == canvas.size - 1
    assert ax.get_title() == ""


def _history(valid: bool) -> History:
    history = History()
    for step, train in [(0, math.nan), (5, -3.0), (10, -2.0)]:
        history.record(step, train, train - 1 if valid else math.nan, {})
    return history


def test_learning_curves_one_history():
    ax = plot_learning_curves(_history(valid=False))
    assert isinstance(ax, plt.Axes)
    (line,) = ax.get_lines()
    assert line.get_label() == "training"
    assert list(line.get_xdata()) == [0, 5, 10]
    assert ax.get_xlabel() == "gradient step"
    assert ax.get_ylabel() == "ELBO (nats per example)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training"]


def test_learning_curves_several_runs():
    _, ax = plt.subplots()
    runs = {"a": _history(valid=True), "b": _history(valid=False)}
    assert plot_learning_curves(runs, ax=ax, ylabel="bound") is ax
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["a: training", "a: held out", "b: training"]
    assert lines[0].get_color() == lines[1].get_color() == "C0"
    assert lines[2].get_color() == "C1"
    assert lines[0].get_linestyle() == "-" and lines[1].get_linestyle() == "--"
    np.testing.assert_array_equal(lines[1].get_ydata()[1:], [-4.0, -3.0])
    assert ax.get_ylabel() == "bound"


def test_latent_scatter_plain():
    z = np.random.default_rng(1).normal(size=(50, 2))
    ax = latent_scatter(torch.as_tensor(z), title="codes")
    assert isinstance(ax, plt.Axes)
    (points,) = ax.collections
    assert isinstance(points, PathCollection)
    np.testing.assert_allclose(points.get_offsets(), z)
    assert len(ax.figure.axes) == 1  # no colour bar without labels
    assert ax.get_title() == "codes"
    assert ax.get_xlabel() == "$z_1$"


def test_latent_scatter_with_labels():
    rng = np.random.default_rng(2)
    z, labels = rng.normal(size=(30, 2)), rng.integers(0, 10, size=30)
    _, ax = plt.subplots()
    assert latent_scatter(z, torch.as_tensor(labels), ax=ax) is ax
    (points,) = ax.collections
    np.testing.assert_array_equal(points.get_array(), labels)
    assert len(ax.figure.axes) == 2  # the colour bar
    assert ax.figure.axes[1].get_ylabel() == "digit"


@pytest.mark.parametrize("shape", [(10, 3), (10,), (2, 5, 2)])
def test_latent_scatter_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        latent_scatter(np.zeros(shape))


def test_plot_confusion_matrix_writes_the_counts():
    import aevb_utils as au

    ax = au.plot_confusion_matrix(torch.tensor([[3, 0], [1, 5]]), xlabel="cluster")
    assert sorted(t.get_text() for t in ax.texts) == ["1", "3", "5"]  # no text for a zero
    assert ax.get_xlabel() == "cluster" and ax.get_ylabel() == "true label"
    plt.close(ax.figure)
