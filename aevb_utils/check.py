"""Checks a student runs on their own answer to an exercise, from the notebook.

    import aevb_utils as au
    au.check.break_even(my_break_even)        # chapter 3

Each check prints one line when the answer passes and raises `AnswerError` with a message that
says what is wrong (and, where it helps, what to look at) when it does not. The checks compare
with closed forms evaluated on inputs of their own, so a hard-coded number cannot pass them.
The one check that compares with a Monte Carlo estimate (`elbo_estimator`, the capstone's) uses
more samples at the full budget than at the smoke budget and allows four standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .densities import bernoulli_log_likelihood, kl_standard_normal
from .factor_analysis import gaussian_q_elbo
from .runtime import budget

__all__ = [
    "AnswerError",
    "mixture_weights",
    "meanfield_variance_ratio",
    "break_even",
    "optimal_baseline",
    "mean_field_gap",
    "continuous_bernoulli",
    "unlabelled_elbo",
    "majority_at_least_hungarian",
    "dropped_gradient",
    "elbo_estimator",
]


class AnswerError(AssertionError):
    """An exercise's answer does not pass its check; the message says why."""


def _passed(what: str) -> bool:
    print(f"passed: {what}")
    return True


def _close(answer: torch.Tensor, expected: torch.Tensor, what: str, rtol: float = 1e-6) -> None:
    answer = torch.as_tensor(answer, dtype=torch.float64)
    expected = expected.to(torch.float64)
    if answer.shape != expected.shape:
        raise AnswerError(
            f"{what}: expected shape {tuple(expected.shape)}, got {tuple(answer.shape)}"
        )
    if not torch.isfinite(answer).all():
        raise AnswerError(f"{what}: the answer has a NaN or an infinite value")
    if not torch.allclose(answer, expected, rtol=rtol, atol=1e-9):
        worst = (answer - expected).abs().argmax()
        raise AnswerError(
            f"{what}: got {answer.flatten()[worst].item():.6g} where the closed form gives "
            f"{expected.flatten()[worst].item():.6g}"
        )


def _callable(answer: object, what: str) -> Callable:
    if not callable(answer):
        raise AnswerError(f"{what}: pass your function itself (no parentheses), got {answer!r}")
    return answer


# --- chapter 1: EM -------------------------------------------------------------------------


