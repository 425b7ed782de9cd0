"""`python -m aevb_utils fetch DIR` (aevb_utils.fetch), against a local HTTP server."""

from __future__ import annotations

import gzip

import pytest
from conftest import amat_bytes, idx_bytes, md5_of, part_files, tiny_binarized, tiny_mnist

from aevb_utils import __main__ as cli
from aevb_utils import fetch, load_binarized_mnist, load_mnist, mnist

ROWS = {"train": 6, "valid": 3, "test": 2}


def published_files() -> dict[str, bytes]:
    """Tiny stand-ins for the seven files, keyed by '<subfolder>/<name>'."""
    files = {}
    for seed, split in enumerate(mnist.MNIST_FILES):
        images, labels = tiny_mnist(4 + seed, seed)
        image_name, label_name = mnist.MNIST_FILES[split]
        files[f"mnist/{image_name}"] = gzip.compress(idx_bytes(images))
        files[f"mnist/{label_name}"] = gzip.compress(idx_bytes(labels))
    for seed, (split, rows) in enumerate(ROWS.items()):
        files[f"binarized_mnist/binarized_mnist_{split}.amat"] = amat_bytes(
            tiny_binarized(rows, seed)
        )
    return files


@pytest.fixture
def published(server, monkeypatch):
    """The local server publishes the files; the loaders' URLs and sums point at it."""
    files = published_files()
    for path, body in files.items():
        server.files[path] = body
    monkeypatch.setattr(mnist, "MNIST_URLS", (server.url("gone/"), server.url("mnist/")))
    sums = {path.removeprefix("mnist/"): md5_of(body) for path, body in files.items()
            if path.startswith("mnist/")}
    monkeypatch.setattr(mnist, "MNIST_MD5", sums)
    monkeypatch.setattr(mnist, "BINARIZED_URL", server.url("binarized_mnist/"))
    monkeypatch.setattr(mnist, "BINARIZED_ROWS", ROWS)
    server.published = files
    return server


def test_every_file_every_chapter_loads_is_fetched():
    names = {(file.subfolder, file.name) for file in mnist.data_files()}
    assert len(names) == 7
    assert {name for sub, name in names if sub == "mnist"} == set(mnist.MNIST_MD5)
    assert all(file.md5 == mnist.MNIST_MD5[file.name] for file in mnist.data_files()
               if file.subfolder == "mnist")


def test_fetch_downloads_verifies_and_the_loaders_use_the_folder(
    online, published, tmp_path, monkeypatch, capsys
):
    target = tmp_path / "lab-data"
    assert cli.main(["fetch", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok   ") == 7 and "FAIL" not in out
    assert "7 of 7 data files verified" in out
    for path, body in published.published.items():
        assert (target / path).read_bytes() == body
    assert part_files(target) == []
    # the first mirror is missing: each MNIST file was asked of both
    assert published.requests["gone/" + mnist.MNIST_FILES["train"][0]] == 1

    # the folder is then all a machine without internet needs
    monkeypatch.setenv("AEVB_DATA_DIR", str(target))
    monkeypatch.setenv("AEVB_OFFLINE", "1")
    requests = published.total
    assert len(load_mnist("test", verbose=False)) == 5
    assert len(load_binarized_mnist("valid", verbose=False)) == 3
    assert published.total == requests


def test_fetch_again_keeps_the_verified_files(online, published, tmp_path):
    first = fetch.fetch(tmp_path)
    requests = published.total
    again = fetch.fetch(tmp_path)
    assert all(item.how.startswith("downloaded") for item in first)
    assert all(item.how == "kept" and item.official for item in again)
    assert published.total == requests


def test_fetch_offline_copies_from_the_data_dir(data_env, published, tmp_path):
    for path, body in published.published.items():
        (data_env.data / path).parent.mkdir(parents=True, exist_ok=True)
        (data_env.data / path).write_bytes(body)
    results = fetch.fetch(tmp_path / "copy")
    assert [item.how.startswith("copied from") for item in results] == [True] * 7
    assert published.total == 0
    for path, body in published.published.items():
        assert (tmp_path / "copy" / path).read_bytes() == body


def test_a_file_that_is_not_the_published_one_is_refused_unless_accepted(
    data_env, published, tmp_path, capsys
):
    for path, body in published.published.items():
        (data_env.data / path).parent.mkdir(parents=True, exist_ok=True)
        (data_env.data / path).write_bytes(body)
    name = mnist.MNIST_FILES["train"][0]
    subset = gzip.compress(idx_bytes(tiny_mnist(2, seed=7)[0]))  # readable, other content
    (data_env.data / "mnist" / name).write_bytes(subset)

    assert fetch.main([str(tmp_path / "strict")]) == 1
    out = capsys.readouterr().out
    assert f"FAIL mnist/{name}" in out and "not the published file" in out
    assert "--accept-unofficial" in out and "AEVB_OFFLINE=1" in out
    assert not (tmp_path / "strict" / "mnist" / name).exists()
    assert "6 of 7 data files verified" in out

    assert fetch.main([str(tmp_path / "lax"), "--accept-unofficial"]) == 0
    out = capsys.readouterr().out
    assert f"mnist/{name}" in out and "NOT the published file" in out
    assert "(1 accepted though not the published files)" in out
    assert (tmp_path / "lax" / "mnist" / name).read_bytes() == subset


def test_a_corrupt_copy_in_the_folder_is_replaced(online, published, tmp_path):
    fetch.fetch(tmp_path)
    amat = tmp_path / "binarized_mnist" / "binarized_mnist_test.amat"
    amat.write_bytes(amat.read_bytes()[:-10])  # truncated
    results = {item.file.name: item for item in fetch.fetch(tmp_path)}
    assert results[amat.name].how.startswith("downloaded")
    assert amat.read_bytes() == published.published["binarized_mnist/" + amat.name]


def test_a_corrupt_download_fails_and_leaves_nothing(online, published, tmp_path, capsys):
    name = mnist.MNIST_FILES["test"][1]
    published.files[f"mnist/{name}"] = b"not gzip"
    assert fetch.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL mnist/{name}" in out and "checksum mismatch" in out
    assert not (tmp_path / "mnist" / name).exists()
    assert part_files(tmp_path) == []


def test_offline_without_a_source_names_what_is_missing(data_env, published, tmp_path, capsys):
    assert fetch.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL ") == 7
    assert "downloads are switched off (AEVB_OFFLINE=1)" in out
    assert "0 of 7 data files verified" in out
    assert published.total == 0


def test_the_command_line_explains_itself(capsys):
    assert cli.main([]) == 2
    assert "python -m aevb_utils fetch DIR" in capsys.readouterr().err
    assert cli.main(["download"]) == 2
