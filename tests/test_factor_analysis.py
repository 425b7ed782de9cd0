"""Factor analysis: the synthetic data, exact evidence and posterior, the EM step and the exact
ELBO of a Gaussian q (aevb_utils.factor_analysis)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from aevb_utils.densities import kl_mvn
from aevb_utils.factor_analysis import (
    PAPER_NOISE_STD,
    PAPER_W,
    em_step,
    factor_analysis_data,
    gaussian_q_elbo,
    log_evidence,
    marginal_covariance,
    posterior,
)


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


# --- the EM step and the exact ELBO of a Gaussian q ---------------------------------------------


def test_em_step_climbs_to_a_fixed_point():
    x = factor_analysis_data(500, seed=3).x.double()
    second_moment = x.T @ x / len(x)
    W = 0.1 * torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    psi = torch.ones(3, dtype=torch.float64)
    evidence = [log_evidence(x, W, psi).mean().item()]
    for _ in range(3000):  # EM converges slowly near its maximum
        W, psi = em_step(W, psi, second_moment)
        evidence.append(log_evidence(x, W, psi).mean().item())
    steps = torch.tensor(evidence).diff()
    assert (steps > -1e-12).all()  # EM never lowers the evidence
    assert evidence[-1] - evidence[0] > 0.5
    W_next, psi_next = em_step(W, psi, second_moment)  # converged: a fixed point
    torch.testing.assert_close(W_next @ W_next.T, W @ W.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(psi_next, psi, atol=1e-6, rtol=0)
    # at the maximum the model covariance matches the data where factor analysis can
    torch.testing.assert_close(
        marginal_covariance(W, psi).diagonal(), second_moment.diagonal(), atol=1e-6, rtol=0
    )


def test_gaussian_q_elbo_is_evidence_minus_kl_to_the_posterior():
    W, psi, _, x = _model(4)
    g = torch.Generator().manual_seed(5)
    mean_q = torch.randn(len(x), L, generator=g, dtype=torch.float64)
    factor = torch.randn(len(x), L, L, generator=g, dtype=torch.float64)
    cov_q = factor @ factor.mT + 0.1 * torch.eye(L, dtype=torch.float64)
    post_mean, post_cov = posterior(x, W, psi)
    elbo = gaussian_q_elbo(x, W, psi, mean_q, cov_q)
    kl = kl_mvn(mean_q, cov_q, post_mean, post_cov)
    torch.testing.assert_close(elbo, log_evidence(x, W, psi) - kl)
    # the exact posterior (one covariance for all examples) makes the bound tight
    torch.testing.assert_close(gaussian_q_elbo(x, W, psi, post_mean, post_cov),
                               log_evidence(x, W, psi))


def test_gaussian_q_elbo_matches_monte_carlo():
    W, psi, _, x = _model(6)
    mean_q = torch.zeros(len(x), L, dtype=torch.float64)
    cov_q = torch.diag(torch.tensor([0.5, 2.0], dtype=torch.float64))
    q = MultivariateNormal(mean_q, cov_q)
    z = q.sample((200_000,))
    log_joint = _log_joint(x, z, W, psi, torch.zeros(len(psi), dtype=torch.float64))
    samples = log_joint - q.log_prob(z)
    stderr = samples.std(0) / math.sqrt(len(z))
    assert ((samples.mean(0) - gaussian_q_elbo(x, W, psi, mean_q, cov_q)).abs() < 5 * stderr).all()
