"""Statement grounding rules, ``ground_file`` (formats, resume, reuse, bad input), the
``kelm ground`` command and a tiny run of ``scripts/bench_linking.py``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kelm._io import output_lock, sha256_file
from kelm.cli import app
from kelm.errors import InputError, KelmError
from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources.base import BuildOptions
from kelm.linking import ground as ground_module
from kelm.linking.ground import StatementLinker, ground_file, manifest_path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
QA = FIXTURES / "qa"
LINE_KEYS = [
    "id",
    "choice",
    "question",
    "answer",
    "question_concepts",
    "question_names",
    "answer_concepts",
    "answer_names",
]
MANIFEST_KEYS = [
    "kind",
    "format_version",
    "graph",
    "graph_checksum",
    "qa_file",
    "qa_sha256",
    "linker",
    "statements",
    "complete",
    "sha256",
]


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "graph"
    build_index(
        [FIXTURES / "linking" / "tiny.tsv"], out, BuildOptions(format="tsv"), progress=False
    )
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def linker(graph_dir, cache) -> StatementLinker:
    return StatementLinker(GraphIndex.load(graph_dir), cache_dir=cache)


def ground_names(linker: StatementLinker, pairs):
    return [
        (
            [linker.names[n] for n in g.question_concepts],
            [linker.names[n] for n in g.answer_concepts],
        )
        for g in linker.ground(pairs)
    ]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------- rules
def test_answer_and_question_concepts(linker):
    question = "If a lantern is not for sale, where is it likely to be?"
    assert ground_names(linker, [(question, "antique shop"), (question, "dark place")]) == [
        (["lantern", "sale"], ["antique shop", "shop"]),
        (["lantern", "sale"], ["dark", "dark place"]),
    ]


def test_question_concepts_exclude_answer_concepts(linker):
    question = "Where would a big cat wait for the bus?"
    assert ground_names(linker, [(question, "bus stop")]) == [
        (["big cat", "cat"], ["bus", "bus stop", "stop"])
    ]


def test_match_across_the_boundary_is_a_question_concept(linker):
    assert ground_names(linker, [("I saw a big", "cat")]) == [(["big cat"], ["cat"])]


def test_fallbacks(linker):
    assert ground_names(
        linker,
        [
            ("Where is the dog?", "it"),  # a choice equal to a (pruned) concept name
            ("Is it the one?", "dog"),  # single-token lemmas, stopword nodes included
            ("Where is the house?", "house"),  # question fallback drops the answer concept
        ],
    ) == [
        (["dog"], ["it"]),
        (["be", "it", "the"], ["dog"]),
        (["be", "the"], ["house"]),
    ]


@pytest.mark.parametrize("answer", ["", "😀", "日本語", "qwertyuiop"])
def test_no_concept_gives_empty_lists(linker, answer):
    (grounding,) = linker.ground([("Where is the dog?", answer)])
    assert grounding.answer_concepts == []
    assert [linker.names[n] for n in grounding.question_concepts] == ["dog"]


def test_empty_statement_and_empty_batch(linker):
    (grounding,) = linker.ground([("", "")])
    assert grounding.question_concepts == [] and grounding.answer_concepts == []
    assert linker.ground([]) == []


def test_long_question(linker):
    question = ("the dog ran " * 8400)[:100_000]
    assert ground_names(linker, [(question, "cat")]) == [(["dog", "run"], ["cat"])]


def test_entity_linker_refused(graph_dir, cache):
    from kelm.linking.options import LinkerOptions

    with pytest.raises(KelmError, match="concept-mode"):
        StatementLinker(
            GraphIndex.load(graph_dir), options=LinkerOptions(mode="entity"), cache_dir=cache
        )


# ---------------------------------------------------------------------------------- files
def test_ground_csqa_original(graph_dir, cache, tmp_path):
    out = tmp_path / "out.jsonl"
    report = ground_file(
        graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache
    )
    lines = read_lines(out)
    assert report.statements == len(lines) == 9 and not report.reused
    assert all(list(line) == LINE_KEYS for line in lines)
    assert [(line["id"], line["choice"]) for line in lines][:4] == [
        ("q1", "A"),
        ("q1", "B"),
        ("q1", "C"),
        ("q2", "A"),
    ]
    by_key = {(line["id"], line["choice"]): line for line in lines}
    assert by_key[("q2", "B")]["answer_names"] == ["it"]
    assert by_key[("q2", "C")]["answer_names"] == ["run"]
    for empty in (("q3", "A"), ("q3", "B")):  # emoji and empty choice
        assert by_key[empty]["answer_concepts"] == [] and by_key[empty]["answer_names"] == []
    assert by_key[("q3", "C")]["answer_names"] == ["cream", "ice cream"]
    graph = GraphIndex.load(graph_dir)
    for line in lines:
        assert [graph.node_name(n) for n in line["question_concepts"]] == line["question_names"]
    manifest = json.loads(manifest_path(out).read_text())
    assert list(manifest) == MANIFEST_KEYS
    assert manifest["kind"] == "kelm-grounded" and manifest["complete"] is True
    assert manifest["statements"] == 9 and manifest["graph_checksum"] == graph.checksum
    assert manifest["linker"]["mode"] == "concept"
    assert not list(tmp_path.glob("*.partial*"))


def test_ground_hf_form_and_copa(graph_dir, cache, tmp_path):
    ground_file(
        graph_dir, QA / "csqa_hf.jsonl", tmp_path / "hf.jsonl", progress=False, cache_dir=cache
    )
    hf = read_lines(tmp_path / "hf.jsonl")
    assert len(hf) == 10 and [line["choice"] for line in hf[:5]] == list("ABCDE")
    assert hf[4]["answer_names"] == ["city", "new york city"]
    assert [line["answer_names"] for line in hf[6:8]] == [["cream"], ["creamer"]]
    ground_file(
        graph_dir, QA / "copa.xml", tmp_path / "copa.jsonl", progress=False, cache_dir=cache
    )
    copa = read_lines(tmp_path / "copa.jsonl")
    assert [(line["id"], line["choice"]) for line in copa] == [
        ("1", "1"),
        ("1", "2"),
        ("2", "1"),
        ("2", "2"),
    ]
    assert copa[0]["question"] == "The dog ran to the house. What was the cause?"
    # The premise alone is grounded: "What was the cause?" adds no `cause` concept.
    assert copa[0]["question_names"] == ["dog", "house", "run"]
    assert copa[0]["answer_names"] == ["bus", "bus stop", "cat", "stop"]


def test_complete_output_is_reused(graph_dir, cache, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    ground_file(graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache)
    before = out.read_bytes()

    def fail(*args, **kwargs):
        raise AssertionError("grounded again")

    monkeypatch.setattr(StatementLinker, "ground", fail)
    report = ground_file(
        graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache
    )
    assert report.reused and out.read_bytes() == before


def test_without_spacy_a_complete_output_is_reused_or_refused(
    graph_dir, cache, tmp_path, monkeypatch
):
    """A machine without spaCy (a GPU machine given the caches) reuses a complete grounded file
    of the same graph, questions and linker settings; anything else is a one-line error."""
    out = tmp_path / "out.jsonl"
    ground_file(graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache)
    before = out.read_bytes()
    monkeypatch.setitem(sys.modules, "spacy", None)  # `import spacy` raises ImportError
    report = ground_file(
        graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache
    )
    assert report.reused and report.statements == 9 and out.read_bytes() == before
    with pytest.raises(KelmError, match="needs spaCy, which is not installed"):
        ground_file(graph_dir, QA / "csqa_hf.jsonl", out, progress=False, cache_dir=cache)
    with pytest.raises(KelmError, match="needs spaCy"):  # other linker settings
        ground_file(
            graph_dir,
            QA / "csqa_original.jsonl",
            out,
            options=ground_module.LinkerOptions(max_ngram=2),
            progress=False,
            cache_dir=cache,
        )


def test_modified_output_is_redone(graph_dir, cache, tmp_path):
    """The manifest records the output's sha256: an edited output (same line count) is not
    reused, and one cut short is not either."""
    out = tmp_path / "out.jsonl"
    ground_file(graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache)
    before = out.read_bytes()
    assert json.loads(manifest_path(out).read_text())["sha256"] == sha256_file(out)
    lines = before.splitlines(keepends=True)
    for edited in (b"".join([lines[1], lines[0], *lines[2:]]), b"".join(lines[:5])):
        out.write_bytes(edited)
        report = ground_file(
            graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache
        )
        assert not report.reused and out.read_bytes() == before


def test_output_without_manifest_is_redone(graph_dir, cache, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "stale"}\n')
    report = ground_file(
        graph_dir, QA / "csqa_original.jsonl", out, progress=False, cache_dir=cache
    )
    assert not report.reused and len(read_lines(out)) == 9


def test_changed_qa_file_is_redone(graph_dir, cache, tmp_path):
    qa = tmp_path / "qa.jsonl"
    shutil.copy(QA / "csqa_original.jsonl", qa)
    out = tmp_path / "out.jsonl"
    ground_file(graph_dir, qa, out, progress=False, cache_dir=cache)
    qa.write_text(qa.read_text().replace("lantern", "dog"))
    report = ground_file(graph_dir, qa, out, progress=False, cache_dir=cache)
    assert not report.reused and read_lines(out)[0]["question_names"] == ["dog", "sale"]


def interrupt_after(monkeypatch, batches: int) -> None:
    """Make the writer raise KeyboardInterrupt after ``batches`` flushed batches."""
    original = ground_module.GroundedWriter.write
    calls = {"n": 0}

    def write(self, rows, groundings):
        if calls["n"] == batches:
            raise KeyboardInterrupt
        calls["n"] += 1
        original(self, rows, groundings)

    monkeypatch.setattr(ground_module.GroundedWriter, "write", write)


def test_resume_after_interruption(graph_dir, cache, tmp_path, monkeypatch):
    reference = tmp_path / "reference.jsonl"
    ground_file(graph_dir, QA / "csqa_hf.jsonl", reference, progress=False, cache_dir=cache)
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            ground_file(
                graph_dir, QA / "csqa_hf.jsonl", out, batch_size=3, progress=False, cache_dir=cache
            )
    partial = out.with_name("out.jsonl.partial")
    assert not out.exists() and not manifest_path(out).exists()
    assert len(read_lines(partial)) == 6
    with open(partial, "a") as fh:  # a line cut off by the interruption
        fh.write('{"id": "h2", "choice": ')
    report = ground_file(
        graph_dir, QA / "csqa_hf.jsonl", out, batch_size=3, progress=False, cache_dir=cache
    )
    assert report.resumed_from == 6 and not report.reused
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists() and json.loads(manifest_path(out).read_text())["complete"]


def test_partial_of_other_settings_starts_over(graph_dir, cache, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            ground_file(
                graph_dir, QA / "csqa_hf.jsonl", out, batch_size=3, progress=False, cache_dir=cache
            )
    key_file = out.with_name("out.jsonl.partial.json")
    key = json.loads(key_file.read_text())
    key["qa_sha256"] = "0" * 64
    key_file.write_text(json.dumps(key))
    report = ground_file(
        graph_dir, QA / "csqa_hf.jsonl", out, batch_size=3, progress=False, cache_dir=cache
    )
    assert report.resumed_from == 0 and len(read_lines(out)) == 10


def test_several_processes_give_the_same_output(graph_dir, cache, tmp_path):
    ground_file(
        graph_dir, QA / "csqa_hf.jsonl", tmp_path / "one.jsonl", progress=False, cache_dir=cache
    )
    ground_file(
        graph_dir,
        QA / "csqa_hf.jsonl",
        tmp_path / "two.jsonl",
        processes=2,
        batch_size=3,
        progress=False,
        cache_dir=cache,
    )
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


def test_two_writers_of_one_output_take_turns(graph_dir, cache, tmp_path):
    """Two groundings of one output at once (two runs side by side sharing a cache): one
    grounds, the other waits for it and reuses its output; neither appends to the other's
    partial file."""
    out = tmp_path / "shared.jsonl"
    reports, errors = [], []

    def ground() -> None:
        try:
            reports.append(
                ground_file(graph_dir, QA / "csqa_hf.jsonl", out, progress=False, cache_dir=cache)
            )
        except BaseException as exc:  # noqa: BLE001 -- re-raised by the test below
            errors.append(exc)

    with output_lock(out):  # both reach the lock while it is held, then take turns
        threads = [threading.Thread(target=ground) for _ in range(2)]
        for thread in threads:
            thread.start()
        threads[0].join(1.0)
        assert not out.exists()
    for thread in threads:
        thread.join(60)
    assert not errors and len(reports) == 2
    assert sorted(r.reused for r in reports) == [False, True]
    ground_file(
        graph_dir, QA / "csqa_hf.jsonl", tmp_path / "alone.jsonl", progress=False, cache_dir=cache
    )
    assert out.read_bytes() == (tmp_path / "alone.jsonl").read_bytes()
    assert manifest_path(out).is_file() and not (tmp_path / "shared.jsonl.partial").exists()


# ---------------------------------------------------------------------------------- bad input
def test_missing_graph(tmp_path):
    with pytest.raises(KelmError, match="does not exist"):
        ground_file(tmp_path / "none", QA / "csqa_original.jsonl", tmp_path / "o.jsonl")
    assert not list(tmp_path.iterdir())


def test_unknown_graph_version(graph_dir, tmp_path):
    copy = tmp_path / "graph"
    shutil.copytree(graph_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KelmError, match="format version 2"):
        ground_file(copy, QA / "csqa_original.jsonl", tmp_path / "o.jsonl")


def test_malformed_qa_file_writes_nothing(graph_dir, cache, tmp_path):
    qa = tmp_path / "bad.jsonl"
    qa.write_text(QA.joinpath("csqa_original.jsonl").read_text() + '{"id": "x"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:5: field 'question'"):
        ground_file(graph_dir, qa, tmp_path / "o.jsonl", cache_dir=cache)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_text_over_max_length(graph_dir, cache, tmp_path):
    qa = tmp_path / "long.jsonl"
    item = {
        "id": "long",
        "question": {
            "stem": "a" * 1_000_001,
            "choices": [{"label": "A", "text": "dog"}, {"label": "B", "text": "cat"}],
        },
    }
    qa.write_text(json.dumps(item) + "\n")
    with pytest.raises(InputError, match="item 'long'.*max_length"):
        ground_file(graph_dir, qa, tmp_path / "o.jsonl", cache_dir=cache)


def test_duplicate_ids_are_refused(graph_dir, cache, tmp_path):
    """The QA reader's rule, the one `evaluate` and `train` follow: ground used to write the
    statements of every copy of a repeated id."""
    qa = tmp_path / "dup.jsonl"
    lines = (QA / "csqa_original.jsonl").read_text().splitlines()
    qa.write_text("\n".join([*lines, lines[0]]) + "\n")
    with pytest.raises(InputError, match=rf"dup\.jsonl:{len(lines) + 1}: duplicate id"):
        ground_file(graph_dir, qa, tmp_path / "o.jsonl", cache_dir=cache)
    assert not (tmp_path / "o.jsonl").exists()


def test_output_is_a_directory(graph_dir, cache, tmp_path):
    with pytest.raises(KelmError, match="is a directory"):
        ground_file(graph_dir, QA / "csqa_original.jsonl", tmp_path, cache_dir=cache)


# ---------------------------------------------------------------------------------- CLI
def test_cli_ground(graph_dir, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("KELM_CACHE", str(cache))
    out = tmp_path / "out.jsonl"
    args = [
        "ground",
        "--graph",
        str(graph_dir),
        "--qa",
        str(QA / "copa.xml"),
        "--out",
        str(out),
        "--no-progress",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "grounded 4 statements" in result.stdout
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "reused 4 statements" in again.stdout


def test_cli_ground_error_is_one_line(graph_dir, tmp_path):
    qa = tmp_path / "bad.jsonl"
    qa.write_text("{oops\n")
    result = CliRunner().invoke(
        app,
        ["ground", "--graph", str(graph_dir), "--qa", str(qa), "--out", str(tmp_path / "o.jsonl")],
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {qa}:1: not valid JSON")


# ---------------------------------------------------------------------------------- bench
def test_bench_script_tiny(graph_dir, cache, tmp_path):
    script = ROOT / "scripts" / "bench_linking.py"
    help_text = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "--sample" in help_text.stdout
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--graph",
            str(graph_dir),
            "--qa",
            str(QA / "csqa_hf.jsonl"),
            "--sample",
            "5",
            "--limit",
            "8",
            "--cache-dir",
            str(cache),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    assert list(obj) == ["statements", "kelm_per_s", "baseline_per_s", "speedup", "agreement"]
    assert obj["statements"] == 8 and obj["agreement"] == 1.0
