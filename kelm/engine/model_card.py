"""The model card of a finished run: ``model/README.md`` in the Hugging Face format, so that
``push_to_hub`` (or a look at the folder) says what the model is.

YAML front matter (``library_name``, ``tags``, ``datasets`` when the data is a set published on
the Hub, ``metrics``, ``base_model`` when the encoder came from the Hub), then: what the model
is, its data, its config (the run's ``config.resolved.yaml``), its metrics and how to load it
with the Auto classes after ``import kelm.modeling``.

The card is made from what the run wrote (its resolved config) and what it measured; it is
written into ``model/`` with the weights by :func:`kelm.engine.runtime.save_model`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

#: What each model type is, in a sentence (kelm's families and the pretraining models).
DESCRIPTIONS = {
    "lm": "a text encoder with a multiple-choice head (the text-only baseline)",
    "qagnn": "QA-GNN-style joint reasoning: a text encoder and a relation-aware graph "
    "attention network over the subgraph retrieved for each (question, choice) statement, "
    "pooled by attention with the statement as query",
    "kagnet": "KagNet-style path reasoning: the question-answer paths of each statement's "
    "subgraph encoded by an LSTM and pooled by hierarchical path attention, over a text encoder",
    "gsc": "a graph soft counter: edge and node counts over each statement's subgraph, beside "
    "a text encoder",
    "ernie": "an ERNIE-style knowledgeable encoder: tokens fused with the graph entities "
    "linked in the text",
    "gpt": "a GPT-1-style multiple-choice model on a causal language model",
}

#: Data files that are a set published on the Hugging Face Hub: a word in the path -> its id.
HUB_DATASETS = {
    "csqa": "tau/commonsense_qa",
    "commonsense": "tau/commonsense_qa",
    "obqa": "allenai/openbookqa",
    "openbook": "allenai/openbookqa",
}

_AUTO_CLASSES = (
    ("ForMultipleChoice", "AutoModelForMultipleChoice"),
    ("ForPreTraining", "AutoModelForPreTraining"),
    ("ForMaskedLM", "AutoModelForMaskedLM"),
    ("ForCausalLM", "AutoModelForCausalLM"),
    ("ForSequenceClassification", "AutoModelForSequenceClassification"),
)


def auto_class(model: Any) -> str:
    """The Auto class that loads ``model``'s saved folder (from its class name)."""
    name = type(model).__name__
    return next((auto for suffix, auto in _AUTO_CLASSES if name.endswith(suffix)), "AutoModel")


def model_card(model: Any, run_dir: Path, metrics: dict[str, Any], *, kind: str) -> str:
    """The card of the run in ``run_dir`` (``kind``: ``train`` or ``pretrain``), whose model
    is ``model`` and whose final metrics are ``metrics``."""
    config_text = _read_config(run_dir)
    config = _safe_yaml(config_text)
    model_section = config.get("model") if isinstance(config.get("model"), dict) else {}
    family = str(model_section.get("type") or getattr(model.config, "model_type", "model"))
    family = family.removeprefix("kelm_")
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    graph = config.get("graph") if isinstance(config.get("graph"), dict) else {}
    files = [str(v) for k, v in data.items() if k in ("train", "eval", "corpus") and v]
    datasets = sorted(
        {hub for f in files for word, hub in HUB_DATASETS.items() if word in f.lower()}
    )
    encoder = getattr(model.config, "encoder_name_or_path", None) or model_section.get("encoder")
    front: dict[str, Any] = {
        "library_name": "transformers",
        "tags": ["kelm", "knowledge-graph", family]
        + (["multiple-choice", "commonsense-qa"] if kind == "train" else ["pretraining"]),
        "metrics": [k for k in ("accuracy", "loss") if isinstance(metrics.get(k), (int, float))],
    }
    if datasets:
        front["datasets"] = datasets
    if _is_hub_id(encoder):
        front["base_model"] = encoder
    auto = auto_class(model)
    what = DESCRIPTIONS.get(family, f"a kelm {family} model")
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {run_dir.name}: kelm {family}",
        "",
        f"A {'multiple-choice QA' if kind == 'train' else 'pretrained'} model trained with kelm "
        f"(`kelm {kind}`): {what}.",
        "",
        "## Data",
        "",
    ]
    lines += [f"- {k}: `{v}`" for k, v in data.items() if v not in (None, "", [])]
    if graph.get("index") or graph.get("source"):
        where = graph.get("index") or graph.get("source")
        checksum = getattr(model.config, "graph_checksum", None)
        lines.append(
            f"- graph: `{where}`"
            + (f" (index checksum `{checksum}`)" if checksum else "")
            + "; retrieval: "
            + ", ".join(f"{k} {graph[k]}" for k in ("max_nodes", "hops", "paths") if k in graph)
        )
    lines += ["", "## Metrics", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {_number(v)} |" for k, v in _scalars(metrics)]
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "import kelm.modeling  # registers kelm's model types with the Auto classes",
        f"from transformers import AutoTokenizer, {auto}",
        "",
        f'model = {auto}.from_pretrained("path/to/{run_dir.name}/model")',
        f'tokenizer = AutoTokenizer.from_pretrained("path/to/{run_dir.name}/model")',
        "```",
        "",
    ]
    if kind == "train" and family in ("qagnn", "kagnet", "gsc", "ernie"):
        lines += [
            "The model reads graph inputs besides the text (subgraphs, paths or linked "
            "entities, built from the graph above): score questions with "
            f"`kelm evaluate --model {run_dir.name} --qa FILE -o OUT`, or look at what it "
            f"attends to with `kelm explore --graph GRAPH_INDEX --model {run_dir.name}`.",
            "",
        ]
    lines += ["## Config", "", "The run's `config.resolved.yaml`:", "", "```yaml"]
    lines += [config_text.rstrip(), "```", ""]
    return "\n".join(lines)


def _read_config(run_dir: Path) -> str:
    try:
        return (run_dir / "config.resolved.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "# config.resolved.yaml could not be read\n"


def _safe_yaml(text: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _is_hub_id(name: Any) -> bool:
    """``owner/name`` that is no path on this machine."""
    if not isinstance(name, str) or name.count("/") != 1 or name.startswith((".", "/", "~")):
        return False
    return not Path(name).exists()


def _scalars(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Numbers and short strings of ``metrics``, nested keys joined by dots."""
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _scalars(value, f"{name}.")
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            out.append((name, value))
    return out


def _number(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


__all__ = ["auto_class", "model_card"]
