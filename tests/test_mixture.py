import math

import pytest
import torch

import aevb_utils as au


def two_clusters(n: int = 400, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    first = torch.randn(n // 4, 2, generator=generator, dtype=torch.float64) * 0.5
    first = first + torch.tensor([-5.0, 0.0])
    second = torch.randn(3 * n // 4, 2, generator=generator, dtype=torch.float64) * torch.tensor(
        [1.0, 0.2]
    ) + torch.tensor([5.0, 3.0])
    return torch.cat([first, second])


def test_one_component_is_the_sample_mean_and_variance():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fit = au.fit_gaussian_mixture(x, 1)
    assert torch.allclose(fit.mixture.weights, torch.ones(1, dtype=torch.float64))
    assert torch.allclose(fit.mixture.means[0], x.mean(0))
    assert torch.allclose(fit.mixture.variances[0], x.var(0, unbiased=False))
    expected = torch.distributions.Normal(x.mean(0), x.std(0, unbiased=False)).log_prob(x).sum(-1)
    assert torch.allclose(fit.mixture.log_likelihood(x), expected)


def test_responsibilities_match_bayes_rule_by_hand():
    mixture = au.DiagonalGaussianMixture(
        torch.tensor([0.25, 0.75], dtype=torch.float64),
        torch.tensor([[0.0], [2.0]], dtype=torch.float64),
        torch.tensor([[1.0], [1.0]], dtype=torch.float64),
    )
    x = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    # Equal variances: p(y = 2 | x) = sigmoid(log(0.75 / 0.25) + (x - 0)^2 / 2 - (x - 2)^2 / 2).
    expected = torch.sigmoid(math.log(3.0) + (x[:, 0] ** 2 - (x[:, 0] - 2) ** 2) / 2)
    assert torch.allclose(mixture.responsibilities(x)[:, 1], expected)
    assert torch.allclose(mixture.responsibilities(x).sum(1), torch.ones(2, dtype=torch.float64))


def test_separated_clusters_are_recovered():
    x = two_clusters()
    fit = au.fit_gaussian_mixture(x, 2, restarts=3, seed=0)
    order = fit.mixture.means[:, 0].argsort()
    expected_weights = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert torch.allclose(fit.mixture.weights[order], expected_weights)
    assert torch.allclose(fit.mixture.means[order], torch.tensor([[-5.0, 0.0], [5.0, 3.0]],
                                                                 dtype=torch.float64), atol=0.2)
    assert torch.allclose(fit.mixture.variances[order].sqrt(),
                          torch.tensor([[0.5, 0.5], [1.0, 0.2]], dtype=torch.float64), rtol=0.2)


def test_em_never_lowers_the_likelihood_and_keeps_the_best_start():
    x = two_clusters(seed=3)
    fit = au.fit_gaussian_mixture(x, 4, restarts=4, iterations=50, tolerance=0.0, seed=2)
    trace = torch.tensor(fit.log_likelihood)
    assert (trace[1:] - trace[:-1] >= -1e-9).all(), "EM must never lower the log-likelihood"
    assert fit.log_likelihood[-1] == max(fit.restart_log_likelihoods)
    assert len(fit.restart_log_likelihoods) == 4


def test_m_step_is_the_weighted_average():
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    mixture = au.mixture_m_step(x, q)
    assert torch.allclose(mixture.weights, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert torch.allclose(mixture.means[:, 0], torch.tensor([1 / 3, 7 / 3], dtype=torch.float64))
    expected_var = torch.tensor([(1 / 9 + 0.5 * 4 / 9) / 1.5, (0.5 * 16 / 9 + 4 / 9) / 1.5],
                                dtype=torch.float64)
    assert torch.allclose(mixture.variances[:, 0], expected_var)


def test_seeded_fits_are_identical():
    x = two_clusters()
    first = au.fit_gaussian_mixture(x, 3, restarts=2, seed=5)
    second = au.fit_gaussian_mixture(x, 3, restarts=2, seed=5)
    assert torch.equal(first.mixture.means, second.mixture.means)


@pytest.mark.parametrize(
    ("x", "components", "message"),
    [
        (torch.zeros(10), 2, "matrix of points"),
        (torch.zeros(3, 2), 4, "between 1 and the number of points"),
        (torch.tensor([[0.0, math.nan], [1.0, 1.0]]), 1, "NaN"),
    ],
)
def test_bad_input_is_explained(x, components, message):
    with pytest.raises(ValueError, match=message):
        au.fit_gaussian_mixture(x, components)


def test_full_covariance_with_one_component_is_the_sample_covariance():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(300, 2, generator=generator, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.8], [0.0, 0.5]], dtype=torch.float64)
    fit = au.fit_gaussian_mixture(x, 1, covariance="full", min_variance=0.0)
    centred = x - x.mean(0)
    assert torch.allclose(fit.mixture.means[0], x.mean(0))
    assert torch.allclose(fit.mixture.covariances[0], centred.T @ centred / len(x))
    expected = torch.distributions.MultivariateNormal(x.mean(0), centred.T @ centred / len(x))
    assert torch.allclose(fit.mixture.log_likelihood(x), expected.log_prob(x))


def test_full_covariance_separates_tilted_clusters_and_fits_them_better_than_diagonal():
    # Two parallel clusters, offset across their common long axis. Full covariances separate
    # them; a diagonal mixture cannot describe the tilt and scores a lower likelihood.
    generator = torch.Generator().manual_seed(4)
    along = torch.randn(800, 1, generator=generator, dtype=torch.float64) * 3.0
    across = torch.randn(800, 1, generator=generator, dtype=torch.float64) * 0.2
    side = torch.arange(800) % 2  # which cluster
    offset = (2.0 * side - 1.0)[:, None].double()  # ±1 across the long axis
    direction = torch.tensor([[1.0, 1.0]], dtype=torch.float64) / math.sqrt(2)
    normal = torch.tensor([[1.0, -1.0]], dtype=torch.float64) / math.sqrt(2)
    x = along * direction + (across + offset) * normal
    full = au.fit_gaussian_mixture(x, 2, covariance="full", restarts=5, seed=0)
    diagonal = au.fit_gaussian_mixture(x, 2, covariance="diagonal", restarts=5, seed=0)
    clusters = full.mixture.responsibilities(x).argmax(-1)
    agreement = (clusters == side).double().mean().item()
    assert max(agreement, 1 - agreement) > 0.99
    assert full.log_likelihood[-1] > diagonal.log_likelihood[-1] + 0.5
    covariance = full.mixture.covariances[0]
    correlation = covariance[0, 1] / (covariance[0, 0] * covariance[1, 1]).sqrt()
    assert correlation > 0.9, "each cluster's long axis is the diagonal"


def test_full_covariance_em_never_lowers_the_likelihood():
    x = two_clusters(seed=3)
    fit = au.fit_gaussian_mixture(x, 3, covariance="full", restarts=3, iterations=50,
                                  tolerance=0.0, seed=1)
    trace = torch.tensor(fit.log_likelihood)
    assert (trace[1:] - trace[:-1] >= -1e-9).all(), "EM must never lower the log-likelihood"
    assert fit.log_likelihood[-1] == max(fit.restart_log_likelihoods)


def test_full_m_step_is_the_weighted_covariance():
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    mixture = au.mixture_m_step(x, q, min_variance=0.0, covariance="full")
    for c in range(2):
        mean = (q[:, c, None] * x).sum(0) / q[:, c].sum()
        scatter = sum(q[n, c] * torch.outer(x[n] - mean, x[n] - mean) for n in range(3))
        expected = scatter / q[:, c].sum()
        assert torch.allclose(mixture.means[c], mean)
        assert torch.allclose(mixture.covariances[c], expected)


def test_unknown_covariance_is_explained():
    with pytest.raises(ValueError, match="'diagonal' or 'full'"):
        au.fit_gaussian_mixture(two_clusters(), 2, covariance="spherical")
