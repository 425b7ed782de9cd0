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
