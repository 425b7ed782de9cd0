"""Log-densities, KL divergences and the reparameterization trick (aevb_utils.densities)."""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from aevb_utils.densities import (
    bernoulli_log_likelihood,
    gaussian_log_density,
    kl_diagonal_to_full,
    kl_gaussians,
    kl_standard_normal,
    reparameterize,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)


def test_gaussian_log_density_matches_torch():
    x, mean, log_var = _randn(4, 6, 3, seed=1), _randn(4, 6, 3, seed=2), _randn(4, 6, 3, seed=3)
    got = gaussian_log_density(x, mean, log_var)
    expected = Normal(mean, (0.5 * log_var).exp()).log_prob(x).sum(-1)
    assert got.shape == (4, 6)
    torch.testing.assert_close(got, expected)


def test_gaussian_log_density_broadcasts_parameters():
    x = _randn(5, 3, seed=4)
    mean, log_var = _randn(3, seed=5), _randn(3, seed=6)
    expected = Normal(mean, (0.5 * log_var).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_density(x, mean, log_var), expected)


def test_bernoulli_log_likelihood_matches_torch():
    logits = 3 * _randn(7, 10, seed=7)
    x = torch.bernoulli(torch.full((7, 10), 0.4, dtype=torch.float64), generator=_gen(8))
    expected = Bernoulli(logits=logits).log_prob(x).sum(-1)
    got = bernoulli_log_likelihood(logits, x)
    assert got.shape == (7,)
    torch.testing.assert_close(got, expected)


def test_bernoulli_log_likelihood_is_stable_for_large_logits():
    logits = torch.tensor([[200.0, -200.0, 200.0]])
    x = torch.tensor([[1.0, 0.0, 0.0]])
    got = bernoulli_log_likelihood(logits, x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.tensor([-200.0]))


def test_bernoulli_log_likelihood_grey_levels():
    # With x in (0, 1) it is the cross-entropy -[x log p + (1-x) log(1-p)], summed.
    logits = _randn(3, 4, seed=9)
    x = torch.rand(3, 4, generator=_gen(10), dtype=torch.float64)
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


def test_kl_gaussians_matches_torch():
    mq, lq, mp, lp = (_randn(8, 4, seed=s) for s in range(11, 15))
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    got = kl_gaussians(mq, lq, mp, lp)
    assert got.shape == (8,)
    torch.testing.assert_close(got, expected)
    assert (got > 0).all()
    torch.testing.assert_close(kl_gaussians(mq, lq, mq, lq), torch.zeros(8, dtype=torch.float64))


def test_kl_standard_normal_matches_torch():
    mean, log_var = _randn(6, 5, seed=15), _randn(6, 5, seed=16)
    expected = kl_divergence(Normal(mean, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_standard_normal(mean, log_var), expected)
    zeros = torch.zeros_like(mean)
    torch.testing.assert_close(
        kl_standard_normal(mean, log_var), kl_gaussians(mean, log_var, zeros, zeros)
    )
    torch.testing.assert_close(
        kl_standard_normal(zeros, zeros), torch.zeros(6, dtype=torch.float64)
    )


def test_reparameterize_shapes():
    mean, log_var = torch.zeros(4, 3), torch.zeros(4, 3)
    assert reparameterize(mean, log_var).shape == (4, 3)
    assert reparameterize(mean, log_var, num_samples=7).shape == (7, 4, 3)
    assert reparameterize(mean.double(), log_var.double()).dtype == torch.float64


def test_reparameterize_gradients():
    torch.manual_seed(0)
    mean = torch.tensor([[0.5, -1.0]], requires_grad=True)
    log_var = torch.tensor([[0.2, -0.4]], requires_grad=True)
    z = reparameterize(mean, log_var, num_samples=3)
    z.sum().backward()
    torch.testing.assert_close(mean.grad, torch.full((1, 2), 3.0))
    # dz/dlog_var = 0.5 * std * eps = 0.5 * (z - mean)
    torch.testing.assert_close(log_var.grad, 0.5 * (z.detach() - mean.detach()).sum(0))


def test_reparameterize_moments_and_seed():
    mean = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    log_var = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    n = 100_000
    torch.manual_seed(1)
    z = reparameterize(mean, log_var, num_samples=n)
    var = log_var.exp()
    assert ((z.mean(0) - mean).abs() < 5 * (var / n).sqrt()).all()
    # the standard error of a sample variance is about var * sqrt(2 / n)
    assert ((z.var(0) - var).abs() < 5 * var * (2 / n) ** 0.5).all()
    torch.manual_seed(1)
    assert torch.equal(reparameterize(mean, log_var, num_samples=n), z)


def test_bernoulli_log_likelihood_broadcasts_data_over_samples():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5)  # 3 samples of z for 4 examples
    x = torch.bernoulli(torch.full((4, 5), 0.5))
    expected = torch.stack([bernoulli_log_likelihood(logits[s], x) for s in range(3)])
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


def test_kl_diagonal_to_full_matches_torch_and_broadcasts():
    generator = torch.Generator().manual_seed(7)
    mean_q = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64)
    log_var_q = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64) * 0.5
    mean_p = torch.randn(3, 1, 4, generator=generator, dtype=torch.float64)
    raw = torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    scale_tril = raw.tril(-1) + torch.diag_embed(raw.diagonal(dim1=-2, dim2=-1).exp())
    got = kl_diagonal_to_full(mean_q, log_var_q, mean_p, scale_tril)
    expected = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(mean_q, torch.diag_embed(log_var_q.exp())),
        torch.distributions.MultivariateNormal(mean_p, scale_tril=scale_tril),
    )
    assert got.shape == (3, 5)
    torch.testing.assert_close(got, expected)
    diagonal = torch.diag_embed((0.5 * log_var_q[:, :1]).exp())  # p = q's own Gaussian
    same = kl_diagonal_to_full(mean_q[:, :1], log_var_q[:, :1], mean_q[:, :1], diagonal)
    torch.testing.assert_close(same, torch.zeros(3, 1, dtype=torch.float64))
