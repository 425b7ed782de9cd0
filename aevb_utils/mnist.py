"""MNIST (official IDX files) and the static binarized MNIST benchmark (Larochelle & Murray 2011).

Images come back flattened to 784 pixels, as float32 tensors in [0, 1]. Every loader checks
what it reads (IDX headers, shapes, 0/1 values, row counts) and reports how many examples it
loaded: the number is never assumed.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .files import CorruptDataError, DataFile, cached_array, origin

MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_MD5 = {  # the official files
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
BINARIZED_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
BINARIZED_ROWS = {"train": 50_000, "valid": 10_000, "test": 10_000}
PIXELS = 784


@dataclass
class ImageData:
    """Flattened images in [0, 1] (shape [N, 784]) and, where the data set has them, labels."""

    images: torch.Tensor
    labels: torch.Tensor | None
    description: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"ImageData({self.description}: {len(self):,} images)"


# --- The data files, for the loaders and `python -m aevb_utils fetch` -------------------------


def mnist_file(name: str) -> DataFile:
    """An official MNIST file: downloaded from the first mirror that has it, md5-checked."""
    return DataFile(name, "mnist", tuple(base + name for base in MNIST_URLS), MNIST_MD5[name],
                    read_idx)


def binarized_file(split: str) -> DataFile:
    """A split of binarized MNIST: no published checksum, so every row is checked instead."""
    rows = BINARIZED_ROWS[split]
    name = f"binarized_mnist_{split}.amat"
    return DataFile(name, "binarized_mnist", (BINARIZED_URL + name,),
                    validate=lambda path: _parse_amat(path, rows))


def data_files() -> list[DataFile]:
    """Every data file any chapter loads."""
    return [mnist_file(name) for split in MNIST_FILES for name in MNIST_FILES[split]] + [
        binarized_file(split) for split in BINARIZED_ROWS
    ]


# --- IDX format -------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (unsigned bytes), checking its header against its length."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptDataError(
            f"{path} is not a readable gzip file ({error}); it is probably truncated or corrupt. "
            f"Delete it and load again to download a fresh copy."
        ) from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptDataError(f"{path} does not start with an IDX header of unsigned bytes.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDataError(f"{path}: the IDX header is cut short.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CorruptDataError(
            f"{path}: its header announces shape {shape} ({expected:,} bytes) but it holds "
            f"{len(raw) - header:,} bytes of data; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_mnist_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CorruptDataError(f"{path}: expected images of shape [N, 28, 28], got {images.shape}.")
    return images.reshape(images.shape[0], PIXELS)


def _read_mnist_labels(path: Path) -> np.ndarray:
    labels = read_idx(path)
    if labels.ndim != 1 or labels.size and labels.max() > 9:
        raise CorruptDataError(f"{path}: expected a vector of digit labels 0-9.")
    return labels


def load_mnist(
    split: Literal["train", "test"] = "train",
    binarize: Literal["threshold"] | None = None,
    verbose: bool = True,
) -> ImageData:
    """MNIST images and labels from the official IDX files.

    binarize=None gives grey levels in [0, 1]; "threshold" sets each pixel to 1 above 0.5 (a
    fixed binarization). For dynamic binarization keep the grey levels and pass
    `bernoulli_binarize` to `fit` as `transform`, so every batch draw is a fresh sample.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}.")
    if binarize not in (None, "threshold"):
        raise ValueError(f"binarize must be None or 'threshold', not {binarize!r}.")
    image_path, label_path = (mnist_file(name).locate() for name in MNIST_FILES[split])
    images = cached_array(image_path, "mnist-images", _read_mnist_images)
    labels = cached_array(label_path, "mnist-labels", _read_mnist_labels)
    if images.shape[0] != labels.shape[0]:
        raise CorruptDataError(
            f"{image_path} holds {images.shape[0]:,} images but {label_path} holds "
            f"{labels.shape[0]:,} labels; the two files do not belong together."
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    if binarize == "threshold":
        x = threshold_binarize(x)
    data = ImageData(x, torch.from_numpy(labels.astype(np.int64)), f"MNIST {split}")
    if verbose:
        print(f"MNIST {split}: loaded {len(data):,} images and labels from {origin(image_path)}")
    return data


# --- Static binarized MNIST (.amat text) ------------------------------------------------------


def _parse_amat(path: Path, rows: int | None = None) -> np.ndarray:
    """Parse an .amat file of 0/1 pixels, one image per line, checking every row."""
    raw = path.read_bytes()
    line = 2 * PIXELS  # "0 1 ... 0\n": a digit and a separator per pixel
    if len(raw) % line == 0:
        table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, line)
        digits, separators = table[:, 0::2], table[:, 1::2]
        if (
            np.all(separators[:, :-1] == ord(" "))
            and np.all(separators[:, -1] == ord("\n"))
            and np.all((digits == ord("0")) | (digits == ord("1")))
        ):
            array = (digits - ord("0")).astype(np.uint8)
            return _check_rows(path, array, rows)
    # Slow path for other white space; it names the first bad line.
    lines = raw.decode("ascii", errors="replace").split("\n")
    if lines and lines[-1].strip() == "":
        lines = lines[:-1]
    array = np.zeros((len(lines), PIXELS), dtype=np.uint8)
    for i, text in enumerate(lines):
        values = text.split()
        if len(values) != PIXELS or any(v not in ("0", "1") for v in values):
            raise CorruptDataError(
                f"{path}, line {i + 1}: expected {PIXELS} values of 0 or 1, found "
                f"{len(values)} values; the file is truncated or not binarized MNIST."
            )
        array[i] = np.array(values, dtype=np.uint8)
    return _check_rows(path, array, rows)


def _check_rows(path: Path, array: np.ndarray, rows: int | None) -> np.ndarray:
    if rows is not None and array.shape[0] != rows:
        raise CorruptDataError(
            f"{path}: expected {rows:,} images, found {array.shape[0]:,}; the file is truncated "
            f"or is not the published split."
        )
    return array


def load_binarized_mnist(
    split: Literal["train", "valid", "test"] = "train", verbose: bool = True
) -> ImageData:
    """The fixed binarization of MNIST used as a density-estimation benchmark (no labels)."""
    if split not in BINARIZED_ROWS:
        raise ValueError(f"split must be 'train', 'valid' or 'test', not {split!r}.")
    rows = BINARIZED_ROWS[split]
    path = binarized_file(split).locate()
    array = cached_array(path, f"binarized-{split}", lambda p: _parse_amat(p, rows))
    data = ImageData(torch.from_numpy(array.astype(np.float32)), None, f"binarized MNIST {split}")
    if verbose:
        print(f"binarized MNIST {split}: loaded {len(data):,} images from {origin(path)}")
    return data


# --- Binarization -------------------------------------------------------------------------------


def threshold_binarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Fixed binarization: 1 where the grey level exceeds `threshold`, else 0."""
    return (x > threshold).to(x.dtype)


def fixed_binarization(x: torch.Tensor, seed: int) -> torch.Tensor:
    """One Bernoulli binarization of grey levels that every run reproduces, for evaluation data:
    `bernoulli_binarize` with a generator seeded by `seed`."""
    return bernoulli_binarize(x, generator=torch.Generator().manual_seed(seed))


def bernoulli_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli sample with the grey levels as probabilities: called on every mini-batch, a
    dynamic binarization; called once with a seeded `generator`, a fixed one (a test set)."""
    return torch.bernoulli(x, generator=generator)
