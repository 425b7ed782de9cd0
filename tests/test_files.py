"""Finding, downloading, verifying and caching data files (aevb_utils.files)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import md5_of, part_files

from aevb_utils import files
from aevb_utils.files import CorruptDataError, DataNotFoundError, cached_array, locate

PAYLOAD = b"some data file\n" * 100


def test_folders_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("AEVB_DATA_DIR", raising=False)
    monkeypatch.delenv("AEVB_CACHE_DIR", raising=False)
    assert files.data_dir() is None
    assert files.cache_dir() == Path.home() / ".cache" / "aevb-book"
    monkeypatch.setenv("AEVB_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("AEVB_CACHE_DIR", str(tmp_path / "c"))
    assert files.data_dir() == tmp_path / "d"
    assert files.cache_dir() == tmp_path / "c"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("false", False), ("1", True), ("true", True), ("yes", True)],
)
def test_offline(monkeypatch, value, expected):
    monkeypatch.setenv("AEVB_OFFLINE", value)
    assert files.offline() is expected


def test_offline_rejects_unknown_value(monkeypatch):
    monkeypatch.setenv("AEVB_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="AEVB_OFFLINE='maybe'"):
        files.offline()


def test_offline_unset(monkeypatch):
    monkeypatch.delenv("AEVB_OFFLINE", raising=False)
    assert files.offline() is False


def test_md5sum(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert files.md5sum(path) == md5_of(PAYLOAD)


# --- look-up order -------------------------------------------------------------------------------


def test_locate_prefers_data_dir_subfolder_then_root_then_cache(data_env):
    cached = data_env.cache / "sub" / "f.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cache")
    assert locate("f.bin", "sub", []) == cached
    root = data_env.data / "f.bin"
    root.write_bytes(b"root")
    assert locate("f.bin", "sub", []) == root
    sub = data_env.data / "sub" / "f.bin"
    sub.parent.mkdir()
    sub.write_bytes(b"sub")
    assert locate("f.bin", "sub", []) == sub


def test_locate_missing_offline_names_file_folders_and_urls(data_env, server):
    urls = [server.url("a/f.bin"), server.url("b/f.bin")]
    with pytest.raises(DataNotFoundError) as info:
        locate("f.bin", "sub", urls)
    message = str(info.value)
    assert "'f.bin'" in message
    for folder in (data_env.data / "sub", data_env.data, data_env.cache / "sub"):
        assert f"  - {folder}\n" in message
    for url in urls:
        assert url in message
    assert "AEVB_OFFLINE=1" in message
    assert "AEVB_DATA_DIR" in message
    assert server.total == 0  # offline: not a single request
    assert isinstance(info.value, FileNotFoundError)


# --- downloads -----------------------------------------------------------------------------------


def test_download_lands_in_cache_atomically_and_is_reused(online, server):
    server.files["f.bin"] = PAYLOAD
    path = locate("f.bin", "sub", [server.url("f.bin")], md5=md5_of(PAYLOAD))
    assert path == online.cache / "sub" / "f.bin"
    assert path.read_bytes() == PAYLOAD
    assert part_files(online.cache) == []
    assert path.stat().st_mode & 0o777 == 0o644  # readable by every user, like any data file
    assert server.requests["f.bin"] == 1
    assert locate("f.bin", "sub", [server.url("f.bin")], md5=md5_of(PAYLOAD)) == path
    assert server.total == 1  # the second look-up found the cached file


def test_download_falls_back_to_the_next_url(online, server):
    server.files["good/f.bin"] = PAYLOAD
    urls = [server.url("missing/f.bin"), server.url("good/f.bin")]
    path = locate("f.bin", "sub", urls, md5=md5_of(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert server.requests == {"missing/f.bin": 1, "good/f.bin": 1}


def test_download_with_wrong_checksum_is_not_kept(online, server):
    server.files["f.bin"] = PAYLOAD
    with pytest.raises(DataNotFoundError) as info:
        locate("f.bin", "sub", [server.url("f.bin")], md5="0" * 32)
    assert "checksum mismatch" in str(info.value)
    assert md5_of(PAYLOAD) in str(info.value)
    assert not (online.cache / "sub" / "f.bin").exists()
    assert part_files(online.cache) == []


def test_download_failing_validation_is_not_kept(online, server):
    server.files["f.bin"] = PAYLOAD

    def reject(path):
        raise CorruptDataError(f"{path.name} is no good")

    with pytest.raises(DataNotFoundError, match="is no good"):
        locate("f.bin", "sub", [server.url("f.bin")], validate=reject)
    assert not (online.cache / "sub" / "f.bin").exists()
    assert part_files(online.cache) == []


def test_downloaded_file_is_validated_before_it_takes_its_final_name(online, server):
    # The docstring's promise: a download must pass `validate` *before* it is moved into the
    # cache, so an interrupted or failed validation can never leave a bad file there.
    server.files["f.bin"] = PAYLOAD
    final = online.cache / "sub" / "f.bin"
    seen = []

    def validate(path):
        seen.append((path, final.exists(), path.read_bytes()))

    assert locate("f.bin", "sub", [server.url("f.bin")], validate=validate) == final
    assert len(seen) == 1
    validated, final_existed, content = seen[0]
    assert validated != final
    assert content == PAYLOAD
    assert not final_existed


def test_interrupted_validation_leaves_nothing_in_cache(online, server):
    server.files["f.bin"] = PAYLOAD

    def interrupted(path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        locate("f.bin", "sub", [server.url("f.bin")], validate=interrupted)
    assert not (online.cache / "sub" / "f.bin").exists()
    assert part_files(online.cache) == []


def test_all_urls_failing_reports_each(online, server):
    urls = [server.url("x/f.bin"), server.url("y/f.bin")]
    with pytest.raises(DataNotFoundError) as info:
        locate("f.bin", "sub", urls)
    message = str(info.value)
    for url in urls:
        assert f"{url}: HTTP Error 404" in message
    assert server.requests == {"x/f.bin": 1, "y/f.bin": 1}
    assert not (online.cache / "sub" / "f.bin").exists()


# --- cached arrays -------------------------------------------------------------------------------


class CountingParser:
    def __init__(self):
        self.calls = 0

    def __call__(self, path: Path) -> np.ndarray:
        self.calls += 1
        return np.frombuffer(path.read_bytes(), dtype=np.uint8).reshape(-1, 10)


@pytest.fixture
def source(data_env) -> Path:
    path = data_env.data / "source.bin"
    path.write_bytes(bytes(range(100)))
    return path


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "arrays").glob("*.npy"))


def test_cached_array_parses_once(data_env, source):
    parse = CountingParser()
    first = cached_array(source, "tag", parse)
    second = cached_array(source, "tag", parse)
    assert parse.calls == 1
    np.testing.assert_array_equal(first, np.arange(100, dtype=np.uint8).reshape(10, 10))
    np.testing.assert_array_equal(second, first)
    assert second.dtype == np.uint8
    entries = _entries(data_env.cache)
    assert len(entries) == 1 and entries[0].name.startswith("tag-")
    assert part_files(data_env.cache) == []


def test_cached_array_is_keyed_by_tag_and_source_state(data_env, source):
    parse = CountingParser()
    cached_array(source, "tag", parse)
    cached_array(source, "other", parse)
    assert parse.calls == 2
    source.write_bytes(bytes(range(50)))  # a different file at the same path
    os.utime(source, ns=(10**18, 10**18))
    result = cached_array(source, "tag", parse)
    assert parse.calls == 3
    assert result.shape == (5, 10)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_cached_array_rebuilds_a_damaged_entry(data_env, source, damage):
    parse = CountingParser()
    expected = cached_array(source, "tag", parse)
    (entry,) = _entries(data_env.cache)
    raw = entry.read_bytes()
    entry.write_bytes(
        {"garbage": b"not an array" * 20, "truncated": raw[: len(raw) - 30], "empty": b""}[damage]
    )
    result = cached_array(source, "tag", parse)
    assert parse.calls == 2
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(np.load(entry), expected)  # and the entry is good again
