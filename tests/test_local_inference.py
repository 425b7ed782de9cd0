"""Per-example Gaussian variational inference (aevb_utils.local_inference)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from aevb_utils.densities import gaussian_entropy, gaussian_log_density, kl_mvn
from aevb_utils.factor_analysis import log_evidence, posterior
from aevb_utils.local_inference import (
    LocalGaussians,
    fit_local_gaussians,
    local_elbo,
)

N, D, L = 40, 4, 2


@pytest.fixture(scope="module")
def diagonal_model():
    """A linear-Gaussian model whose exact posterior is diagonal: W has orthogonal columns and
    the noise variances are equal, so W^T Psi^-1 W, and with it the posterior covariance, is
    diagonal; the best diagonal Gaussian q is then the exact posterior."""
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(D, L, generator=g, dtype=torch.float64))
    W = Q * torch.tensor([2.0, 1.0], dtype=torch.float64)
    psi = torch.full((D,), 0.3, dtype=torch.float64)
    z = torch.randn(N, L, generator=g, dtype=torch.float64)
    x = z @ W.T + psi.sqrt() * torch.randn(N, D, generator=g, dtype=torch.float64)

    def log_joint(x, z):
        zeros = torch.zeros_like(z)
        return gaussian_log_density(z, zeros, zeros) + gaussian_log_density(x, z @ W.T, psi.log())

    post_mean, post_cov = posterior(x, W, psi)
    assert torch.allclose(post_cov, torch.diag(post_cov.diag()), atol=1e-12)
    return log_joint, x, post_mean, post_cov, log_evidence(x, W, psi)


def test_gaussian_entropy_matches_torch():
    log_var = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = Normal(torch.zeros_like(log_var), (0.5 * log_var).exp()).entropy().sum(-1)
    torch.testing.assert_close(gaussian_entropy(log_var), expected)


def test_local_elbo_is_unbiased(diagonal_model):
    # at any q, E[local_elbo] = log p(x) - KL(q || p(z|x))
    log_joint, x, post_mean, post_cov, exact = diagonal_model
    mean = post_mean + 0.3
    log_var = torch.full_like(mean, -1.0)
    repeats = 500
    torch.manual_seed(2)
    values = local_elbo(
        log_joint, x.repeat(repeats, 1), mean.repeat(repeats, 1), log_var.repeat(repeats, 1)
    )
    assert values.shape == (N * repeats,)
    kl = kl_mvn(mean, torch.diag_embed(log_var.exp()), post_mean, post_cov)
    error = values - (exact - kl).repeat(repeats)
    assert abs(error.mean().item()) < 4 * error.std().item() / math.sqrt(len(error))
    many = local_elbo(log_joint, x, mean, log_var, num_samples=7)
    assert many.shape == (N,)


def test_fit_local_gaussians_reaches_exact_posterior(diagonal_model):
    log_joint, x, post_mean, post_cov, exact = diagonal_model
    init = torch.zeros(N, L, dtype=torch.float64)
    first = fit_local_gaussians(log_joint, x, init, steps=250, lr=0.05, num_samples=10)
    assert isinstance(first, LocalGaussians)
    assert len(first.elbo_trace) == 250
    assert first.mean.shape == (N, L) and first.log_var.shape == (N, L)
    assert not first.mean.requires_grad
    # a second, finer stage from where the first ended
    fitted = fit_local_gaussians(
        log_joint, x, first.mean, first.log_var, steps=150, lr=0.01, num_samples=10, seed=1
    )
    assert fitted.elbo_trace[-1] > first.elbo_trace[0] + 5  # the ELBO rose from the start

    # The exact ELBO of the fitted q is log p(x) - KL(q || p(z|x)): the gap is the KL.
    kl = kl_mvn(fitted.mean, torch.diag_embed(fitted.log_var.exp()), post_mean, post_cov)
    assert kl.mean().item() < 0.01
    torch.testing.assert_close(fitted.log_var.exp(), post_cov.diag().expand(N, L), rtol=0.2, atol=0)

    # and a Monte-Carlo estimate of its ELBO agrees with the exact evidence within its error
    repeats = 500
    torch.manual_seed(3)
    values = local_elbo(
        log_joint,
        x.repeat(repeats, 1),
        fitted.mean.repeat(repeats, 1),
        fitted.log_var.repeat(repeats, 1),
    )
    error = values - exact.repeat(repeats)
    stderr = error.std().item() / math.sqrt(len(error))
    assert abs(error.mean().item() + kl.mean().item()) < 4 * stderr
    assert abs(error.mean().item()) < 4 * stderr + 0.01


def test_fit_local_gaussians_is_seeded_and_leaves_inputs_alone(diagonal_model):
    log_joint, x, *_ = diagonal_model
    init = torch.zeros(N, L, dtype=torch.float64)
    log_var = torch.full((N, L), -1.0, dtype=torch.float64)
    a = fit_local_gaussians(log_joint, x, init, log_var, steps=20, lr=0.05, seed=4)
    b = fit_local_gaussians(log_joint, x, init, log_var, steps=20, lr=0.05, seed=4)
    c = fit_local_gaussians(log_joint, x, init, log_var, steps=20, lr=0.05, seed=5)
    assert torch.equal(a.mean, b.mean) and a.elbo_trace == b.elbo_trace
    assert not torch.equal(a.mean, c.mean)
    assert torch.equal(init, torch.zeros(N, L, dtype=torch.float64))
    assert torch.equal(log_var, torch.full((N, L), -1.0, dtype=torch.float64))
    # the default initial log-variance is 0
    d = fit_local_gaussians(log_joint, x, init, steps=1, lr=0.05)
    e = fit_local_gaussians(log_joint, x, init, torch.zeros_like(init), steps=1, lr=0.05)
    assert torch.equal(d.log_var, e.log_var) and d.elbo_trace == e.elbo_trace


def test_fit_local_gaussians_non_finite(diagonal_model):
    _, x, *_ = diagonal_model

    def broken(x, z):
        return z.sum(-1) * math.nan

    with pytest.raises(FloatingPointError, match="non-finite"):
        fit_local_gaussians(broken, x, torch.zeros(N, L), steps=3)
