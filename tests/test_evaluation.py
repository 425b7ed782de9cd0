"""Evaluation: log-mean-exp, standard errors, average ELBO, IWAE bound, clustering accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import LinearGaussianVAE

from aevb_utils.data import as_tensors
from aevb_utils.densities import gaussian_log_density, kl_mvn
from aevb_utils.evaluation import (
    Estimate,
    average_elbo,
    clustering_accuracy,
    elbo_per_example,
    importance_weighted_log_likelihood,
    log_mean_exp,
    mean_with_stderr,
)
from aevb_utils.factor_analysis import factor_analysis_data, log_evidence, posterior

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


# --- one contract for every model: [batch] ELBOs, [K, batch] log-weights -------------------------


class PerTimeStep(torch.nn.Module):
    """A sequence model that forgot to sum over its 28 time steps."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.tensor(0.0))

    def elbo(self, x):
        return x + self.p  # [batch, 28]: one term per row, not per sequence

    def log_importance_weights(self, x, num_samples):
        return (x + self.p).expand(num_samples, -1, -1)  # [K, batch, 28]


def test_evaluation_rejects_an_elbo_per_time_step():
    x = torch.zeros(5, 28)
    for evaluate in (elbo_per_example, average_elbo):
        with pytest.raises(ValueError, match=r"one ELBO estimate per example, shape \[5\]"):
            evaluate(PerTimeStep(), x)
    expected = r"\[num_samples, batch\] = \[3, 5\]; got shape \(3, 5, 28\)"
    with pytest.raises(ValueError, match=expected):
        importance_weighted_log_likelihood(PerTimeStep(), x, num_samples=3)


def test_mean_with_stderr_rejects_a_matrix():
    with pytest.raises(ValueError, match="one value per example"):
        mean_with_stderr(torch.zeros(4, 28))


class LabelledGaussian(torch.nn.Module):
    """A conditional model with exact evidence: z ~ N(label, 1), x | z ~ N(z, 1), so
    p(x | label) = N(x; label, 2). The proposal q(z | x, label) = N(x, 1) is deliberately off."""

    def log_joint(self, x, label, z):
        unit = torch.zeros_like(z)
        return gaussian_log_density(z[..., None], label[:, None], unit[..., None]) + (
            gaussian_log_density(x, z[..., None], unit[..., None])
        )

    def log_importance_weights(self, x, label, num_samples):
        z = x[:, 0] + torch.randn(num_samples, len(x), dtype=x.dtype)
        log_q = gaussian_log_density(z[..., None], x, torch.zeros_like(x))
        return self.log_joint(x, label, z) - log_q

    def elbo(self, x, label):
        return self.log_importance_weights(x, label, num_samples=1)[0]


def test_labels_pass_through_the_importance_weighted_estimate():
    torch.manual_seed(0)
    label = torch.arange(40, dtype=torch.float64) % 3
    x = (label + math.sqrt(2) * torch.randn(40, dtype=torch.float64))[:, None]
    exact = gaussian_log_density(x, label[:, None], torch.full_like(x, math.log(2)))
    estimate = importance_weighted_log_likelihood(LabelledGaussian(), (x, label), num_samples=2000)
    assert (estimate.values - exact).abs().max() < 0.05
    assert average_elbo(LabelledGaussian(), (x, label)) < exact.mean().item()


class TwoComponentMixture(torch.nn.Module):
    """A discrete latent summed out: y ~ Categorical(pi), z | y ~ N(mu_y, 1), x | z ~ N(z, s2).
    Exactly p(x) = sum_y pi_y N(x; mu_y, 1 + s2). Each log-weight uses one z per component,
    drawn from q(z | x, y), and sums y out: w = sum_y pi_y p(z_y | y) p(x | z_y) / q(z_y | x, y),
    whose expectation is p(x) (the estimator of a Gaussian-mixture VAE, with q(y | x) cancelled)."""

    pi = torch.tensor([0.3, 0.7], dtype=torch.float64)
    mu = torch.tensor([-2.0, 1.5], dtype=torch.float64)
    s2 = 0.5

    def exact_log_evidence(self, x):
        log_var = torch.full_like(self.mu, math.log(1 + self.s2))
        per_y = gaussian_log_density(x[:, None, :], self.mu[:, None], log_var[:, None])
        return torch.logsumexp(self.pi.log() + per_y, dim=-1)

    def log_importance_weights(self, x, num_samples):
        # q(z | x, y): centred between the component mean and x, wider than the posterior
        q_mean = 0.5 * (self.mu + x)  # [N, 2]
        q_log_var = torch.zeros_like(q_mean)
        z = q_mean + torch.randn(num_samples, *q_mean.shape, dtype=x.dtype)  # [K, N, 2]
        log_prior = gaussian_log_density(z[..., None], self.mu[:, None], torch.zeros(2, 1))
        log_lik = gaussian_log_density(
            x[None].expand(num_samples, -1, 2)[..., None], z[..., None],
            torch.full((1,), math.log(self.s2), dtype=x.dtype),
        )
        log_q = gaussian_log_density(z[..., None], q_mean[..., None], q_log_var[..., None])
        return torch.logsumexp(self.pi.log() + log_prior + log_lik - log_q, dim=-1)  # [K, N]

    def elbo(self, x):
        return self.log_importance_weights(x, num_samples=1)[0]


