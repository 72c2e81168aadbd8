"""The knowledge probe: CN-100K triples as cloze sentences, the tail predicted by the MLM head.

Each ``relation<TAB>head<TAB>tail`` triple (CN-100K ``test.txt`` / ``valid.txt``; a fourth
column is ignored) is written with its relation's template
(``kelm/resources/probe_templates.yaml``: ``UsedFor: "a {head} is used for [MASK]."``).
Kept triples: a template exists, the tail is a single wordpiece of the tokenizer (not the
unknown token), and the (relation, head, tail) was not seen before. The model scores the
whole vocabulary at the mask; the tail's rank (1 + the number of tokens scored higher) gives
hits@1, hits@10 and MRR, overall and per relation (raw ranks: other true tails of the same
head and relation are not filtered out).

For an objective with entities (ERNIE) the head mention is linked: when the head phrase is a
node of the run's graph, its node id is put on the head's first wordpiece, as in pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kelm.errors import InputError, KelmError

MASK = "[MASK]"


def default_templates() -> Path:
    return Path(__file__).resolve().parents[1] / "resources" / "probe_templates.yaml"


def load_templates(path: str | Path | None = None) -> dict[str, str]:
    """Relation -> template, checked (``{head}`` and ``[MASK]`` once each).

    Raises:
        InputError: unreadable file or a bad template (naming the relation).
    """
    import yaml

    from kelm._io import read_small_text

    path = Path(path) if path else default_templates()
    text = read_small_text(path, what="probe templates file", error=InputError)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise InputError(f"{path}{line}: unreadable probe templates ({problem})") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{path}: probe templates must be a mapping relation -> template")
    for relation, template in raw.items():
        if not isinstance(template, str) or template.count("{head}") != 1:
            raise InputError(f"{path}: template of {relation!r} must hold {{head}} once")
        if template.count(MASK) != 1:
            raise InputError(f"{path}: template of {relation!r} must hold {MASK} once")
    return {str(k): str(v) for k, v in raw.items()}


@dataclass
class ProbeItem:
    """One cloze sentence.

    Attributes:
        relation, head, tail: the triple.
        text: the sentence with the tokenizer's mask token.
        head_span: character span of the head phrase in ``text``.
        tail_id: the tail's wordpiece id.
    """

    relation: str
    head: str
    tail: str
    text: str
    head_span: tuple[int, int]
    tail_id: int


def build_probe_items(
    files: list[str | Path],
    tokenizer: Any,
    templates: dict[str, str],
    max_triples: int | None = None,
) -> tuple[list[ProbeItem], dict[str, int]]:
    """Read triple files and keep the probe-able triples (see the module docstring).

    Raises:
        InputError: a missing or non-UTF-8 file, or a line that is not a triple (a file cut
            short, or not a triple file: probing what is left of it would report a score on
            the wrong triples).
    """
    counts = {
        "triples": 0,
        "duplicates": 0,
        "no_template": 0,
        "multi_piece_tail": 0,
        "kept": 0,
    }
    mask = tokenizer.mask_token
    if mask is None:
        raise KelmError(f"{type(tokenizer).__name__} has no mask token; the probe needs one")
    seen: set[tuple[str, str, str]] = set()
    items: list[ProbeItem] = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise InputError(f"{path}: probe triple file not found")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 3 or not all(f.strip() for f in fields[:3]):
                raise InputError(
                    f"{path}:{lineno}: expected 3 non-empty tab-separated fields "
                    "(relation, head, tail)"
                )
            relation, head, tail = (" ".join(f.split()) for f in fields[:3])
            counts["triples"] += 1
            if (relation, head, tail) in seen:
                counts["duplicates"] += 1
                continue
            seen.add((relation, head, tail))
            template = templates.get(relation)
            if template is None:
                counts["no_template"] += 1
                continue
            pieces = tokenizer.tokenize(tail)
            ids = tokenizer.convert_tokens_to_ids(pieces)
            if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
                counts["multi_piece_tail"] += 1
                continue
            before, after = template.split("{head}")
            text = (before + head + after).replace(MASK, mask)
            start = len(before.replace(MASK, mask))
            items.append(ProbeItem(relation, head, tail, text, (start, start + len(head)), ids[0]))
            if max_triples is not None and len(items) >= max_triples:
                counts["kept"] = len(items)
                return items, counts
    counts["kept"] = len(items)
    return items, counts


def _batch(
    items: list[ProbeItem], tokenizer: Any, graph: Any | None
) -> tuple[dict[str, torch.Tensor], int]:
    """Tensors of a probe batch (keys of :func:`~kelm.pretraining.objectives.base.pad_instances`)
    and how many heads were linked."""
    from kelm.linking.align import char_spans_to_tokens

    enc = tokenizer(
        [it.text for it in items], padding=True, return_offsets_mapping=True, return_tensors="pt"
    )
    b, length = enc["input_ids"].shape
    entity_ids = torch.full((b, length), -1, dtype=torch.long)
    linked = 0
    if graph is not None:
        for i, it in enumerate(items):
            if it.head in graph:
                tokens = char_spans_to_tokens(enc["offset_mapping"][i].tolist(), [it.head_span])
                if tokens[0]:
                    entity_ids[i, tokens[0][0]] = graph.node_id(it.head)
                    linked += 1
    batch = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "token_type_ids": enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])),
        "entity_ids": entity_ids,
    }
    return batch, linked


@torch.no_grad()
def probe_model(
    objective: Any,
    model: torch.nn.Module,
    *,
    files: list[str | Path] | None = None,
    templates: str | Path | None = None,
    max_triples: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Run the probe on a kept model of ``objective`` (defaults from ``objective.cfg.probe``).

    Returns:
        ``{"hits@1", "hits@10", "mrr", "n", "heads_linked", "counts", "per_relation"}``.

    Raises:
        InputError: missing triple files, bad templates, no probe-able triple.
    """
    from tqdm.auto import tqdm

    p = objective.cfg.probe
    files = list(files or p.files)
    table = load_templates(templates or p.templates)
    tokenizer = objective.tokenizer
    items, counts = build_probe_items(
        files, tokenizer, table, max_triples if max_triples is not None else p.max_triples
    )
    if not items:
        raise InputError(
            f"{', '.join(map(str, files))}: no triple to probe (none with a template and a "
            "single-wordpiece tail)"
        )
    graph = objective.knowledge.index if objective.needs_entities and objective.knowledge else None
    size = batch_size or p.batch_size
    was_training = model.training
    model.eval()
    model.to(device)
    ranks: list[int] = []
    linked = 0
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    for chunk in tqdm(chunks, desc="probe", unit="batch", disable=not progress):
        batch, n_linked = _batch(chunk, tokenizer, graph)
        linked += n_linked
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = objective.mlm_logits(model, batch).float()  # [B, L, V]
        at_mask = batch["input_ids"] == tokenizer.mask_token_id  # [B, L], one per row
        scores = logits[at_mask]  # [B, V]
        target = torch.tensor([it.tail_id for it in chunk], device=scores.device)
        gold = scores.gather(1, target[:, None])  # [B, 1]
        ranks += (1 + (scores > gold).sum(dim=1)).tolist()
    model.train(was_training)

    def summary(rs: list[int]) -> dict[str, Any]:
        n = len(rs)
        return {
            "n": n,
            "hits@1": sum(r <= 1 for r in rs) / n,
            "hits@10": sum(r <= 10 for r in rs) / n,
            "mrr": sum(1.0 / r for r in rs) / n,
        }

    per_relation: dict[str, list[int]] = {}
    for it, r in zip(items, ranks, strict=True):
        per_relation.setdefault(it.relation, []).append(r)
    out = summary(ranks)
    out["mean_rank"] = sum(ranks) / len(ranks)
    out["heads_linked"] = linked
    out["counts"] = counts
    out["files"] = [str(f) for f in files]
    out["per_relation"] = {k: summary(v) for k, v in sorted(per_relation.items())}
    return out


