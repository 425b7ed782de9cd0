"""The digit judge: shapes, input checks, shifts, determinism and the cache round trip."""

import pytest
import torch

import aevb_utils as au
from aevb_utils.judge import random_shift


def _toy_digits(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    # Two classes a classifier must tell apart: ink in the top half or in the bottom half.
    labels = torch.arange(n) % 2
    images = torch.zeros(n, 28, 28)
    images[labels == 0, 4:12, 8:20] = 0.9
    images[labels == 1, 16:24, 8:20] = 0.9
    return images.reshape(n, 784), labels


def test_judge_learns_a_separable_task_and_reports_probabilities():
    images, labels = _toy_digits()
    judge = au.train_digit_judge(images, labels, steps=60, batch_size=32)
    probs = judge.probabilities(images)
    assert probs.shape == (64, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(64), atol=1e-5)
    assert judge.accuracy(images, labels) == 1.0
    assert not judge.training, "a trained judge is returned in eval mode (dropout off)"


def test_training_is_seeded():
    images, labels = _toy_digits()
    a = au.train_digit_judge(images, labels, steps=5, batch_size=16, seed=3)
    b = au.train_digit_judge(images, labels, steps=5, batch_size=16, seed=3)
    assert torch.equal(a.probabilities(images), b.probabilities(images))


def test_bad_inputs_are_explained():
    images, labels = _toy_digits()
    with pytest.raises(ValueError, match=r"\[N, 784\]"):
        au.train_digit_judge(images.reshape(-1, 28, 28), labels, steps=1)
    with pytest.raises(ValueError, match=r"grey levels in \[0, 1\]"):
        au.train_digit_judge(255 * images, labels, steps=1)


def test_random_shift_moves_whole_images_within_bounds():
    image = torch.zeros(1, 28, 28)
    image[0, 13, 13] = 1.0
    generator = torch.Generator().manual_seed(0)
    shifted = random_shift(image.reshape(1, 784).repeat(200, 1), generator, max_shift=2)
    positions = shifted.reshape(200, 28, 28).nonzero()[:, 1:]
    assert shifted.sum(-1).eq(1).all(), "a pixel away from the border is moved, not lost"
    assert positions.min() >= 11 and positions.max() <= 15
    assert len({tuple(p.tolist()) for p in positions}) == 25, "all 5 x 5 offsets occur"


def test_digit_judge_is_cached_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("AEVB_CACHE_DIR", str(tmp_path))
    images, labels = _toy_digits()
    first, how_first = au.digit_judge(images, labels, steps=5)
    second, how_second = au.digit_judge(images, labels, steps=5)
    assert (how_first, how_second) == ("trained", "loaded from the cache")
    assert torch.equal(first.probabilities(images), second.probabilities(images))
    _, how_other = au.digit_judge(images, labels, steps=6)
    assert how_other == "trained", "other settings are another judge"
    assert len(list(tmp_path.glob("digit-judge-*.pt"))) == 2
