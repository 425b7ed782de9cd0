"""Exact answers for the linear-Gaussian model (aevb_utils.linear_gaussian)."""

from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal, Normal

from aevb_utils.linear_gaussian import kl_mvn, log_evidence, marginal_covariance, posterior

D, L = 4, 2


def _model(seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, L, generator=g, dtype=torch.float64)
    psi = 0.1 + torch.rand(D, generator=g, dtype=torch.float64)
    mean = torch.randn(D, generator=g, dtype=torch.float64)
    x = torch.randn(5, D, generator=g, dtype=torch.float64) * 2
    return W, psi, mean, x


def _log_joint(x, z, W, psi, mean):
    """log p(x, z) = log N(z; 0, I) + log N(x; W z + mean, diag psi), for z [..., N, L]."""
    prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    likelihood = Normal(z @ W.T + mean, psi.sqrt()).log_prob(x).sum(-1)
    return prior + likelihood


def test_marginal_covariance():
    W, psi, _, _ = _model()
    C = marginal_covariance(W, psi)
    torch.testing.assert_close(C, W @ W.T + torch.diag(psi))
    torch.testing.assert_close(C, C.T)


def test_posterior_matches_gaussian_conditioning():
    W, psi, mean, x = _model(1)
    C = W @ W.T + torch.diag(psi)
    # joint of (z, x): Cov[z, x] = W^T, so z | x ~ N(W^T C^-1 (x - mean), I - W^T C^-1 W)
    expected_means = (torch.linalg.solve(C, (x - mean).T)).T @ W
    expected_cov = torch.eye(L, dtype=torch.float64) - W.T @ torch.linalg.solve(C, W)
    means, S = posterior(x, W, psi, mean)
    assert means.shape == (5, L) and S.shape == (L, L)
    torch.testing.assert_close(means, expected_means)
    torch.testing.assert_close(S, expected_cov)


def test_posterior_is_bayes_rule():
    # log p(z | x) = log p(x, z) - log p(x) at arbitrary z
    W, psi, mean, x = _model(2)
    means, S = posterior(x, W, psi, mean)
    z = torch.randn(3, 5, L, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    lhs = MultivariateNormal(means, S).log_prob(z)
    rhs = _log_joint(x, z, W, psi, mean) - log_evidence(x, W, psi, mean)
    torch.testing.assert_close(lhs, rhs)


def test_posterior_and_evidence_default_mean_is_zero():
    W, psi, _, x = _model(4)
    zero = torch.zeros(D, dtype=torch.float64)
    torch.testing.assert_close(posterior(x, W, psi)[0], posterior(x, W, psi, zero)[0])
    torch.testing.assert_close(log_evidence(x, W, psi), log_evidence(x, W, psi, zero))


def test_log_evidence_matches_multivariate_normal():
    W, psi, mean, x = _model(5)
    expected = MultivariateNormal(mean, W @ W.T + torch.diag(psi)).log_prob(x)
    got = log_evidence(x, W, psi, mean)
    assert got.shape == (5,)
    torch.testing.assert_close(got, expected)


def test_log_evidence_matches_monte_carlo():
    # p(x) = E_{z ~ N(0, I)} p(x | z), estimated with S prior samples.
    W, psi, mean, _ = _model(6)
    g = torch.Generator().manual_seed(7)
    x = mean + torch.randn(3, L, generator=g, dtype=torch.float64) @ W.T  # typical points
    S = 200_000
    z = torch.randn(S, 1, L, generator=g, dtype=torch.float64)
    likelihood = Normal(z @ W.T + mean, psi.sqrt()).log_prob(x).sum(-1).exp()  # [S, 3]
    estimate = likelihood.mean(0)
    stderr = likelihood.std(0) / math.sqrt(S)
    exact = log_evidence(x, W, psi, mean).exp()
    assert ((estimate - exact).abs() < 5 * stderr).all()
    assert (stderr < 0.05 * exact).all()  # the check above is informative


def test_kl_mvn():
    g = torch.Generator().manual_seed(8)
    A = torch.randn(L, L, generator=g, dtype=torch.float64)
    cov_q = A @ A.T + 0.5 * torch.eye(L, dtype=torch.float64)
    cov_p = torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    mean_q = torch.randn(4, L, generator=g, dtype=torch.float64)
    mean_p = torch.randn(4, L, generator=g, dtype=torch.float64)

    same = kl_mvn(mean_q, cov_q, mean_q, cov_q)
    assert same.shape == (4,)
    torch.testing.assert_close(same, torch.zeros(4, dtype=torch.float64))

    got = kl_mvn(mean_q, cov_q, mean_p, cov_p)
    inv_p = torch.linalg.inv(cov_p)
    diff = mean_p - mean_q
    expected = 0.5 * (
        torch.trace(inv_p @ cov_q)
        + ((diff @ inv_p) * diff).sum(-1)
        - L
        + torch.logdet(cov_p)
        - torch.logdet(cov_q)
    )
    torch.testing.assert_close(got, expected)
    assert (got > 0).all()

    per_row = torch.stack([cov_q, cov_p, cov_q, cov_p])  # [N, L, L] covariances
    got_rows = kl_mvn(mean_q, per_row, mean_p, cov_p)
    torch.testing.assert_close(got_rows[0], expected[0])
    torch.testing.assert_close(got_rows[1], 0.5 * ((diff[1] @ inv_p) * diff[1]).sum())
