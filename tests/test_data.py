"""Data plumbing (aevb_utils.data) and the small helpers every chapter uses."""

from __future__ import annotations

import time

import pytest
import torch

import aevb_utils as au
from aevb_utils.data import batches_in_order, shuffled_batch_indices


def test_random_subset_is_random_seeded_and_keeps_rows_together():
    x = torch.arange(100.0)[:, None]
    labels = torch.arange(100)
    first = au.random_subset(x, 10, seed=3)
    assert isinstance(first, torch.Tensor) and first.shape == (10, 1)
    torch.testing.assert_close(first, au.random_subset(x, 10, seed=3))  # seeded
    assert not torch.equal(first[:, 0], torch.arange(10.0))  # not the first rows
    assert len(set(first[:, 0].tolist())) == 10  # without replacement
    images, picked = au.random_subset((x, labels), 10, seed=3)
    torch.testing.assert_close(images, first)
    torch.testing.assert_close(images[:, 0].long(), picked)  # rows stay paired


@pytest.mark.parametrize("size", [0, 101])
def test_random_subset_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="between 1 and the number of examples"):
        au.random_subset(torch.zeros(100, 2), size, seed=0)


def test_batches_in_order_cover_everything_once():
    x, y = torch.arange(7.0), torch.arange(7)
    batches = list(batches_in_order((x, y), 3, torch.device("cpu")))
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    torch.testing.assert_close(torch.cat([b[1] for b in batches]), y)


def test_shuffled_batch_indices_are_full_and_reshuffled():
    batches = shuffled_batch_indices(10, 4, torch.Generator().manual_seed(0))
    epoch = [next(batches) for _ in range(2)]  # 2 full batches, the remainder dropped
    assert all(len(b) == 4 for b in epoch)
    assert len(set(torch.cat(epoch).tolist())) == 8


def test_seeded_bernoulli_binarization_is_fixed():
    grey = torch.rand(50, 784, generator=torch.Generator().manual_seed(0))
    once = au.bernoulli_binarize(grey, generator=torch.Generator().manual_seed(1))
    again = au.bernoulli_binarize(grey, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(once, again)
    assert set(once.unique().tolist()) <= {0.0, 1.0}
    assert abs(once.mean().item() - grey.mean().item()) < 0.01


def test_chapter_timer_adds_up_sections():
    timer = au.ChapterTimer()
    for _ in range(2):
        with timer("nap"):
            time.sleep(0.01)
    with pytest.raises(RuntimeError), timer("failing"):
        raise RuntimeError
    assert timer.seconds["nap"] >= 0.02
    assert "failing" in timer.seconds  # a failing section is still timed
    assert timer.total() >= timer.seconds["nap"]


def test_match_clusters_is_the_best_one_to_one_map():
    labels = [0, 0, 1, 1, 2, 2]
    clusters = [5, 5, 3, 3, 3, 0]
    mapping = au.match_clusters(labels, clusters)
    assert mapping[5] == 0 and mapping[3] in (1, 2)
    assert au.clustering_accuracy(labels, clusters) == pytest.approx(5 / 6)


def test_standard_normal_log_density_and_bernoulli_means():
    z = torch.randn(4, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(au.standard_normal_log_density(z), expected)
    decoder = torch.nn.Linear(3, 5)
    means = au.bernoulli_means(decoder, z)
    assert not means.requires_grad
    torch.testing.assert_close(means, torch.sigmoid(decoder(z)).detach())


def test_local_elbo_rejects_a_log_joint_of_the_wrong_shape():
    mean, log_var = torch.zeros(6, 2), torch.zeros(6, 2)
    with pytest.raises(ValueError, match=r"shape \[num_samples, N\] = \[3, 6\]"):
        au.local_elbo(lambda x, z: z.sum(0), torch.zeros(6, 4), mean, log_var, num_samples=3)


def test_cosine_decay_goes_from_one_to_zero():
    schedule = au.cosine_decay(100)
    assert schedule(0) == 1.0
    assert schedule(50) == pytest.approx(0.5)
    assert schedule(100) == pytest.approx(0.0) and schedule(150) == pytest.approx(0.0)
    assert all(schedule(s) >= schedule(s + 1) for s in range(100))


def test_confusion_matrix_counts_pairs():
    matrix = au.confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match="same length"):
        au.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 2)


def test_fixed_binarization_repeats_and_differs_by_seed():
    grey = torch.rand(20, 784, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(au.fixed_binarization(grey, 3), au.fixed_binarization(grey, 3))
    assert not torch.equal(au.fixed_binarization(grey, 3), au.fixed_binarization(grey, 4))
