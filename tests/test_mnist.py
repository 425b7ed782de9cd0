"""MNIST and binarized-MNIST loading, with every error path, and binarization."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from conftest import (
    amat_bytes,
    idx_bytes,
    md5_of,
    part_files,
    tiny_binarized,
    tiny_mnist,
    write_amat,
    write_idx,
)

from aevb_utils import mnist
from aevb_utils.files import CorruptDataError, DataNotFoundError
from aevb_utils.mnist import (
    ImageData,
    bernoulli_binarize,
    load_binarized_mnist,
    load_mnist,
    read_idx,
    threshold_binarize,
)

TRAIN_IMAGES, TRAIN_LABELS = mnist.MNIST_FILES["train"]
TEST_IMAGES, TEST_LABELS = mnist.MNIST_FILES["test"]


def put_mnist(folder, n=7, seed=0, split="train"):
    images, labels = tiny_mnist(n, seed)
    image_name, label_name = mnist.MNIST_FILES[split]
    write_idx(folder / image_name, images)
    write_idx(folder / label_name, labels)
    return images, labels


# --- IDX -----------------------------------------------------------------------------------------


def test_read_idx_round_trip(tmp_path):
    images, labels = tiny_mnist(5)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i.gz", images)), images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels)), labels)


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28))))  # uncompressed
    with pytest.raises(CorruptDataError, match="not a readable gzip file"):
        read_idx(path)


def test_read_idx_gzip_cut_short(tmp_path):
    path = tmp_path / "x.gz"
    raw = gzip.compress(idx_bytes(tiny_mnist(20)[0]))
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptDataError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize("magic", [b"\x00\x00\x0d\x03", b"\x01\x00\x08\x03", b"PK\x03\x04", b""])
def test_read_idx_bad_magic(tmp_path, magic):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(magic + idx_bytes(np.zeros((1, 2, 2)))[4:]))
    with pytest.raises(CorruptDataError, match="IDX header"):
        read_idx(path)


def test_read_idx_header_cut_short(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28)))[:9]))
    with pytest.raises(CorruptDataError, match="cut short"):
        read_idx(path)


@pytest.mark.parametrize("change", [-1, 1])
def test_read_idx_length_disagrees_with_header(tmp_path, change):
    raw = idx_bytes(tiny_mnist(3)[0])
    raw = raw[:-1] if change < 0 else raw + b"\x00"
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(CorruptDataError, match=r"\(3, 28, 28\)"):
        read_idx(path)


# --- load_mnist from a data folder ---------------------------------------------------------------


def test_load_mnist_from_data_dir(data_env, capsys):
    images, labels = put_mnist(data_env.data / "mnist", n=7)
    data = load_mnist("train")
    assert isinstance(data, ImageData)
    assert len(data) == 7
    assert data.images.shape == (7, 784) and data.images.dtype == torch.float32
    assert data.labels.dtype == torch.int64
    np.testing.assert_allclose(data.images.numpy(), images.reshape(7, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    out = capsys.readouterr().out
    origin = "from train-images-idx3-ubyte.gz in AEVB_DATA_DIR"
    assert f"MNIST train: loaded 7 images and labels {origin}" in out
    assert str(data_env.data) not in out  # printed pages never show the build machine's folders
    assert repr(data) == "ImageData(MNIST train: 7 images)"


def test_load_mnist_quiet_and_test_split(data_env, capsys):
    put_mnist(data_env.data, n=4, split="test")  # the data folder's root works too
    data = load_mnist("test", verbose=False)
    assert len(data) == 4
    assert capsys.readouterr().out == ""


def test_load_mnist_threshold(data_env):
    images, _ = put_mnist(data_env.data / "mnist", n=5)
    data = load_mnist(binarize="threshold", verbose=False)
    expected = (images.reshape(5, 784) / 255.0 > 0.5).astype(np.float32)
    np.testing.assert_array_equal(data.images.numpy(), expected)


def test_load_mnist_uses_cached_array(data_env, monkeypatch):
    put_mnist(data_env.data / "mnist", n=6)
    first = load_mnist(verbose=False)
    assert len(list((data_env.cache / "arrays").glob("mnist-*.npy"))) == 2

    def fail(path):
        raise AssertionError("parsed again")

    monkeypatch.setattr(mnist, "_read_mnist_images", fail)
    monkeypatch.setattr(mnist, "_read_mnist_labels", fail)
    second = load_mnist(verbose=False)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "valid"}, "split"),
        ({"binarize": "bernoulli"}, "binarize"),
    ],
)
def test_load_mnist_bad_arguments(data_env, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_mnist(**kwargs)


def test_load_mnist_missing_names_files_folders_and_urls(data_env):
    with pytest.raises(DataNotFoundError) as info:
        load_mnist("train")
    message = str(info.value)
    assert TRAIN_IMAGES in message
    for folder in (data_env.data / "mnist", data_env.data, data_env.cache / "mnist"):
        assert str(folder) in message
    for base in mnist.MNIST_URLS:
        assert base + TRAIN_IMAGES in message
    assert "AEVB_OFFLINE" in message


def test_load_mnist_image_label_count_mismatch(data_env):
    folder = data_env.data / "mnist"
    images, _ = tiny_mnist(5)
    _, labels = tiny_mnist(4)
    write_idx(folder / TRAIN_IMAGES, images)
    write_idx(folder / TRAIN_LABELS, labels)
    with pytest.raises(CorruptDataError, match="5 images but .* 4 labels"):
        load_mnist(verbose=False)


def test_load_mnist_wrong_image_shape(data_env):
    folder = data_env.data / "mnist"
    write_idx(folder / TRAIN_IMAGES, np.zeros((3, 27, 27)))
    write_idx(folder / TRAIN_LABELS, np.zeros(3))
    with pytest.raises(CorruptDataError, match=r"\[N, 28, 28\]"):
        load_mnist(verbose=False)


@pytest.mark.parametrize("labels", [np.array([1, 2, 10]), np.zeros((3, 1))])
def test_load_mnist_bad_labels(data_env, labels):
    folder = data_env.data / "mnist"
    write_idx(folder / TRAIN_IMAGES, np.zeros((3, 28, 28)))
    write_idx(folder / TRAIN_LABELS, labels)
    with pytest.raises(CorruptDataError, match="digit labels"):
        load_mnist(verbose=False)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("not gzip", "not a readable gzip file"),
        ("gzip cut short", "not a readable gzip file"),
        ("bad magic", "IDX header"),
        ("header announces more", "truncated or corrupt"),
    ],
)
def test_load_mnist_corrupt_file_in_data_dir(data_env, damage, match):
    folder = data_env.data / "mnist"
    images, _ = put_mnist(folder)
    raw = idx_bytes(images)
    body = {
        "not gzip": raw,
        "gzip cut short": gzip.compress(raw)[:-50],
        "bad magic": gzip.compress(b"\x00\x00\x09" + raw[3:]),
        "header announces more": gzip.compress(raw[:-784]),
    }[damage]
    (folder / TRAIN_IMAGES).write_bytes(body)
    with pytest.raises(CorruptDataError, match=match) as info:
        load_mnist(verbose=False)
    assert TRAIN_IMAGES in str(info.value)


# --- load_mnist by download ----------------------------------------------------------------------


@pytest.fixture
def mnist_server(server, monkeypatch):
    """Serves a tiny MNIST under /mnist/; the first URL base is a 404 path."""
    images, labels = tiny_mnist(9, seed=3)
    t_images, t_labels = tiny_mnist(4, seed=4)
    contents = {
        TRAIN_IMAGES: gzip.compress(idx_bytes(images)),
        TRAIN_LABELS: gzip.compress(idx_bytes(labels)),
        TEST_IMAGES: gzip.compress(idx_bytes(t_images)),
        TEST_LABELS: gzip.compress(idx_bytes(t_labels)),
    }
    for name, body in contents.items():
        server.files["mnist/" + name] = body
    monkeypatch.setattr(mnist, "MNIST_URLS", (server.url("gone/"), server.url("mnist/")))
    monkeypatch.setattr(mnist, "MNIST_MD5", {name: md5_of(b) for name, b in contents.items()})
    server.images, server.labels = images, labels
    return server


def test_load_mnist_downloads_with_fallback(online, mnist_server, capsys):
    data = load_mnist("train")
    assert len(data) == 9
    np.testing.assert_array_equal(data.labels.numpy(), mnist_server.labels)
    np.testing.assert_allclose(data.images.numpy() * 255, mnist_server.images.reshape(9, 784))
    for name in (TRAIN_IMAGES, TRAIN_LABELS):
        assert (online.cache / "mnist" / name).read_bytes() == mnist_server.files["mnist/" + name]
        assert mnist_server.requests["gone/" + name] == 1  # tried first, a 404
        assert mnist_server.requests["mnist/" + name] == 1  # the fallback
    assert part_files(online.cache) == []
    assert "loaded 9 images and labels from train-images-idx3-ubyte.gz in the download cache" in (
        capsys.readouterr().out
    )

    requests = mnist_server.total
    again = load_mnist("train", verbose=False)
    assert mnist_server.total == requests  # the second load does not hit the server
    assert torch.equal(again.images, data.images)


def test_load_mnist_offline_makes_no_request(online, mnist_server, monkeypatch):
    monkeypatch.setenv("AEVB_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="AEVB_OFFLINE=1") as info:
        load_mnist("train")
    assert mnist_server.total == 0
    assert mnist_server.url("mnist/" + TRAIN_IMAGES) in str(info.value)
    assert "AEVB_DATA_DIR" in str(info.value)


def test_load_mnist_download_with_wrong_checksum(online, mnist_server, monkeypatch):
    wrong = dict(mnist.MNIST_MD5, **{TRAIN_IMAGES: "f" * 32})
    monkeypatch.setattr(mnist, "MNIST_MD5", wrong)
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        load_mnist("train")
    assert not (online.cache / "mnist" / TRAIN_IMAGES).exists()
    assert part_files(online.cache) == []


def test_load_mnist_download_truncated_gzip_is_rejected(online, mnist_server, monkeypatch):
    body = mnist_server.files["mnist/" + TRAIN_IMAGES]
    cut = body[: len(body) - 20]
    mnist_server.files["mnist/" + TRAIN_IMAGES] = cut
    # a checksum that matches the cut file, so that only the IDX validation can catch it
    monkeypatch.setattr(mnist, "MNIST_MD5", dict(mnist.MNIST_MD5, **{TRAIN_IMAGES: md5_of(cut)}))
    with pytest.raises(DataNotFoundError, match="not a readable gzip file"):
        load_mnist("train")
    assert not (online.cache / "mnist" / TRAIN_IMAGES).exists()
    assert part_files(online.cache) == []


def test_data_dir_is_preferred_over_cache(online, mnist_server, monkeypatch):
    load_mnist("train", verbose=False)  # fills the cache with the 9-image set
    data_dir = online.cache.parent / "data"
    put_mnist(data_dir / "mnist", n=3, seed=8)
    monkeypatch.setenv("AEVB_DATA_DIR", str(data_dir))
    requests = mnist_server.total
    data = load_mnist("train", verbose=False)
    assert len(data) == 3
    assert mnist_server.total == requests


# --- binarized MNIST -----------------------------------------------------------------------------


@pytest.fixture
def small_splits(monkeypatch):
    monkeypatch.setattr(mnist, "BINARIZED_ROWS", {"train": 6, "valid": 3, "test": 2})


def test_load_binarized_from_data_dir(data_env, small_splits, capsys):
    array = tiny_binarized(6)
    path = write_amat(data_env.data / "binarized_mnist" / "binarized_mnist_train.amat", array)
    data = load_binarized_mnist("train")
    assert data.labels is None
    assert data.images.dtype == torch.float32
    np.testing.assert_array_equal(data.images.numpy(), array)
    out = capsys.readouterr().out
    origin = "from binarized_mnist_train.amat in AEVB_DATA_DIR"
    assert f"binarized MNIST train: loaded 6 images {origin}" in out
    assert str(path.parent) not in out  # printed pages never show the build machine's folders


@pytest.mark.parametrize("newline", ["\r\n", " \n"])
def test_load_binarized_other_white_space(data_env, small_splits, newline):
    array = tiny_binarized(3, seed=2)
    write_amat(data_env.data / "binarized_mnist_valid.amat", array, newline=newline)
    data = load_binarized_mnist("valid", verbose=False)
    np.testing.assert_array_equal(data.images.numpy(), array)


def test_load_binarized_without_final_newline(data_env, small_splits):
    array = tiny_binarized(2, seed=5)
    path = data_env.data / "binarized_mnist_test.amat"
    path.write_bytes(amat_bytes(array)[:-1])
    np.testing.assert_array_equal(load_binarized_mnist("test", verbose=False).images, array)


def test_load_binarized_bad_split(data_env):
    with pytest.raises(ValueError, match="split"):
        load_binarized_mnist("validation")


def test_load_binarized_short_row(data_env, small_splits):
    text = amat_bytes(tiny_binarized(6)).decode().split("\n")
    text[3] = text[3][:-2]  # line 4 loses its last value
    (data_env.data / "binarized_mnist_train.amat").write_text("\n".join(text))
    with pytest.raises(CorruptDataError, match="line 4: expected 784 values of 0 or 1, found 783"):
        load_binarized_mnist("train")


def test_load_binarized_not_binary(data_env, small_splits):
    array = tiny_binarized(6)
    array[2, 5] = 2
    write_amat(data_env.data / "binarized_mnist_train.amat", array)
    with pytest.raises(CorruptDataError, match="line 3"):
        load_binarized_mnist("train")


@pytest.mark.parametrize("rows", [5, 7])
def test_load_binarized_wrong_row_count(data_env, small_splits, rows):
    write_amat(data_env.data / "binarized_mnist_train.amat", tiny_binarized(rows))
    with pytest.raises(CorruptDataError, match=f"expected 6 images, found {rows}"):
        load_binarized_mnist("train")


def test_load_binarized_missing(data_env):
    with pytest.raises(DataNotFoundError) as info:
        load_binarized_mnist("test")
    message = str(info.value)
    assert "binarized_mnist_test.amat" in message
    assert mnist.BINARIZED_URL + "binarized_mnist_test.amat" in message
    assert str(data_env.data / "binarized_mnist") in message
    assert str(data_env.cache / "binarized_mnist") in message


@pytest.fixture
def amat_server(server, monkeypatch, small_splits):
    array = tiny_binarized(6, seed=9)
    server.files["bm/binarized_mnist_train.amat"] = amat_bytes(array)
    server.array = array
    monkeypatch.setattr(mnist, "BINARIZED_URL", server.url("bm/"))
    return server


def test_load_binarized_downloads(online, amat_server):
    data = load_binarized_mnist("train", verbose=False)
    np.testing.assert_array_equal(data.images.numpy(), amat_server.array)
    cached = online.cache / "binarized_mnist" / "binarized_mnist_train.amat"
    assert cached.read_bytes() == amat_server.files["bm/binarized_mnist_train.amat"]
    assert part_files(online.cache) == []
    assert amat_server.total == 1
    load_binarized_mnist("train", verbose=False)
    assert amat_server.total == 1


def test_load_binarized_truncated_download_is_rejected(online, amat_server):
    body = amat_server.files["bm/binarized_mnist_train.amat"]
    amat_server.files["bm/binarized_mnist_train.amat"] = body[: len(body) - 1568 - 100]
    with pytest.raises(DataNotFoundError, match="truncated"):
        load_binarized_mnist("train")
    assert not (online.cache / "binarized_mnist" / "binarized_mnist_train.amat").exists()
    assert part_files(online.cache) == []


# --- binarization --------------------------------------------------------------------------------


def test_threshold_binarize():
    x = torch.tensor([0.0, 0.2, 0.5, 0.5001, 0.9, 1.0], dtype=torch.float64)
    y = threshold_binarize(x)
    assert y.dtype == torch.float64
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert threshold_binarize(x, threshold=0.1).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_bernoulli_binarize_mean_and_values():
    torch.manual_seed(0)
    p = torch.tensor([0.0, 0.1, 0.5, 0.93, 1.0])
    n = 20_000
    samples = bernoulli_binarize(p.expand(n, 5))
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert samples.dtype == p.dtype
    mean = samples.mean(0)
    stderr = (p * (1 - p) / n).sqrt()
    assert torch.all((mean - p).abs() <= 5 * stderr + 1e-12)
    assert mean[0] == 0.0 and mean[-1] == 1.0


def test_bernoulli_binarize_seeded():
    p = torch.rand(50, 784, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(11)
    a = bernoulli_binarize(p)
    torch.manual_seed(11)
    b = bernoulli_binarize(p)
    torch.manual_seed(12)
    c = bernoulli_binarize(p)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