def mixture_weights(m_step_weights: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """ex-em-weights: `m_step_weights(responsibilities [N, K]) -> weights [K]`, pi_k = N_k / N."""
    fn = _callable(m_step_weights, "mixture_weights")
    generator = torch.Generator().manual_seed(1)
    for n, k in [(50, 3), (7, 5)]:
        scores = torch.randn(n, k, generator=generator, dtype=torch.float64)
        responsibilities = torch.softmax(scores, dim=1)
        _close(fn(responsibilities), responsibilities.sum(0) / n,
               f"mixture weights for N={n}, K={k} (pi_k = N_k / N, N_k = sum_i r_ik)")
    return _passed("the M-step's mixture weights are N_k / N")


# --- chapter 2: approximate EM ---------------------------------------------------------------


def meanfield_variance_ratio(ratio: float, posterior_covariance: torch.Tensor) -> bool:
    """ex-approx-meanfield (c): v_1 / Sigma_11 for a 2 x 2 posterior covariance, 1 - rho^2."""
    cov = torch.as_tensor(posterior_covariance, dtype=torch.float64)
    if cov.shape != (2, 2):
        raise AnswerError("meanfield_variance_ratio: the posterior covariance must be 2 x 2, "
                          f"got {tuple(cov.shape)}")
    expected = 1 / torch.linalg.inv(cov)[0, 0] / cov[0, 0]
    if torch.as_tensor(ratio).item() > 1:
        raise AnswerError("meanfield_variance_ratio: the mean-field variance cannot exceed the "
                          "marginal one (ratio > 1); did you divide the wrong way round?")
    _close(torch.as_tensor(ratio), expected, "v_1 / Sigma_11 (v_1 = 1 / P_11, P = Sigma^-1)")
    return _passed(f"v_1 / Sigma_11 = {expected.item():.4f} = 1 - rho^2")


# --- chapter 3: amortized inference -----------------------------------------------------------


def _encoder_parameters(D: int, H: int, L: int) -> int:
    return (D + 1) * H + (H + 1) * 2 * L


def break_even(answer: Callable[[int, int, int], int] | int, D: int = 784, H: int = 128,
               L: int = 2) -> bool:
    """ex-amort-break-even (b): the N beyond which a table of diagonal Gaussians (2L numbers per
    example) has more parameters than an encoder D -> H -> 2L. Pass your function
    `break_even(D, H, L)` (checked on several sizes) or its value for (D, H, L)."""
    sizes = [(D, H, L), (10, 5, 1), (784, 500, 50)] if callable(answer) else [(D, H, L)]
    for d, h, l in sizes:
        value = answer(d, h, l) if callable(answer) else answer
        expected = _encoder_parameters(d, h, l) / (2 * l)  # the table is larger once N > this
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AnswerError(f"break_even(D={d}, H={h}, L={l}): expected a number, got {value!r}")
        if not expected - 1 <= value <= expected + 1:
            raise AnswerError(
                f"break_even(D={d}, H={h}, L={l}) = {value}, but the encoder has "
                f"{_encoder_parameters(d, h, l)} parameters; count the weights and the biases of "
                "both layers, and divide by the table's numbers per example"
            )
    return _passed("the break-even number of examples")


# --- chapter 4: the reparameterization trick ------------------------------------------------


def optimal_baseline(baseline: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """ex-reparam-baseline (b): `baseline(f, s) -> b` from samples of f(z) and of the score
    s = d log q / d phi ([S] each), the variance-minimizing b* = E[f s^2] / E[s^2]."""
    fn = _callable(baseline, "optimal_baseline")
    generator = torch.Generator().manual_seed(2)
    s = torch.randn(10_000, generator=generator, dtype=torch.float64)
    f = (1 + s) ** 2  # f correlated with the score: b* differs from the plain mean of f
    expected = (f * s**2).mean() / (s**2).mean()
    b = torch.as_tensor(fn(f, s), dtype=torch.float64)
    if b.numel() == 1 and abs(b.item() - f.mean().item()) < 1e-9:
        raise AnswerError("optimal_baseline: that is the mean of f, a good baseline but not the "
                          "variance-minimizing one; differentiate E[(f - b)^2 s^2] in b")
    _close(b.reshape(()), expected, "the variance-minimizing baseline")
    return _passed("b* = E[f s^2] / E[s^2]")


# --- chapter 5: factor analysis -----------------------------------------------------------------


def mean_field_gap(gap: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | float,
                   W: torch.Tensor | None = None, psi: torch.Tensor | None = None) -> bool:
    """ex-fa-mean-field (a): the gap 1/2 (sum_i log P_ii - log det P), P = I + W^T Psi^-1 W.
    Pass your function `gap(W, psi)`, or its value together with the W and psi it is for."""
    cases = [(W, psi)] if not callable(gap) else []
    generator = torch.Generator().manual_seed(3)
    if callable(gap):
        cases = [(torch.randn(3, 2, generator=generator, dtype=torch.float64),
                  torch.rand(3, generator=generator, dtype=torch.float64) + 0.1) for _ in range(3)]
    elif W is None or psi is None:
        raise AnswerError("mean_field_gap: with a value, also pass the W and psi it is for")
    for w, p in cases:
        w, p = torch.as_tensor(w, dtype=torch.float64), torch.as_tensor(p, dtype=torch.float64)
        P = torch.eye(w.shape[1], dtype=w.dtype) + w.T @ (w / p[:, None])
        expected = 0.5 * (P.diagonal().log().sum() - torch.linalg.slogdet(P).logabsdet)
        value = gap(w, p) if callable(gap) else gap
        if torch.as_tensor(value).item() < 0:
            raise AnswerError("mean_field_gap: the gap is a KL divergence and cannot be negative")
        _close(torch.as_tensor(value).reshape(()), expected, "the mean-field gap")
    return _passed("the mean-field gap 1/2 (sum log P_ii - log det P)")


# --- chapter 6: the VAE ------------------------------------------------------------------------


def continuous_bernoulli(
    log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> bool:
    """ex-vae-continuous-bernoulli: `log_likelihood(logits [N, D], x [N, D]) -> [N]`, the
    continuous-Bernoulli log-density, finite everywhere (C(1/2) = 2 at logit 0, where the closed
    form is 0 / 0)."""
    fn = _callable(log_likelihood, "continuous_bernoulli")
    logits = torch.tensor([[-30.0, -5.0, -1.0, -1e-4, 0.0], [1e-6, 0.5, 3.0, 20.0, 0.0]],
                          dtype=torch.float64)
    x = torch.tensor([[0.0, 0.2, 0.5, 0.9, 1.0], [0.3, 1.0, 0.0, 0.7, 0.5]], dtype=torch.float64)
    value = torch.as_tensor(fn(logits, x), dtype=torch.float64)
    if value.shape != (2,):
        raise AnswerError(f"continuous_bernoulli: expected one value per image, shape (2,), got "
                          f"{tuple(value.shape)}; sum over the pixels")
    if not torch.isfinite(value).all():
        raise AnswerError("continuous_bernoulli is not finite: near logit 0 use the limit "
                          "C(1/2) = 2 (or a Taylor series), and compute log C from the logits")
    lam = torch.sigmoid(logits)
    small = logits.abs() < 1e-3
    safe = torch.where(small, torch.full_like(lam, 0.25), lam)
    log_c = torch.where(small, math.log(2) + logits**2 / 12,
                        torch.log(2 * torch.atanh(1 - 2 * safe) / (1 - 2 * safe)))
    expected = bernoulli_log_likelihood(logits, x) + log_c.sum(-1)
    _close(value, expected, "the continuous-Bernoulli log-likelihood", rtol=1e-5)
    return _passed("the continuous-Bernoulli log-likelihood and its normalizer")


# --- chapter 7: the conditional VAE ------------------------------------------------------------


def unlabelled_elbo(
    bound: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> bool:
    """ex-cvae-semisupervised: `bound(labelled_elbos [N, C], log_q_y [N, C], log_prior_y [C])
    -> [N]`, the ELBO of an unlabelled digit, sum_y q(y | x) [L(x, y) + log p(y)] + H(q(y | x))."""
    fn = _callable(bound, "unlabelled_elbo")
    generator = torch.Generator().manual_seed(7)
    n, classes = 6, 10
    labelled = -100 + 10 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    log_q = torch.randn(n, classes, generator=generator, dtype=torch.float64).log_softmax(-1)
    log_prior = torch.randn(classes, generator=generator, dtype=torch.float64).log_softmax(-1)
    q = log_q.exp()
    expected = (q * (labelled + log_prior - log_q)).sum(-1)
    answer = fn(labelled, log_q, log_prior)
    if not isinstance(answer, torch.Tensor):
        raise AnswerError(f"unlabelled_elbo: return a tensor of shape ({n},), got "
                          f"{type(answer).__name__}")
    log_mixture = torch.logsumexp(labelled + log_prior, dim=-1)
    if answer.shape == expected.shape and torch.allclose(answer.double(), log_mixture):
        raise AnswerError(
            "unlabelled_elbo: this is log sum_y p(y) exp(L(x, y)), the bound at the best "
            "q(y | x); the exercise's bound weights the labelled ELBOs by the classifier's "
            "q(y | x) and adds its entropy"
        )
    _close(answer, expected, "unlabelled_elbo")
    # The bound is tight in q exactly when q(y | x) is proportional to p(y) exp(L(x, y)).
    best_q = (labelled + log_prior).log_softmax(-1)
    _close(fn(labelled, best_q, log_prior), log_mixture, "unlabelled_elbo at the best q(y | x)")
    return _passed("the ELBO of an unlabelled digit")


# --- chapter 8: the Gaussian-mixture VAE ---------------------------------------------------------


def majority_at_least_hungarian(majority: float, hungarian: float) -> bool:
    """ex-gmvae-majority: majority-vote accuracy >= Hungarian-matching accuracy, both in [0, 1]."""
    for name, value in [("majority", majority), ("hungarian", hungarian)]:
        if not 0 <= float(value) <= 1:
            raise AnswerError(f"majority_at_least_hungarian: {name} = {value} is not an accuracy "
                              "in [0, 1] (pass fractions, not percentages)")
    if float(majority) < float(hungarian) - 1e-12:
        raise AnswerError(
            f"majority accuracy {majority} is below the Hungarian one {hungarian}: that cannot "
            "happen, since a one-to-one matching is one of the maps the majority vote improves "
            "on; check that both use the same clusters and labels"
        )
    return _passed("majority vote >= one-to-one matching")


# --- chapter 9: the variational RNN -------------------------------------------------------------


def dropped_gradient(
    compare: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]],
) -> bool:
    """ex-vrnn-gru-gradient: `compare(true_gradient, cut_gradient) -> (dropped, cosine)`, the
    norm of the part that `.sample()` drops as a share of the true gradient's norm,
    |g - g_cut| / |g|, and the cosine between the two gradients."""
    fn = _callable(compare, "dropped_gradient")
    generator = torch.Generator().manual_seed(9)
    true = torch.randn(50, generator=generator, dtype=torch.float64)
    cut = 0.6 * true + 0.5 * torch.randn(50, generator=generator, dtype=torch.float64)
    expected = torch.tensor([((true - cut).norm() / true.norm()).item(),
                             torch.dot(true, cut).item() / (true.norm() * cut.norm()).item()],
                            dtype=torch.float64)
    answer = fn(true, cut)
    try:
        dropped, cosine = (float(v) for v in answer)
    except (TypeError, ValueError):
        raise AnswerError("dropped_gradient: return two numbers, (dropped share, cosine), got "
                          f"{answer!r}") from None
    if abs(dropped - (true - cut).norm().item() / cut.norm().item()) < 1e-9:
        raise AnswerError("dropped_gradient: the share is measured against the true (.rsample()) "
                          "gradient's norm, |g - g_cut| / |g|, not the cut one's")
    _close(torch.tensor([dropped, cosine]), expected, "dropped_gradient (share, cosine)")
    _close(torch.tensor([float(v) for v in fn(true, true)]), torch.tensor([0.0, 1.0]),
           "dropped_gradient of two equal gradients")
    return _passed("the share of the gradient that .sample() drops, and the cosine")


# --- the capstone: an ELBO estimator of your own -------------------------------------------------


def elbo_estimator(
    estimate: Callable[[Callable, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    num_estimates: int | None = None,
    seed: int = 0,
) -> bool:
    """The capstone's checker: `estimate(log_likelihood, x, mean, log_var) -> [N]` is a
    per-example ELBO estimator for q = N(mean, diag exp(log_var)), prior N(0, I), where
    `log_likelihood(x, z)` returns log p(x | z), shape [N] (z may carry leading sample dims).

    On the linear-Gaussian model of chapter 2, where the exact ELBO is known
    (`au.gaussian_q_elbo`), it checks the classic mistakes: one ELBO per example (not a batch
    mean), finite values, no bias (the average of `num_estimates` estimates within four
    standard errors of the exact ELBO), and a gradient reaching the encoder's output through
    the reconstruction term (the `.sample()` slip, which cuts it)."""
    fn = _callable(estimate, "elbo_estimator")
    num_estimates = num_estimates or budget(full=4000, smoke=400)
    generator = torch.Generator().manual_seed(seed)
    n, d, latent = 8, 3, 2
    W = torch.randn(d, latent, generator=generator, dtype=torch.float64)
    psi = torch.rand(d, generator=generator, dtype=torch.float64) + 0.2
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    mean = torch.randn(n, latent, generator=generator, dtype=torch.float64).requires_grad_()
    log_var = 0.3 * torch.randn(n, latent, generator=generator, dtype=torch.float64)
    log_var.requires_grad_()

    latents_seen: list[torch.Tensor] = []

    def log_likelihood(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        latents_seen.append(z)
        residual = x - z @ W.T
        return -0.5 * ((residual**2 / psi) + psi.log() + math.log(2 * math.pi)).sum(-1)

    torch.manual_seed(seed)
    first = fn(log_likelihood, x, mean, log_var)
    if not isinstance(first, torch.Tensor) or first.shape != (n,):
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
        raise AnswerError(
            f"elbo_estimator: expected one ELBO per example, shape ({n},), got {shape}; return "
            "the per-example values (au.fit takes the mean), summed over the data dimensions"
        )
    if not torch.isfinite(first).all():
        raise AnswerError("elbo_estimator: the ELBO has NaN or infinite values; check the "
                          "log-variances (exp of log_var) and the log-likelihood's normalizer")
    if not latents_seen:
        raise AnswerError("elbo_estimator: the estimator never called log_likelihood(x, z)")
    reconstruction = log_likelihood(x, latents_seen[0]).sum()
    gradient = (torch.autograd.grad(reconstruction, mean, allow_unused=True)[0]
                if reconstruction.requires_grad else None)
    if gradient is None or gradient.abs().max() == 0:
        raise AnswerError(
            "elbo_estimator: the reconstruction term gives the encoder's mean no gradient: z has "
            "no path to (mean, log_var). Draw z with au.reparameterize (or .rsample()), not "
            ".sample()"
        )
    with torch.no_grad():
        exact = gaussian_q_elbo(x, W, psi, mean, torch.diag_embed(log_var.exp()))
        draws = torch.stack([fn(log_likelihood, x, mean, log_var) for _ in range(num_estimates)])
    stderr = draws.std(0) / math.sqrt(num_estimates)
    z_scores = (draws.mean(0) - exact) / stderr.clamp_min(1e-12)
    if z_scores.abs().max() > 4:
        worst = z_scores.abs().argmax()
        raise AnswerError(
            f"elbo_estimator is biased: on example {worst.item()} its average over "
            f"{num_estimates} estimates is {draws.mean(0)[worst].item():.4f}, the exact ELBO is "
            f"{exact[worst].item():.4f} ({z_scores[worst].item():+.1f} standard errors). Check "
            "the KL's sign and its closed form, 1/2 sum(exp(v) + m^2 - 1 - v)"
        )
    kl = kl_standard_normal(mean, log_var)  # for the message only: the size of the regularizer
    return _passed(f"per-example shape, finite, unbiased within 4 standard errors over "
                   f"{num_estimates} estimates (average KL {kl.mean().item():.2f}), and a "
                   "reparameterized gradient")