def test_iwae_with_a_discrete_latent_summed_out():
    torch.manual_seed(1)
    model = TwoComponentMixture()
    x = torch.linspace(-4, 4, 30, dtype=torch.float64)[:, None]
    exact = model.exact_log_evidence(x)
    estimate = importance_weighted_log_likelihood(model, x, num_samples=5000, samples_per_pass=500)
    assert (estimate.values - exact).abs().max() < 0.02
    elbo = torch.stack([elbo_per_example(model, x) for _ in range(200)]).mean(0)
    assert (elbo < exact).all()  # Jensen: the average log-weight is below log p(x)


class GaussianChain(torch.nn.Module):
    """A sequence latent: z_1 ~ N(0, 1), z_t = a z_{t-1} + N(0, q), x_t = z_t + N(0, r),
    t = 1..T. The evidence is an exact multivariate Gaussian; each importance weight is one whole
    trajectory z_{1:T}, drawn step by step from a filtering proposal q(z_t | z_{t-1}, x_t)."""

    a, q, r, T = 0.8, 0.5, 0.3, 4

    def exact_log_evidence(self, x):
        t = torch.arange(self.T, dtype=torch.float64)
        variance = [1.0]  # Var z_t
        for _ in range(self.T - 1):
            variance.append(self.a**2 * variance[-1] + self.q)
        variance = torch.tensor(variance, dtype=torch.float64)
        lag = (t[:, None] - t[None, :]).abs()
        earlier = torch.minimum(t[:, None], t[None, :]).long()
        cov = self.a**lag * variance[earlier] + self.r * torch.eye(self.T, dtype=torch.float64)
        zero = torch.zeros(self.T, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(zero, cov).log_prob(x)

    def log_importance_weights(self, x, num_samples):
        z_prev = torch.zeros(num_samples, len(x), dtype=x.dtype)
        log_w = torch.zeros(num_samples, len(x), dtype=x.dtype)
        for t in range(self.T):
            prior_mean = self.a * z_prev if t else z_prev
            prior_var = self.q if t else 1.0
            # a proposal between the prior and the observation, wider than the exact filter
            q_mean, q_var = 0.5 * (prior_mean + x[:, t]), prior_var
            z = q_mean + math.sqrt(q_var) * torch.randn_like(q_mean)
            normal = torch.distributions.Normal
            log_w += normal(prior_mean, math.sqrt(prior_var)).log_prob(z)
            log_w += normal(z, math.sqrt(self.r)).log_prob(x[:, t])
            log_w -= normal(q_mean, math.sqrt(q_var)).log_prob(z)
            z_prev = z
        return log_w  # [K, N]: one weight per whole trajectory

    def elbo(self, x):
        return self.log_importance_weights(x, num_samples=1)[0]


def test_iwae_with_a_sequence_of_latents():
    torch.manual_seed(2)
    model = GaussianChain()
    x = 1.5 * torch.randn(25, model.T, dtype=torch.float64)
    exact = model.exact_log_evidence(x)
    estimate = importance_weighted_log_likelihood(
        model, x, num_samples=20000, samples_per_pass=2000
    )
    assert (estimate.values - exact).abs().max() < 0.05
    few = importance_weighted_log_likelihood(model, x, num_samples=5)
    elbo = average_elbo(model, x)
    assert elbo < few.mean < estimate.mean < exact.mean().item() + 0.01
