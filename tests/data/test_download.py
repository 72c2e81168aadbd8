"""kelm.data.download against a loopback HTTP server that understands Range requests."""

from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kelm.cli import app
from kelm.data import download as dl
from kelm.errors import DownloadError, KelmError
from tests.data.download_fixtures import PAYLOAD

DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
REL = "toy/payload.bin"


def toy(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    *,
    sha256: str | None = DIGEST,
    size: int | None = None,
) -> None:
    entry = dl.Dataset("toy", "test payload", [dl.RemoteFile(url, REL, sha256, size)])
    monkeypatch.setitem(dl.REGISTRY, "toy", entry)


def test_full_download_verifies_and_skips_next_time(server, monkeypatch, tmp_path):
    toy(monkeypatch, server.base + "/payload.bin", size=len(PAYLOAD))
    paths = dl.download("toy", tmp_path, progress=False)
    assert paths == [tmp_path / REL]
    assert paths[0].read_bytes() == PAYLOAD
    assert not (tmp_path / (REL + ".part")).exists()
    assert server.log == [("/payload.bin", None, 200, len(PAYLOAD))]

    assert dl.download("toy", tmp_path, progress=False) == paths
    assert len(server.log) == 1  # present and verified: no request

    dl.download("toy", tmp_path, progress=False, force=True)
    assert len(server.log) == 2


def test_resume_sends_range_and_transfers_only_the_rest(server, monkeypatch, tmp_path):
    toy(monkeypatch, server.base + "/payload.bin")
    part = tmp_path / (REL + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:100_000])

    (path,) = dl.download("toy", tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert not part.exists()
    assert server.log == [("/payload.bin", "bytes=100000-", 206, len(PAYLOAD) - 100_000)]


def test_server_ignoring_range_restarts_from_zero(server, monkeypatch, tmp_path):
    server.ignore_range = True
    toy(monkeypatch, server.base + "/payload.bin")
    part = tmp_path / (REL + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not the right bytes" * 100)

    (path,) = dl.download("toy", tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.log == [("/payload.bin", "bytes=1900-", 200, len(PAYLOAD))]


def test_416_means_the_partial_file_is_complete(server, monkeypatch, tmp_path):
    toy(monkeypatch, server.base + "/payload.bin")
    part = tmp_path / (REL + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD)

    (path,) = dl.download("toy", tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.log == [("/payload.bin", f"bytes={len(PAYLOAD)}-", 416, 0)]


def test_short_transfer_keeps_part_then_resumes(server, monkeypatch, tmp_path):
    toy(monkeypatch, server.base + "/payload.bin")
    server.truncate_at = 120_000
    with pytest.raises(DownloadError) as err:
        dl.download("toy", tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert "120,000 of 300,000 bytes" in message
    part = tmp_path / (REL + ".part")
    assert part.read_bytes() == PAYLOAD[:120_000]
    assert not (tmp_path / REL).exists()

    server.truncate_at = None
    (path,) = dl.download("toy", tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.log[-1] == ("/payload.bin", "bytes=120000-", 206, len(PAYLOAD) - 120_000)


def test_checksum_mismatch_deletes_part_and_names_both_digests(server, monkeypatch, tmp_path):
    wrong = "0" * 64
    toy(monkeypatch, server.base + "/payload.bin", sha256=wrong)
    with pytest.raises(DownloadError) as err:
        dl.download("toy", tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert REL in message and wrong in message and DIGEST in message
    assert not (tmp_path / REL).exists()
    assert not (tmp_path / (REL + ".part")).exists()


def test_size_announced_differently_is_refused(server, monkeypatch, tmp_path):
    toy(monkeypatch, server.base + "/payload.bin", size=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match="announces 300,000 bytes"):
        dl.download("toy", tmp_path, progress=False)
    assert not (tmp_path / REL).exists()


def test_trust_on_first_use_records_then_verifies(server, monkeypatch, tmp_path):
    toy(monkeypatch, server.base + "/payload.bin", sha256=None)
    (path,) = dl.download("toy", tmp_path, progress=False)
    record = json.loads((tmp_path / "checksums.json").read_text())["files"][REL]
    assert record["sha256"] == DIGEST and record["size"] == len(PAYLOAD)

    # A damaged local copy is noticed and fetched again.
    path.write_bytes(b"damaged")
    dl.download("toy", tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert len(server.log) == 2

    # Upstream changed: the recorded digest is enforced.
    server.files["/payload.bin"] = PAYLOAD[::-1]
    path.unlink()
    with pytest.raises(DownloadError, match="checksums.json") as err:
        dl.download("toy", tmp_path, progress=False)
    assert DIGEST in str(err.value)
    assert not path.exists()


def test_file_copied_by_hand_is_accepted_and_recorded(monkeypatch, tmp_path):
    toy(monkeypatch, "http://127.0.0.1:9/never-asked", sha256=None)
    target = tmp_path / REL
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert dl.download("toy", tmp_path, progress=False) == [target]
    record = json.loads((tmp_path / "checksums.json").read_text())["files"][REL]
    assert record["sha256"] == DIGEST


def test_unreachable_url_is_one_line_download_error(monkeypatch, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    url = f"http://127.0.0.1:{port}/x"
    toy(monkeypatch, url)
    with pytest.raises(DownloadError) as err:
        dl.download("toy", tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"cannot download {url}: ")
    assert f"offline? files can also be copied into {tmp_path} by hand" in message


def test_http_error_is_download_error(server, monkeypatch, tmp_path):
    toy(monkeypatch, server.base + "/missing.bin")
    with pytest.raises(DownloadError, match="HTTP 404"):
        dl.download("toy", tmp_path, progress=False)


def test_unwritable_data_dir_suggests_data_dir(monkeypatch, tmp_path):
    toy(monkeypatch, "http://127.0.0.1:9/never-asked")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(KelmError, match="--data-dir") as err:
        dl.download("toy", blocker, progress=False)
    assert not isinstance(err.value, DownloadError)


def test_unknown_name_lists_known_ones():
    with pytest.raises(KelmError) as err:
        dl.download("nosuch", progress=False)
    assert "nosuch" in str(err.value)
    assert all(name in str(err.value) for name in ("conceptnet", "csqa", "copa", "cn100k"))


def test_cli_unknown_dataset_exits_2_with_one_line():
    result = CliRunner().invoke(app, ["data", "download", "nosuch"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown dataset 'nosuch'")


def test_cli_data_list_names_every_entry():
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(dl.REGISTRY)


def test_registry_is_consistent():
    seen: set[str] = set()
    for name, entry in dl.REGISTRY.items():
        assert entry.name == name and entry.files
        for remote in entry.files:
            assert remote.url.startswith("https://")
            assert remote.relative_path not in seen
            seen.add(remote.relative_path)
            assert not Path(remote.relative_path).is_absolute()
            assert remote.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", remote.sha256)
