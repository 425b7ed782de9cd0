"""The student-run checks (aevb_utils.check) pass the book's solutions and fail wrong answers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import pytest
import torch

import aevb_utils as au
from aevb_utils.check import AnswerError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def book_code(chapter: str, defines: str) -> dict:
    """Run the code of a chapter that defines `defines` (a cell, or a solution's code block)."""
    notebook = nbformat.read(NOTEBOOKS / chapter, as_version=4)
    pattern = re.compile(rf"^(def|class) {defines}\b", re.M)
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    sources += re.findall(r"```python\n(.*?)```", "\n".join(
        cell.source for cell in notebook.cells if cell.cell_type == "markdown"), re.S)
    source = next(source for source in sources if pattern.search(source))
    definition = source[pattern.search(source).start():]  # from the definition on
    namespace = {"torch": torch, "math": math, "au": au}
    exec(definition.split("\n\n\n")[0], namespace)  # the definition, not the code after it
    return namespace


def test_break_even_passes_the_books_function_and_its_value():
    book_break_even = book_code("03_amortized_inference.ipynb", "break_even")["break_even"]
    assert au.check.break_even(book_break_even)
    assert au.check.break_even(book_break_even(784, 128, 2))


@pytest.mark.parametrize(
    "wrong",
    [None, 0, lambda D, H, L: D * H + H * 2 * L, lambda D, H, L: ((D + 1) * H + (H + 1) * 2 * L)],
    ids=["blank", "zero", "no-biases", "not-divided"],
)
def test_break_even_fails_wrong_answers(wrong):
    with pytest.raises(AnswerError):
        au.check.break_even(wrong)


def test_mixture_weights_passes_the_m_step_and_fails_wrong_ones():
    assert au.check.mixture_weights(lambda r: r.sum(0) / len(r))
    for wrong in [lambda r: r.sum(0), lambda r: r.mean(1)[:3], None]:
        with pytest.raises(AnswerError):
            au.check.mixture_weights(wrong)


def test_meanfield_variance_ratio():
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)
    ratio = (1 / torch.linalg.inv(cov).diagonal() / cov.diagonal())[0]  # the book's solution cell
    assert au.check.meanfield_variance_ratio(ratio.item(), cov)
    rho = 0.6 / math.sqrt(2.0)
    assert au.check.meanfield_variance_ratio(1 - rho**2, cov)
    for wrong in [0.0, 1 / (1 - rho**2), rho, float("nan")]:
        with pytest.raises(AnswerError):
            au.check.meanfield_variance_ratio(wrong, cov)


def test_optimal_baseline():
    assert au.check.optimal_baseline(lambda f, s: (f * s**2).mean() / (s**2).mean())
    for wrong in [lambda f, s: f.mean(), lambda f, s: 0.0, lambda f, s: (f * s).mean()]:
        with pytest.raises(AnswerError):
            au.check.optimal_baseline(wrong)


