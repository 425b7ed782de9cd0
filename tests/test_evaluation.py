"""Evaluation: log-mean-exp, standard errors, average ELBO, IWAE bound, clustering accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import LinearGaussianVAE

from aevb_utils.evaluation import (
    Estimate,
    as_tensors,
    average_elbo,
    clustering_accuracy,
    elbo_per_example,
    importance_weighted_log_likelihood,
    log_mean_exp,
    mean_with_stderr,
)
from aevb_utils.linear_gaussian import kl_mvn, log_evidence, posterior
from aevb_utils.synthetic import factor_analysis_data

# --- small helpers -------------------------------------------------------------------------------


def test_log_mean_exp_matches_naive():
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(log_mean_exp(x), x.exp().mean(0).log())
    torch.testing.assert_close(log_mean_exp(x, dim=1), x.exp().mean(1).log())
    torch.testing.assert_close(log_mean_exp(x, dim=-1), x.exp().mean(-1).log())


def test_log_mean_exp_is_stable():
    x = torch.tensor([[1000.0, -1000.0], [1000.0, -1001.0]], dtype=torch.float64)
    assert torch.isinf(x.exp().mean(0).log()[0])  # the naive form overflows
    torch.testing.assert_close(
        log_mean_exp(x),
        torch.tensor([1000.0, -1000.0 + math.log((1 + math.exp(-1)) / 2)], dtype=torch.float64),
    )


def test_mean_with_stderr():
    estimate = mean_with_stderr(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert isinstance(estimate, Estimate)
    assert estimate.mean == pytest.approx(2.5)
    assert estimate.stderr == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert estimate.values.dtype == torch.float64
    assert str(estimate) == "2.50 ± 0.65"
    single = mean_with_stderr(torch.tensor([3.0]))
    assert single.mean == 3.0 and math.isnan(single.stderr)


def test_mean_with_stderr_detaches():
    values = torch.tensor([1.0, 3.0], requires_grad=True) * 2
    estimate = mean_with_stderr(values)
    assert not estimate.values.requires_grad
    assert estimate.mean == pytest.approx(4.0)


def test_as_tensors():
    x, y = torch.zeros(3, 2), torch.arange(3)
    assert as_tensors(x)[0] is x
    assert as_tensors((x, y)) == (x, y)
    assert as_tensors([x, y]) == (x, y)
    with pytest.raises(ValueError, match="equal lengths"):
        as_tensors((x, torch.arange(4)))
    with pytest.raises(TypeError):
        as_tensors((x, [1, 2, 3]))
    with pytest.raises(TypeError):
        as_tensors(())


# --- clustering accuracy -------------------------------------------------------------------------


def test_clustering_accuracy_permuted_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=500)
    permutation = rng.permutation(10)
    assert clustering_accuracy(labels, permutation[labels]) == pytest.approx(1.0)
    assert clustering_accuracy(torch.as_tensor(labels), torch.as_tensor(permutation[labels])) == (
        pytest.approx(1.0)
    )


def test_clustering_accuracy_partial():
    labels = [0, 0, 0, 1, 1, 1]
    clusters = [1, 1, 0, 0, 0, 0]  # best map: 1 -> 0 (2 right), 0 -> 1 (3 right)
    assert clustering_accuracy(labels, clusters) == pytest.approx(5 / 6)
    # more clusters than labels: only one cluster may be mapped to each label
    assert clustering_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(3 / 4)
    # one cluster for everything: the majority label
    assert clustering_accuracy([0, 1, 1, 2, 2, 2], [0] * 6) == pytest.approx(3 / 6)


def test_clustering_accuracy_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same length"):
        clustering_accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        clustering_accuracy([[0, 1]], [[0, 1]])


# --- per-example ELBO ----------------------------------------------------------------------------


class SumModel(torch.nn.Module):
    """elbo(x) = sum of x plus a parameter; records its mode and the batch sizes it saw."""

    def __init__(self):
        super().__init__()
        self.offset = torch.nn.Parameter(torch.tensor(0.5))
        self.modes, self.sizes = [], []

    def elbo(self, x, y=None):
        self.modes.append(self.training)
        self.sizes.append(x.shape[0])
        value = x.sum(-1) + self.offset
        return value if y is None else value + 100 * y

    def log_importance_weights(self, x, num_samples):
        self.modes.append(self.training)
        self.sizes.append(num_samples)
        return (x.sum(-1) + self.offset).expand(num_samples, -1)


@pytest.mark.parametrize("training", [True, False])
def test_elbo_per_example_and_average(training):
    model = SumModel().train(training)
    x = torch.randn(25, 3, generator=torch.Generator().manual_seed(1))
    values = elbo_per_example(model, x, batch_size=10)
    torch.testing.assert_close(values, x.sum(-1) + 0.5)
    assert not values.requires_grad
    assert model.sizes == [10, 10, 5]
    assert model.modes == [False] * 3  # evaluated in eval mode
    assert model.training is training  # and the mode restored
    assert average_elbo(model, x, batch_size=7) == pytest.approx(values.mean().item(), rel=1e-6)
    assert model.training is training


def test_elbo_per_example_passes_every_tensor():
    model = SumModel()
    x, y = torch.ones(6, 2), torch.arange(6.0)
    torch.testing.assert_close(elbo_per_example(model, (x, y), batch_size=4), 2.5 + 100 * y)


@pytest.mark.parametrize("training", [True, False])
def test_importance_weighted_chunks_samples(training):
    model = SumModel().train(training)
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(2))
    estimate = importance_weighted_log_likelihood(
        model, x, num_samples=250, batch_size=20, samples_per_pass=100
    )
    # constant weights: log mean exp of K equal values is that value
    torch.testing.assert_close(estimate.values, (x.sum(-1) + 0.5).double())
    assert model.sizes == [100, 100, 50] * 2
    assert set(model.modes) == {False}
    assert model.training is training
    assert estimate.mean == pytest.approx(estimate.values.mean().item())


def test_importance_weighted_rejects_no_samples():
    with pytest.raises(ValueError, match="at least 1"):
        importance_weighted_log_likelihood(SumModel(), torch.zeros(2, 2), num_samples=0)


# --- the IWAE bound on a model with tractable evidence -------------------------------------------

W_TRUE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
PSI_TRUE = torch.full((3,), 0.5, dtype=torch.float64)


@pytest.fixture(scope="module")
def imperfect():
    """The true linear-Gaussian model with an encoder that is deliberately off: its means are
    shrunk by 20%, its covariance is diagonal and 1.5 times the exact marginal variances."""
    x = factor_analysis_data(200, W_TRUE, PSI_TRUE.sqrt(), seed=1).x.double()
    S = torch.linalg.inv(
        torch.eye(2, dtype=torch.float64) + W_TRUE.T @ (W_TRUE / PSI_TRUE[:, None])
    )
    M = S @ W_TRUE.T / PSI_TRUE  # the exact posterior mean is M x
    model = LinearGaussianVAE(W_TRUE, PSI_TRUE, 0.8 * M, torch.zeros(2), (1.5 * S.diag()).log())
    exact = log_evidence(x, W_TRUE, PSI_TRUE)
    q_mean, q_log_var = model.encode(x)
    post_mean, post_cov = posterior(x, W_TRUE, PSI_TRUE)
    kl = kl_mvn(q_mean.detach(), torch.diag(q_log_var[0].exp()).detach(), post_mean, post_cov)
    return model, x, exact, kl


def _stderr(values: torch.Tensor) -> float:
    return values.std().item() / math.sqrt(len(values))


def test_iwae_approaches_exact_evidence(imperfect):
    model, x, exact, kl = imperfect
    torch.manual_seed(4)
    gaps = {}
    for k, repeats in ((1, 20), (10, 5), (1000, 1)):  # repeats: independent estimates per example
        estimate = importance_weighted_log_likelihood(
            model, x.repeat(repeats, 1), num_samples=k, batch_size=1000, samples_per_pass=500
        )
        error = estimate.values - exact.repeat(repeats)  # per example
        gaps[k] = (error.mean().item(), _stderr(error))

    # K = 1 is the ELBO: its expected gap is exactly KL(q(z|x) || p(z|x)), known here.
    mean1, se1 = gaps[1]
    assert abs(mean1 + kl.mean().item()) < 4 * se1
    assert kl.mean().item() > 8 * se1  # the encoder is far enough off for the test to mean much

    # the error shrinks as K grows ...
    mean10, se10 = gaps[10]
    mean1000, se1000 = gaps[1000]
    assert mean1 + 4 * math.hypot(se1, se10) < mean10
    assert abs(mean1000) + 4 * math.hypot(se1, se1000) < abs(mean1)

    # ... and at K = 1000 it is zero within its standard error. The remaining bias is about
    # chi^2(p(z|x) || q) / (2K); estimate it to show it is below the tolerance.
    with torch.no_grad():
        ratio = (model.log_importance_weights(x, 2000) - exact).exp()  # p(x, z)/q/p(x), mean 1
    # the weights are right: E_q[p(x, z) / q(z | x)] = p(x)
    assert abs(ratio.mean().item() - 1) < 4 * ratio.std().item() / math.sqrt(ratio.numel())
    bias = ratio.var(0).mean().item() / (2 * 1000)
    assert bias < se1000
    assert abs(mean1000) < 4 * se1000 + bias
    assert se1000 < 0.01


def test_iwae_exceeds_elbo_on_average(imperfect):
    model, x, exact, kl = imperfect
    torch.manual_seed(5)
    elbo = elbo_per_example(model, x.repeat(20, 1))  # many single-sample ELBO estimates
    # the ELBO estimator is unbiased for log p(x) - KL(q || p(z|x))
    expected = (exact - kl).mean().item()
    assert abs(elbo.mean().item() - expected) < 4 * _stderr(elbo - exact.repeat(20))
    iwae = importance_weighted_log_likelihood(model, x, num_samples=100, batch_size=200)
    # compare the errors (estimate - exact log p(x)), which vary much less between examples
    elbo_error = elbo - exact.repeat(20)
    iwae_error = iwae.values - exact
    difference = iwae_error.mean().item() - elbo_error.mean().item()
    assert difference > 4 * math.hypot(_stderr(iwae_error), _stderr(elbo_error))
    assert iwae_error.mean().item() < 4 * _stderr(iwae_error)  # a lower bound on average
