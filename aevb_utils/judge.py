"""A digit classifier that judges generated images: is this sample recognizably a 3?

A generative model's samples are scored by a classifier trained on real digits. The score means
something only if the classifier itself is good on real digits, so its test accuracy is reported
beside every share it produces. The network is a small LeNet-style convolutional net, trained with
dynamic binarization (each batch a fresh Bernoulli sample of the grey levels, so it sees binary
digits like the models' samples) and random shifts of up to two pixels (it has only the loaded
training digits to learn from).
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from .data import shuffled_batch_indices
from .files import cache_dir
from .mnist import bernoulli_binarize
from .runtime import budget

SIDE = 28
MAX_SHIFT = 2  # pixels, in each direction


class DigitJudge(torch.nn.Module):
    """Two 5x5 convolutions with max-pooling, then two linear layers (dropout between them):
    10 logits per image."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 5),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),  # 28 -> 24 -> 12
            torch.nn.Conv2d(32, 64, 5),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),  # 12 -> 8 -> 4
        )
        self.classifier = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(64 * 4 * 4, 256),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.3),
            torch.nn.Linear(256, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, 10] of flat images [N, 784]."""
        return self.classifier(self.features(x.reshape(-1, 1, SIDE, SIDE)))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """p(label | image) [N, 10], computed in eval mode, batch by batch."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        chunks = [
            self(x[i : i + batch_size].to(device)).softmax(-1).cpu()
            for i in range(0, len(x), batch_size)
        ]
        self.train(was_training)
        return torch.cat(chunks)

    def accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """Share of images whose most probable label is `labels`."""
        return (self.probabilities(x).argmax(-1) == labels.cpu()).double().mean().item()


def random_shift(
    x: torch.Tensor, generator: torch.Generator, max_shift: int = MAX_SHIFT
) -> torch.Tensor:
    """Each flat image moved by a random whole number of pixels in [-max_shift, max_shift] along
    each axis, the uncovered border filled with zeros (background)."""
    n = x.shape[0]
    padded = F.pad(x.reshape(n, SIDE, SIDE), (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    rows = offsets[:, :1] + torch.arange(SIDE)  # [n, 28]
    cols = offsets[:, 1:] + torch.arange(SIDE)
    shifted = padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return shifted.reshape(n, SIDE * SIDE)


def train_digit_judge(
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
    device: torch.device | None = None,
) -> DigitJudge:
    """A `DigitJudge` trained on grey-level digits [N, 784] in [0, 1] and their labels [N].

    Adam with a learning rate decaying linearly to zero; each step sees a fresh binarization and
    random shifts of a shuffled batch. Seeded: the same call gives the same judge.
    """
    if images.ndim != 2 or images.shape[1] != SIDE * SIDE or len(images) != len(labels):
        raise ValueError(
            f"expected images of shape [N, {SIDE * SIDE}] and N labels; got images "
            f"{tuple(images.shape)} and labels {tuple(labels.shape)}."
        )
    if images.min() < 0 or images.max() > 1:
        raise ValueError("images must be grey levels in [0, 1] (binarized while training).")
    device = device or torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the initial weights
    judge = DigitJudge().to(device)
    optimizer = torch.optim.Adam(judge.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    batches = shuffled_batch_indices(len(images), min(batch_size, len(images)), generator)
    judge.train()
    for _ in range(steps):
        index = next(batches)
        x = bernoulli_binarize(random_shift(images[index], generator), generator=generator)
        loss = F.cross_entropy(judge(x.to(device)), labels[index].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return judge.eval()


def judge_steps() -> int:
    """The judge's training budget in every chapter, so that they share one cached judge."""
    return budget(full=1_500, smoke=30)


def _fingerprint(*tensors: torch.Tensor, settings: dict[str, object]) -> str:
    digest = hashlib.sha256(repr(sorted(settings.items())).encode())
    digest.update(torch.__version__.encode())
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def digit_judge(
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    seed: int = 0,
    device: torch.device | None = None,
) -> tuple[DigitJudge, str]:
    """`train_digit_judge`, kept in the data cache (AEVB_CACHE_DIR) so that chapters trained on
    the same digits with the same settings share one judge. Returns the judge and where it came
    from ("trained" or "loaded from the cache"). The weights are read with `weights_only=True`.
    """
    key = _fingerprint(images, labels, settings={"steps": steps, "seed": seed})
    path = cache_dir() / f"digit-judge-{key}.pt"
    judge = DigitJudge()
    if path.exists():
        judge.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return judge.to(device or torch.device("cpu")).eval(), "loaded from the cache"
    judge = train_digit_judge(images, labels, steps, seed=seed, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save({k: v.cpu() for k, v in judge.state_dict().items()}, partial)
    partial.replace(path)  # never leave a half-written file under the final name
    return judge, "trained"
