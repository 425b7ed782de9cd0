"""Shared code of the companion book to *Training Latent Variable Models with Auto-encoding
Variational Bayes: A Tutorial* (Yang Zhi-Han, 2022).

What every chapter needs and no reader wants to read twice: data loading, the one AEVB training
loop, evaluation, plotting, and seeding and device choice. Each chapter writes its own model and
its own per-example ELBO estimator next to the mathematics that derives them.
"""

from . import check as check  # au.check: checks students run on their answers
from .data import Data, as_tensors, random_subset
from .densities import (
    bernoulli_log_likelihood,
    gaussian_entropy,
    gaussian_log_density,
    kl_diagonal_to_full,
    kl_gaussians,
    kl_mvn,
    kl_standard_normal,
    reparameterize,
    standard_normal_log_density,
)
from .evaluation import (
    Estimate,
    average_elbo,
    clustering_accuracy,
    confusion_matrix,
    elbo_per_example,
    importance_weighted_log_likelihood,
    log_mean_exp,
    match_clusters,
    mean_with_stderr,
)
from .factor_analysis import (
    PAPER_NOISE_STD,
    PAPER_W,
    em_step,
    factor_analysis_data,
    gaussian_q_elbo,
    log_evidence,
    marginal_covariance,
    posterior,
)
from .files import CorruptDataError, DataNotFoundError
from .glue import glue
from .judge import DigitJudge, digit_judge, judge_steps, train_digit_judge
from .local_inference import LocalGaussians, fit_local_gaussians, local_elbo
from .mixture import (
    DiagonalGaussianMixture,
    GaussianMixture,
    MixtureFit,
    fit_gaussian_mixture,
    mixture_m_step,
)
from .mnist import (
    ImageData,
    bernoulli_binarize,
    fixed_binarization,
    load_binarized_mnist,
    load_mnist,
    threshold_binarize,
)
from .networks import bernoulli_means, mlp
from .plotting import (
    image_grid,
    latent_scatter,
    plot_confusion_matrix,
    plot_learning_curves,
    use_book_style,
)
from .runtime import (
    ChapterTimer,
    budget,
    choose_device,
    is_smoke,
    seed_everything,
    set_cpu_threads,
    setup,
)
from .training import History, NonFiniteELBOError, cosine_decay, fit, set_trainable

__all__ = [
    "PAPER_NOISE_STD",
    "PAPER_W",
    "ChapterTimer",
    "CorruptDataError",
    "Data",
    "DigitJudge",
    "DataNotFoundError",
    "DiagonalGaussianMixture",
    "Estimate",
    "GaussianMixture",
    "History",
    "ImageData",
    "MixtureFit",
    "LocalGaussians",
    "NonFiniteELBOError",
    "as_tensors",
    "average_elbo",
    "bernoulli_binarize",
    "bernoulli_log_likelihood",
    "bernoulli_means",
    "budget",
    "choose_device",
    "clustering_accuracy",
    "confusion_matrix",
    "cosine_decay",
    "digit_judge",
    "elbo_per_example",
    "em_step",
    "factor_analysis_data",
    "fit",
    "fit_gaussian_mixture",
    "fixed_binarization",
    "fit_local_gaussians",
    "gaussian_entropy",
    "gaussian_log_density",
    "gaussian_q_elbo",
    "glue",
    "image_grid",
    "importance_weighted_log_likelihood",
    "is_smoke",
    "judge_steps",
    "kl_diagonal_to_full",
    "kl_gaussians",
    "kl_mvn",
    "kl_standard_normal",
    "latent_scatter",
    "load_binarized_mnist",
    "load_mnist",
    "local_elbo",
    "log_evidence",
    "log_mean_exp",
    "marginal_covariance",
    "match_clusters",
    "mean_with_stderr",
    "mixture_m_step",
    "mlp",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "posterior",
    "random_subset",
    "reparameterize",
    "seed_everything",
    "set_cpu_threads",
    "set_trainable",
    "setup",
    "standard_normal_log_density",
    "threshold_binarize",
    "train_digit_judge",
    "use_book_style",
]
