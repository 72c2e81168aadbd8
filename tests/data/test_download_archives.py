"""kelm.data.download: archives unpacked into the layout kelm's readers expect, the mirror
variable, several names on the command line, and the pinned checksums against the real data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kelm._io import sha256_file
from kelm.cli import app
from kelm.data import download as dl
from kelm.data.qa import read_qa
from kelm.errors import DownloadError
from kelm.graph.sources.wordnet import find_wordnet_dir
from tests.data.download_fixtures import FIXTURES, PAYLOAD, tarball, wordnet_tarball

WORDNET = dl.REGISTRY["wordnet"].files[0]
BALANCED_COPA = dl.REGISTRY["copa"].files[1]


def register(monkeypatch: pytest.MonkeyPatch, name: str, *files: dl.RemoteFile) -> None:
    monkeypatch.setitem(dl.REGISTRY, name, dl.Dataset(name, f"test {name}", list(files)))


def wordnet_like(monkeypatch, server, data: bytes, sha256: str | None = None) -> Path:
    """Serve ``data`` as the WordNet tarball, with the real registry entry's path and
    unpacking steps; return where the NLTK layout must appear."""
    server.files["/WordNet-3.0.tar.bz2"] = data
    remote = dl.RemoteFile(
        server.base + "/WordNet-3.0.tar.bz2",
        WORDNET.relative_path,
        sha256 or hashlib.sha256(data).hexdigest(),
        extract=WORDNET.extract,
    )
    register(monkeypatch, "wn", remote)
    return Path("kg/wordnet_nltk")


def test_wordnet_tarball_lands_in_the_nltk_layout_the_graph_reader_reads(
    server, monkeypatch, tmp_path
):
    folder = wordnet_like(monkeypatch, server, wordnet_tarball())
    (archive,) = dl.download("wn", tmp_path, progress=False)
    assert archive == tmp_path / WORDNET.relative_path

    dict_dir = tmp_path / folder / "corpora" / "wordnet"
    assert find_wordnet_dir(tmp_path / folder) == dict_dir
    expected = sorted(p.name for p in (FIXTURES / "wordnet").iterdir())
    assert sorted(p.name for p in dict_dir.iterdir()) == expected  # no dbfiles/, no ._ file
    assert (dict_dir / "data.noun").read_bytes() == (FIXTURES / "wordnet/data.noun").read_bytes()
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not [p for p in (tmp_path / folder / "corpora").iterdir() if p.name != "wordnet"]

    # What the demo runs on it: `kelm graph build --format wordnet DATA/kg/wordnet_nltk`.
    result = CliRunner().invoke(
        app,
        [
            "graph",
            "build",
            "--format",
            "wordnet",
            str(tmp_path / folder),
            "--out",
            str(tmp_path / "g"),
        ],
    )
    assert result.exit_code == 0, result.output


def test_unpacked_folder_deleted_by_hand_comes_back_without_a_request(
    server, monkeypatch, tmp_path
):
    folder = wordnet_like(monkeypatch, server, wordnet_tarball())
    dl.download("wn", tmp_path, progress=False)
    requests_made = len(server.log)
    dict_dir = tmp_path / folder / "corpora" / "wordnet"
    (dict_dir / "index.sense").unlink(missing_ok=True)
    (dict_dir / "data.verb").write_text("edited by hand")  # present: left alone
    dl.download("wn", tmp_path, progress=False)
    assert (dict_dir / "data.verb").read_text() == "edited by hand"

    for child in dict_dir.iterdir():
        child.unlink()
    dict_dir.rmdir()
    dl.download("wn", tmp_path, progress=False)
    assert find_wordnet_dir(tmp_path / folder) == dict_dir
    assert len(server.log) == requests_made  # the archive was present and verified


def test_archive_checksum_mismatch_leaves_nothing_behind(server, monkeypatch, tmp_path):
    wordnet_like(monkeypatch, server, wordnet_tarball(), sha256="1" * 64)
    with pytest.raises(DownloadError) as err:
        dl.download("wn", tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"checksum mismatch for {WORDNET.relative_path}: expected")
    target = (tmp_path / WORDNET.relative_path).parent
    assert list(target.iterdir()) == []  # no archive, no .part, no temporary file, no folder


def test_interrupted_archive_resumes_then_unpacks(server, monkeypatch, tmp_path):
    data = wordnet_tarball()
    folder = wordnet_like(monkeypatch, server, data)
    server.truncate_at = len(data) // 2
    with pytest.raises(DownloadError, match="run again to resume"):
        dl.download("wn", tmp_path, progress=False)
    assert not (tmp_path / folder / "corpora").exists()

    server.truncate_at = None
    dl.download("wn", tmp_path, progress=False)
    assert server.log[-1][1] == f"bytes={len(data) // 2}-"
    assert find_wordnet_dir(tmp_path / folder).name == "wordnet"


def test_balanced_copa_member_is_unpacked_where_the_demo_reads_it(server, monkeypatch, tmp_path):
    xml = (FIXTURES / "qa" / "copa.xml").read_bytes()
    data = tarball(
        {
            "balanced_copa/balacopa-dev-all.xml": xml,
            "balanced_copa/._balacopa-dev-all.xml": b"AppleDouble",
            "balanced_copa/README.md": b"readme",
        }
    )
    server.files["/balanced_copa.tar.bz2"] = data
    remote = dl.RemoteFile(
        server.base + "/balanced_copa.tar.bz2",
        BALANCED_COPA.relative_path,
        hashlib.sha256(data).hexdigest(),
        extract=BALANCED_COPA.extract,
    )
    register(monkeypatch, "bc", remote)
    dl.download("bc", tmp_path, progress=False)
    target = tmp_path / "qa" / "copa" / "balacopa-dev-all.xml"
    assert target.read_bytes() == xml
    assert len(read_qa(target)) == len(read_qa(FIXTURES / "qa" / "copa.xml"))
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "balacopa-dev-all.xml",
        "balanced_copa.tar.bz2",
    ]


def test_archive_without_the_member_is_a_one_line_error(server, monkeypatch, tmp_path):
    data = tarball({"something/else.txt": b"x"})
    server.files["/a.tar.bz2"] = data
    remote = dl.RemoteFile(
        server.base + "/a.tar.bz2",
        "qa/a.tar.bz2",
        hashlib.sha256(data).hexdigest(),
        extract=(dl.Extract("balanced_copa/balacopa-dev-all.xml", "qa/x.xml"),),
    )
    register(monkeypatch, "a", remote)
    with pytest.raises(dl.KelmError, match="has no member balanced_copa/balacopa-dev-all.xml"):
        dl.download("a", tmp_path, progress=False)
    assert not (tmp_path / "qa" / "x.xml").exists()


def test_mirror_variable_fetches_by_relative_path(server, monkeypatch, tmp_path):
    server.files["/mirror/toy/payload.bin"] = PAYLOAD
    remote = dl.RemoteFile(
        "https://origin.invalid/payload.bin",
        "toy/payload.bin",
        hashlib.sha256(PAYLOAD).hexdigest(),
    )
    register(monkeypatch, "toy", remote)
    monkeypatch.setenv(dl.MIRROR_ENV, server.base + "/mirror/")
    (path,) = dl.download("toy", tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [entry[0] for entry in server.log] == ["/mirror/toy/payload.bin"]


def test_cli_takes_several_names_and_checks_them_all_first(server, monkeypatch, tmp_path):
    for name in ("one", "two"):
        server.files[f"/{name}.bin"] = name.encode()
        remote = dl.RemoteFile(
            f"{server.base}/{name}.bin",
            f"toy/{name}.bin",
            hashlib.sha256(name.encode()).hexdigest(),
        )
        register(monkeypatch, name, remote)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "download", "one", "nosuch", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: unknown dataset 'nosuch'")
    assert server.log == []

    result = runner.invoke(app, ["data", "download", "one", "two", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "toy/one.bin").read_bytes() == b"one"
    assert (tmp_path / "toy/two.bin").read_bytes() == b"two"


def test_every_archive_step_is_a_relative_path_inside_the_data_directory():
    steps = [(r, s) for entry in dl.REGISTRY.values() for r in entry.files for s in r.extract]
    assert {r.relative_path for r, _ in steps} >= {
        WORDNET.relative_path,
        BALANCED_COPA.relative_path,
    }
    for remote, step in steps:
        assert remote.sha256 is not None  # never unpack what was not verified
        assert not Path(step.target).is_absolute() and ".." not in Path(step.target).parts


@pytest.mark.shared
def test_pinned_checksums_match_the_real_data(server, monkeypatch, data_root, tmp_path):
    """The CN-100K and CommonsenseQA v1.0 files kelm pins are the very files of the shared
    data (served through the mirror variable, as a copy of a data directory would be)."""
    for remote in dl.REGISTRY["cn100k"].files:
        server.files[f"/{remote.relative_path}"] = (data_root / remote.relative_path).read_bytes()
    monkeypatch.setenv(dl.MIRROR_ENV, server.base)
    paths = dl.download("cn100k", tmp_path, progress=False)
    assert len(paths) == 7 and not (tmp_path / dl.CHECKSUMS_FILE).exists()

    csqa = [r for r in dl.REGISTRY["csqa"].files if r.relative_path.endswith("_v1.0.jsonl")]
    for remote in csqa:
        local = data_root / remote.relative_path
        assert sha256_file(local) == remote.sha256 and local.stat().st_size == remote.size