def book_mean_field_gap(W: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """The formula of chapter 5's solution cell of ex-fa-mean-field."""
    P = torch.eye(W.shape[1], dtype=W.dtype) + W.T @ (W / psi[:, None])
    return 0.5 * (torch.diagonal(P).log().sum() - torch.linalg.slogdet(P).logabsdet)


def test_mean_field_gap():
    assert au.check.mean_field_gap(book_mean_field_gap)
    W, psi = torch.tensor(au.PAPER_W), torch.tensor(au.PAPER_NOISE_STD) ** 2
    assert au.check.mean_field_gap(book_mean_field_gap(W, psi).item(), W, psi)
    with pytest.raises(AnswerError):
        au.check.mean_field_gap(lambda W, psi: -book_mean_field_gap(W, psi))
    with pytest.raises(AnswerError):  # without Psi^-1
        au.check.mean_field_gap(lambda W, psi: book_mean_field_gap(W, torch.ones_like(psi)))
    with pytest.raises(AnswerError, match="also pass"):
        au.check.mean_field_gap(0.1)


def test_continuous_bernoulli_passes_the_books_solution():
    namespace = book_code("06_vae.ipynb", "continuous_bernoulli_log_likelihood")
    assert au.check.continuous_bernoulli(namespace["continuous_bernoulli_log_likelihood"])


def test_continuous_bernoulli_fails_wrong_answers():
    def no_limit(logits, x):  # 0 / 0 at logit 0
        return au.bernoulli_log_likelihood(logits, x) + torch.log(
            logits / torch.tanh(logits / 2)).sum(-1)

    def no_normalizer(logits, x):
        return au.bernoulli_log_likelihood(logits, x)

    def per_pixel(logits, x):
        return -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")

    for wrong in [no_limit, no_normalizer, per_pixel, None]:
        with pytest.raises(AnswerError):
            au.check.continuous_bernoulli(wrong)


def test_majority_at_least_hungarian():
    assert au.check.majority_at_least_hungarian(0.8, 0.75)
    assert au.check.majority_at_least_hungarian(0.75, 0.75)
    for majority, hungarian in [(0.7, 0.75), (80, 75)]:
        with pytest.raises(AnswerError):
            au.check.majority_at_least_hungarian(majority, hungarian)


def book_estimator(log_likelihood, x, mean, log_var):
    """The estimator of every model chapter: one reparameterized sample, the KL in closed form."""
    z = au.reparameterize(mean, log_var)
    return log_likelihood(x, z) - au.kl_standard_normal(mean, log_var)


def test_elbo_estimator_passes_the_books_estimator():
    assert au.check.elbo_estimator(book_estimator, num_estimates=400)


def sample_slip(log_likelihood, x, mean, log_var):
    z = torch.distributions.Normal(mean, (0.5 * log_var).exp()).sample()
    return log_likelihood(x, z) - au.kl_standard_normal(mean, log_var)


def batch_mean(log_likelihood, x, mean, log_var):
    return book_estimator(log_likelihood, x, mean, log_var).mean()


def kl_sign(log_likelihood, x, mean, log_var):
    z = au.reparameterize(mean, log_var)
    return log_likelihood(x, z) + au.kl_standard_normal(mean, log_var)


def std_for_log_var(log_likelihood, x, mean, log_var):  # exp(log_var) used as the std
    z = mean + log_var.exp() * torch.randn_like(mean)
    return log_likelihood(x, z) - au.kl_standard_normal(mean, log_var)


def non_finite(log_likelihood, x, mean, log_var):
    return book_estimator(log_likelihood, x, mean, log_var) / 0.0


@pytest.mark.parametrize(
    "wrong, message",
    [(sample_slip, "sample"), (batch_mean, "per example"), (kl_sign, "biased"),
     (std_for_log_var, "biased"), (non_finite, "NaN or infinite"), (None, "function")],
    ids=["sample-slip", "batch-mean", "kl-sign", "std-for-log-var", "non-finite", "blank"],
)
def test_elbo_estimator_catches_the_classic_mistakes(wrong, message):
    with pytest.raises(AnswerError, match=message):
        au.check.elbo_estimator(wrong, num_estimates=400)


def test_unlabelled_elbo_passes_the_books_solution():
    namespace = book_code("07_cvae.ipynb", "unlabelled_elbo")
    assert au.check.unlabelled_elbo(namespace["unlabelled_elbo"])


def test_unlabelled_elbo_fails_wrong_answers():
    def no_entropy(labelled, log_q, log_prior):
        return (log_q.exp() * (labelled + log_prior)).sum(-1)

    def log_mixture(labelled, log_q, log_prior):  # the bound at the best q, whatever q is
        return torch.logsumexp(labelled + log_prior, dim=-1)

    def batch_mean(labelled, log_q, log_prior):
        return (log_q.exp() * (labelled + log_prior - log_q)).sum(-1).mean()

    for wrong, message in [(no_entropy, "unlabelled_elbo"), (log_mixture, "best q"),
                           (batch_mean, "shape"), (None, "function itself")]:
        with pytest.raises(AnswerError, match=message):
            au.check.unlabelled_elbo(wrong)


def test_dropped_gradient_passes_the_books_solution():
    namespace = book_code("09_vrnn.ipynb", "compare_gradients")
    assert au.check.dropped_gradient(namespace["compare_gradients"])


def test_dropped_gradient_fails_wrong_answers():
    def against_cut(true, cut):
        return (true - cut).norm() / cut.norm(), torch.cosine_similarity(true, cut, dim=0)

    def no_share(true, cut):
        return (true - cut).norm(), torch.cosine_similarity(true, cut, dim=0)

    def dot_not_cosine(true, cut):
        return (true - cut).norm() / true.norm(), torch.dot(true, cut)

    for wrong, message in [(against_cut, "true"), (no_share, "share, cosine"),
                           (dot_not_cosine, "share, cosine"), (lambda t, c: 0.3, "two numbers")]:
        with pytest.raises(AnswerError, match=message):
            au.check.dropped_gradient(wrong)