def probe_run(
    run_dir: str | Path,
    *,
    files: list[str | Path] | None = None,
    templates: str | Path | None = None,
    max_triples: int | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Probe the saved model of a finished ``kelm pretrain`` run (its ``model/``), with the
    run's objective and graph; writes ``probe.json`` into the run directory.

    Raises:
        KelmError: not a finished pretraining run, or a damaged ``model/`` (a file that is not
            the one saved: :func:`~kelm.modeling.model_files.verify_model_files`).
    """
    from kelm._io import check_output_file, write_json
    from kelm.modeling.encoders import hf_progress_bars
    from kelm.modeling.model_files import verify_model_files
    from kelm.pretraining.config import load_pretrain_config
    from kelm.pretraining.objectives.base import load_tokenizer_for, open_knowledge

    run = Path(run_dir)
    if not (run / "config.resolved.yaml").is_file() or not (run / "model").is_dir():
        raise KelmError(f"{run}: not a finished pretraining run (config.resolved.yaml, model/)")
    check_output_file(run / "probe.json")
    verify_model_files(run / "model")
    cfg = load_pretrain_config(run / "config.resolved.yaml")
    cls = cfg.objective_class()
    knowledge = open_knowledge(cfg) if cls.needs_entities else None
    cfg.model.tokenizer = str(run / "model")
    try:
        tokenizer = load_tokenizer_for(cfg)
        objective = cls(cfg, cfg.options(), tokenizer, knowledge)
        with hf_progress_bars(progress):
            model = objective.load_kept_model(run / "model")
    except KelmError:
        raise
    except Exception as exc:  # a damaged model/ surfaces as many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise KelmError(
            f"{run / 'model'}: cannot load the model ({type(exc).__name__}: {first[:200]})"
        ) from None
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = probe_model(
        objective,
        model,
        files=files,
        templates=templates,
        max_triples=max_triples,
        device=dev,
        progress=progress,
    )
    write_json(run / "probe.json", result)
    return result


__all__ = ["ProbeItem", "build_probe_items", "load_templates", "probe_model", "probe_run"]
