"""Synthetic factor-analysis data (aevb_utils.synthetic)."""

from __future__ import annotations

import math

import pytest
import torch

from aevb_utils.synthetic import PAPER_NOISE_STD, PAPER_W, factor_analysis_data


def test_shapes_and_types():
    sample = factor_analysis_data(11)
    assert sample.x.shape == (11, 3) and sample.z.shape == (11, 2)
    assert sample.x.dtype == torch.float32 and sample.z.dtype == torch.float32
    x, z = sample  # a named tuple
    assert x is sample.x and z is sample.z
    other = factor_analysis_data(4, W=torch.ones(5, 3), noise_std=torch.full((5,), 0.1))
    assert other.x.shape == (4, 5) and other.z.shape == (4, 3)


def test_seeded():
    a, b, c = (
        factor_analysis_data(50, seed=1),
        factor_analysis_data(50, seed=1),
        factor_analysis_data(50, seed=2),
    )
    assert torch.equal(a.x, b.x) and torch.equal(a.z, b.z)
    assert not torch.equal(a.x, c.x)
    torch.manual_seed(0)
    first = torch.rand(1)
    factor_analysis_data(10, seed=3)  # uses its own generator, not the global one
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), first)


def test_x_is_linear_in_z_plus_mean_plus_noise():
    mean = (1.0, -2.0, 3.0)
    sample = factor_analysis_data(20_000, mean=mean, seed=4)
    W = torch.tensor(PAPER_W)
    noise = sample.x - sample.z @ W.T - torch.tensor(mean)
    std = torch.tensor(PAPER_NOISE_STD)
    n = len(noise)
    assert (noise.mean(0).abs() < 5 * std / math.sqrt(n)).all()
    assert ((noise.std(0) - std).abs() < 5 * std / math.sqrt(2 * n)).all()
    assert (sample.z.mean(0).abs() < 5 / math.sqrt(n)).all()


def test_covariance_of_a_large_sample():
    n = 200_000
    x = factor_analysis_data(n, seed=5).x.double()
    W = torch.tensor(PAPER_W, dtype=torch.float64)
    noise_var = torch.tensor(PAPER_NOISE_STD, dtype=torch.float64) ** 2
    expected = W @ W.T + torch.diag(noise_var)
    sample = torch.cov(x.T)
    # standard error of a Gaussian sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / n)
    stderr = ((expected.diag()[:, None] * expected.diag()[None, :] + expected**2) / n).sqrt()
    assert ((sample - expected).abs() < 5 * stderr).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"W": (1.0, 2.0, 3.0)}, "W must be"),
        ({"noise_std": (0.1, 0.2)}, "W must be"),
        ({"noise_std": ((0.1, 0.2, 0.3),)}, "W must be"),
        ({"noise_std": (0.1, 0.0, 0.3)}, "above 0"),
        ({"noise_std": (0.1, -0.2, 0.3)}, "above 0"),
        ({"n": 0}, "positive"),
    ],
)
def test_validation(kwargs, match):
    kwargs = {"n": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        factor_analysis_data(**kwargs)


def test_same_data_whatever_the_default_dtype():
    reference = factor_analysis_data(50, seed=3).x
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        again = factor_analysis_data(50, seed=3).x
    finally:
        torch.set_default_dtype(previous)
    assert again.dtype == torch.float32
    torch.testing.assert_close(again, reference, rtol=0, atol=0)
