"""Shared code of the companion book to *Training Latent Variable Models with Auto-encoding
Variational Bayes: A Tutorial* (Yang Zhi-Han, 2022).

What every chapter needs and no reader wants to read twice: data loading, the one AEVB training
loop, evaluation, plotting, and seeding and device choice. Each chapter writes its own model and
its own per-example ELBO estimator next to the mathematics that derives them.
"""

from .densities import (
    bernoulli_log_likelihood,
    gaussian_log_density,
    kl_gaussians,
    kl_standard_normal,
    reparameterize,
)
from .evaluation import (
    Estimate,
    average_elbo,
    clustering_accuracy,
    elbo_per_example,
    importance_weighted_log_likelihood,
    log_mean_exp,
    mean_with_stderr,
)
from .files import CorruptDataError, DataNotFoundError
from .linear_gaussian import kl_mvn, log_evidence, marginal_covariance, posterior
from .local_inference import LocalGaussians, fit_local_gaussians, gaussian_entropy, local_elbo
from .mnist import (
    ImageData,
    bernoulli_binarize,
    load_binarized_mnist,
    load_mnist,
    threshold_binarize,
)
from .networks import mlp
from .plotting import image_grid, latent_scatter, plot_learning_curves, use_book_style
from .runtime import budget, choose_device, is_smoke, seed_everything, set_cpu_threads, setup
from .synthetic import PAPER_NOISE_STD, PAPER_W, factor_analysis_data
from .training import History, NonFiniteELBOError, fit

__all__ = [
    "PAPER_NOISE_STD",
    "PAPER_W",
    "CorruptDataError",
    "DataNotFoundError",
    "Estimate",
    "History",
    "LocalGaussians",
    "ImageData",
    "NonFiniteELBOError",
    "average_elbo",
    "bernoulli_binarize",
    "bernoulli_log_likelihood",
    "budget",
    "choose_device",
    "clustering_accuracy",
    "elbo_per_example",
    "factor_analysis_data",
    "fit",
    "fit_local_gaussians",
    "gaussian_entropy",
    "gaussian_log_density",
    "image_grid",
    "importance_weighted_log_likelihood",
    "is_smoke",
    "kl_gaussians",
    "kl_mvn",
    "kl_standard_normal",
    "latent_scatter",
    "load_binarized_mnist",
    "local_elbo",
    "load_mnist",
    "log_evidence",
    "log_mean_exp",
    "marginal_covariance",
    "mean_with_stderr",
    "mlp",
    "plot_learning_curves",
    "posterior",
    "reparameterize",
    "seed_everything",
    "set_cpu_threads",
    "setup",
    "threshold_binarize",
    "use_book_style",
]
