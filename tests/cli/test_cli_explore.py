"""``kelm explore``: the page is served on 127.0.0.1 by default (here a stand-in server, so the
test does not block); bad options are one-line errors (the hostile inputs are in the sweep)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kelm.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import build_graph, one_line_error, write_qa  # noqa: E402

pytest.importorskip("gradio", reason="kelm explore needs gradio (the explore extra)")
runner = CliRunner()


class FakeApp:
    local_url = "http://127.0.0.1:7999/"
    blocked = closed = False

    def block_thread(self) -> None:
        self.blocked = True

    def close(self) -> None:
        self.closed = True


def test_explore_serves_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kelm.explore.app as explore_app

    graph = build_graph(tmp_path / "kg")
    qa = write_qa(tmp_path / "qa.jsonl")
    served: dict[str, Any] = {}
    fake = FakeApp()

    def launch(explorer: Any, **kwargs: Any) -> FakeApp:
        served.update(explorer=explorer, **kwargs)
        return fake

    monkeypatch.setattr(explore_app, "launch", launch)
    result = runner.invoke(app, ["explore", "-g", str(graph), "--qa", str(qa), "--hops", "3"])
    assert result.exit_code == 0, result.output
    assert "kelm explore on http://127.0.0.1:7999/" in result.output
    assert served["host"] == "127.0.0.1" and served["port"] is None
    assert len(served["explorer"].items) == 12 and served["explorer"].retriever.hops == 3
    assert fake.blocked and fake.closed
    result = runner.invoke(
        app, ["explore", "-g", str(graph), "--host", "0.0.0.0", "--port", "8080"]
    )
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("0.0.0.0", 8080)
    from kelm.explore.lm import ZeroShotLM

    started: list[ZeroShotLM] = []
    monkeypatch.setattr(ZeroShotLM, "load_in_background", lambda self: started.append(self))
    result = runner.invoke(app, ["explore", "-g", str(graph), "--lm", "default"])
    assert result.exit_code == 0, result.output
    (lm,) = served["explorer"].runs
    assert lm.name == "zero-shot (smollm2-135m, mean)"
    assert started == [lm] and not lm.loaded  # loading starts once the page is up


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "0"], "--port must be between 1 and 65535"),
        (["--hops", "9"], "hops"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--lm", "default", "--lm-normalization", "best"], "unknown normalization 'best'"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    graph = build_graph(tmp_path / "kg")
    one_line_error(runner.invoke(app, ["explore", "-g", str(graph), *args]), message)
