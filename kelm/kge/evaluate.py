"""Evaluating KG embeddings: filtered link prediction and triple classification.

Link prediction ranks, for every held-out triple ``(h, r, t)``, the true tail among all
entities for ``(h, r, ?)`` and the true head among all entities for ``(?, r, t)``. All entities
are scored at once for a batch of queries (closed forms per model, see :func:`score_all`); in
the *filtered* setting every other entity that makes a known triple (training graph, valid and
test files) is removed from the ranking before the target's rank is read off.

Ranks are *realistic*: ``1 + #(scores above the target) + #(other scores equal to it) / 2``,
so a model that scores everything alike gets the middle rank, not rank 1.

Triple classification scores labelled triples (e.g. CN-100K ``dev1.txt``/``dev2.txt``, where a
fourth column is 1 for a true triple and 0 for a corrupted one), fits a score threshold on one
file and reports accuracy on another: a triple is predicted true when its score is at least the
threshold. Thresholds are either one global value or one per relation (see
:func:`fit_thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.kge import ComplEx, DistMult, KGEModel, RotatE, TransE

from kelm.errors import InputError, KelmError

if TYPE_CHECKING:
    from kelm.graph.index import GraphIndex

TRIPLE_FORMATS = ("cn100k", "tsv")
THRESHOLD_MODES = ("relation", "global")
HITS_AT = (1, 3, 10)


# ------------------------------------------------------------------------------ held-out files
@dataclass
class Triples:
    """Triples of a held-out file mapped to graph ids (``-1`` never occurs: unknown are skipped).

    ``labels`` (1 true, 0 corrupted) is set for labelled files only. ``skipped`` counts the
    triples whose head, tail or relation is not in the graph; ``negatives`` the rows labelled 0
    that an unlabelled read leaves out.
    """

    heads: np.ndarray
    rels: np.ndarray
    tails: np.ndarray
    labels: np.ndarray | None = None
    path: str = ""
    total: int = 0
    skipped: int = 0
    negatives: int = 0

    def __len__(self) -> int:
        return int(self.heads.shape[0])

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.total,
            "used": len(self),
            "skipped_not_in_graph": self.skipped,
            "negatives_left_out": self.negatives,
        }


def read_triples(
    path: str | Path, graph: GraphIndex, fmt: str = "cn100k", labelled: bool = False
) -> Triples:
    """Read a triple file and map it onto ``graph``.

    Args:
        path: ``cn100k`` (relation, head, tail[, label]) or ``tsv`` (head, relation,
            tail[, weight or label]) file.
        graph: the graph the embeddings are trained on; names are lower-cased when it was
            built with ``lowercase``.
        fmt: ``cn100k`` or ``tsv``.
        labelled: the fourth column is a required 0/1 label, kept in ``labels``. Unlabelled,
            cn100k rows labelled 0 are left out (counted in ``negatives``) and a tsv fourth
            column (a weight) is ignored.

    Raises:
        InputError: the file is missing or empty, or a line has fewer than three fields, an
            empty field, or a non-numeric label.
    """
    if fmt not in TRIPLE_FORMATS:
        raise KelmError(f"unknown triple format {fmt!r}; choose one of {', '.join(TRIPLE_FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    lowercase = bool(graph.manifest.get("options", {}).get("lowercase", False))
    heads: list[str] = []
    rels: list[str] = []
    tails: list[str] = []
    labels: list[int] = []
    negatives = 0
    order = (1, 0, 2) if fmt == "cn100k" else (0, 1, 2)  # positions of head, relation, tail
    columns = "relation, head, tail" if fmt == "cn100k" else "head, relation, tail"
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            lines = fh.read().splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 3 or not all(fields[:3]):
            raise InputError(
                f"{path}:{lineno}: expected 3 non-empty tab-separated fields ({columns})"
            )
        label = 1
        if labelled or (fmt == "cn100k" and len(fields) > 3 and fields[3]):
            if len(fields) < 4 or not fields[3]:
                raise InputError(f"{path}:{lineno}: missing label (fourth column, 1 or 0)")
            try:
                label = 1 if float(fields[3]) > 0 else 0
            except ValueError:
                raise InputError(f"{path}:{lineno}: label {fields[3]!r} is not a number") from None
        if not labelled and label == 0:
            negatives += 1
            continue
        h, r, t = (fields[i] for i in order)
        if lowercase:
            h, t = h.lower(), t.lower()
        heads.append(h)
        rels.append(r)
        tails.append(t)
        labels.append(label)
    total = len(heads) + negatives
    if total == 0:
        raise InputError(f"{path}: no triples in the file")

    h_ids = graph.node_ids(heads) if heads else np.zeros(0, np.int64)
    t_ids = graph.node_ids(tails) if tails else np.zeros(0, np.int64)
    r_ids = _relation_ids(rels, graph)
    keep = (h_ids >= 0) & (t_ids >= 0) & (r_ids >= 0)
    return Triples(
        heads=h_ids[keep],
        rels=r_ids[keep],
        tails=t_ids[keep],
        labels=np.asarray(labels, dtype=np.int64)[keep] if labelled else None,
        path=str(path),
        total=total,
        skipped=int((~keep).sum()),
        negatives=negatives,
    )


def _relation_ids(names: list[str], graph: GraphIndex) -> np.ndarray:
    """Forward relation ids of ``names`` (exact name, else a unique case-insensitive match)."""
    forward = graph.relations[: graph.num_relations]
    exact = {n: i for i, n in enumerate(forward)}
    folded: dict[str, int] = {}
    for i, n in enumerate(forward):
        folded[n.casefold()] = -1 if n.casefold() in folded else i
    table: dict[str, int] = {}
    for name in set(names):
        table[name] = exact.get(name, folded.get(name.casefold(), -1))
    return np.asarray([table[n] for n in names], dtype=np.int64)


# ------------------------------------------------------------------------------ scoring
@torch.no_grad()
def score_triples(
    model: KGEModel,
    heads: np.ndarray | Tensor,
    rels: np.ndarray | Tensor,
    tails: np.ndarray | Tensor,
    batch_size: int = 65536,
) -> np.ndarray:
    """The model's score of each triple (higher = more plausible), as float64 numpy."""
    h, r, t = (torch.as_tensor(np.asarray(x), dtype=torch.long) for x in (heads, rels, tails))
    out = [
        model(h[i : i + batch_size], r[i : i + batch_size], t[i : i + batch_size])
        for i in range(0, h.numel(), batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


@torch.no_grad()
def score_all(model: KGEModel, anchor: Tensor, rel: Tensor, side: str) -> Tensor:
    """Scores of every entity as the missing end of a batch of queries.

    Args:
        anchor: ``[B]`` the known end: heads when ``side == "tail"``, tails when ``"head"``.
        rel: ``[B]`` relation ids.
        side: ``"tail"`` scores ``(anchor, rel, e)``, ``"head"`` scores ``(e, rel, anchor)``.

    Returns:
        ``[B, N]`` scores equal (up to float rounding) to ``model(h, r, t)`` for each entity,
        computed without materialising ``B * N`` embedding pairs.
    """
    if side not in ("tail", "head"):
        raise ValueError(f"side must be 'tail' or 'head', not {side!r}")
    tail = side == "tail"
    ent = model.node_emb.weight  # [N, D]
    if isinstance(model, TransE):
        # -|| h + r - t ||_p ;  tail: q = h + r, compared with every t ; head: q = t - r vs h
        e = F.normalize(ent, p=model.p_norm, dim=-1)  # [N, D]
        r = model.rel_emb(rel)  # [B, D]
        q = e[anchor] + r if tail else e[anchor] - r  # [B, D]
        return -torch.cdist(q, e, p=model.p_norm)  # [B, N]
    if isinstance(model, DistMult):
        # <h, r, t> is symmetric in h and t: (anchor * r) @ E^T
        return (ent[anchor] * model.rel_emb(rel)) @ ent.T  # [B, D] @ [D, N] -> [B, N]
    if isinstance(model, ComplEx):
        # Re<h, r, conj(t)> written as a linear form in the missing entity's (re, im) parts
        ent_im = model.node_emb_im.weight  # [N, D]
        a_re, a_im = ent[anchor], ent_im[anchor]  # [B, D]
        r_re, r_im = model.rel_emb(rel), model.rel_emb_im(rel)  # [B, D]
        if tail:
            q_re, q_im = a_re * r_re - a_im * r_im, a_im * r_re + a_re * r_im
        else:
            q_re, q_im = r_re * a_re + r_im * a_im, r_re * a_im - r_im * a_re
        return q_re @ ent.T + q_im @ ent_im.T  # [B, N]
    if isinstance(model, RotatE):
        # margin - || h o r - t ||  (o: complex product, |r_d| = 1). Rotation is an isometry,
        # so for the head side || h o r - t || = || h - t o conj(r) ||.
        ent_im = model.node_emb_im.weight  # [N, D]
        a_re, a_im = ent[anchor], ent_im[anchor]  # [B, D]
        theta = model.rel_emb(rel)  # [B, D] phases
        c, s = torch.cos(theta), torch.sin(theta)
        if tail:
            q_re, q_im = c * a_re - s * a_im, c * a_im + s * a_re
        else:
            q_re, q_im = c * a_re + s * a_im, c * a_im - s * a_re
        q = torch.cat([q_re, q_im], dim=-1)  # [B, 2D]
        e = torch.cat([ent, ent_im], dim=-1)  # [N, 2D]
        return model.margin - torch.cdist(q, e)  # [B, N]
    return _score_all_generic(model, anchor, rel, tail)


def _score_all_generic(
    model: KGEModel, anchor: Tensor, rel: Tensor, tail: bool, chunk: int = 1 << 20
) -> Tensor:
    """Any other KGEModel: its forward on flattened (query, entity) pairs, in chunks."""
    n = model.num_nodes
    b = anchor.numel()
    q = torch.arange(b).repeat_interleave(n)  # [B*N] query of each pair
    e = torch.arange(n).repeat(b)  # [B*N] candidate of each pair
    out = torch.empty(b * n)
    for i in range(0, b * n, chunk):
        qs, es = q[i : i + chunk], e[i : i + chunk]
        a, r = anchor[qs], rel[qs]
        out[i : i + chunk] = model(a, r, es) if tail else model(es, r, a)
    return out.view(b, n)


# ------------------------------------------------------------------------------ ranking
class KnownTriples:
    """All known true triples, indexed for vectorised filtering.

    Two sorted key arrays: ``h * R + r`` (to find the known tails of a query) and ``t * R + r``
    (known heads), each with the other end alongside.
    """

    def __init__(
        self, heads: np.ndarray, rels: np.ndarray, tails: np.ndarray, num_relations: int
    ) -> None:
        self.num_relations = num_relations
        h, r, t = (np.asarray(x, dtype=np.int64) for x in (heads, rels, tails))
        self._tail_keys, self._tail_vals = _sorted_pairs(h * num_relations + r, t)
        self._head_keys, self._head_vals = _sorted_pairs(t * num_relations + r, h)

    @classmethod
    def from_parts(
        cls, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], num_relations: int
    ) -> KnownTriples:
        h, r, t = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return cls(h, r, t, num_relations)

    def others(
        self, anchor: np.ndarray, rel: np.ndarray, side: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, entities)``: for each query row, the entities known to complete it."""
        if side == "tail":
            keys, vals = self._tail_keys, self._tail_vals
        else:
            keys, vals = self._head_keys, self._head_vals
        query = np.asarray(anchor, np.int64) * self.num_relations + np.asarray(rel, np.int64)
        lo = np.searchsorted(keys, query, side="left")  # [B]
        hi = np.searchsorted(keys, query, side="right")  # [B]
        counts = hi - lo  # [B] known completions per query
        rows = np.repeat(np.arange(query.shape[0]), counts)  # [K]
        offsets = np.cumsum(counts) - counts  # [B] where each row's run starts in the output
        idx = np.repeat(lo - offsets, counts) + np.arange(int(counts.sum()))  # [K]
        return rows, vals[idx]


def _sorted_pairs(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((vals, keys))
    keys, vals = keys[order], vals[order]
    if keys.size:  # drop duplicate triples
        first = np.ones(keys.shape[0], dtype=bool)
        first[1:] = (keys[1:] != keys[:-1]) | (vals[1:] != vals[:-1])
        keys, vals = keys[first], vals[first]
    return keys, vals


def rank_targets(
    scores: Tensor, targets: Tensor, mask: tuple[np.ndarray, np.ndarray] | None = None
) -> Tensor:
    """Realistic rank (1 = best) of each row's target among the row's scores.

    Args:
        scores: ``[B, N]`` scores of every candidate.
        targets: ``[B]`` the true candidate of each row.
        mask: ``(rows, cols)`` of candidates to remove first (filtered ranking: the other known
            completions); ``None`` ranks against everything (raw ranking).

    Returns:
        ``[B]`` float ranks: ``1 + #higher + #tied / 2``.
    """
    rows_b = torch.arange(scores.shape[0])
    target = scores[rows_b, targets].unsqueeze(1)  # [B, 1]
    if not torch.isfinite(target).all():
        raise KelmError(
            "the model gives non-finite scores (training diverged?); lower --lr or change the model"
        )
    scores = scores.clone()
    if mask is not None and mask[0].size:
        scores[torch.from_numpy(mask[0]), torch.from_numpy(mask[1])] = float("-inf")
    scores[rows_b, targets] = float("-inf")  # the target itself is not its own competitor
    higher = (scores > target).sum(dim=1)  # [B]
    tied = (scores == target).sum(dim=1)  # [B]
    return 1.0 + higher.double() + tied.double() / 2


def metrics_from_ranks(ranks: Tensor | np.ndarray) -> dict[str, float]:
    """MRR, mean rank and Hits@1/3/10 of a set of ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    if ranks.numel() == 0:
        return {"mrr": 0.0, "mean_rank": 0.0, **{f"hits@{k}": 0.0 for k in HITS_AT}}
    out = {"mrr": float((1.0 / ranks).mean()), "mean_rank": float(ranks.mean())}
    for k in HITS_AT:
        out[f"hits@{k}"] = float((ranks <= k).double().mean())
    return out


@torch.no_grad()
def link_prediction(
    model: KGEModel, test: Triples, known: KnownTriples, batch_size: int = 256
) -> dict[str, Any]:
    """Filtered (and raw) MRR, mean rank, Hits@1/3/10 over head and tail prediction.

    Every triple of ``test`` gives two queries, ``(h, r, ?)`` and ``(?, r, t)``; metrics are
    averaged over both. ``known`` must hold every true triple to filter (train + valid + test).
    """
    model.eval()
    filtered: list[Tensor] = []
    raw: list[Tensor] = []
    for side in ("tail", "head"):
        anchor_np, target_np = (
            (test.heads, test.tails) if side == "tail" else (test.tails, test.heads)
        )
        for i in range(0, len(test), batch_size):
            anchor = torch.from_numpy(anchor_np[i : i + batch_size])  # [B]
            rel = torch.from_numpy(test.rels[i : i + batch_size])  # [B]
            target = torch.from_numpy(target_np[i : i + batch_size])  # [B]
            scores = score_all(model, anchor, rel, side)  # [B, N]
            mask = known.others(anchor.numpy(), rel.numpy(), side)  # (rows, cols), K each
            filtered.append(rank_targets(scores, target, mask))
            raw.append(rank_targets(scores, target, None))
    ranks = torch.cat(filtered) if filtered else torch.zeros(0)
    raw_ranks = torch.cat(raw) if raw else torch.zeros(0)
    return {
        **metrics_from_ranks(ranks),
        "raw": metrics_from_ranks(raw_ranks),
        "triples": len(test),
        "queries": int(ranks.numel()),
        "file": test.summary(),
    }


# ------------------------------------------------------------------------------ classification
def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold maximising accuracy of ``score >= threshold  <=>  label == 1``.

    Candidates lie below every score, midway between consecutive distinct scores, and above
    every score; ties between equally good candidates go to the lowest. Returns
    ``(threshold, accuracy)``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = scores.shape[0]
    if n == 0:
        raise ValueError("no scores to fit a threshold on")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    # cut i (0..n): predict positive for s[i:], negative for s[:i]
    neg_below = np.concatenate([[0], np.cumsum(1 - y)])  # [n+1]
    pos_above = int(y.sum()) - np.concatenate([[0], np.cumsum(y)])  # [n+1]
    correct = neg_below + pos_above  # [n+1]
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] > s[:-1]  # a cut between equal scores cannot be realised
    best = int(np.flatnonzero(valid)[np.argmax(correct[valid])])
    if best == 0:
        threshold = float(s[0]) - 1.0
    elif best == n:
        threshold = float(s[-1]) + 1.0
    else:
        threshold = float((s[best - 1] + s[best]) / 2)
    return threshold, float(correct[best] / n)


@dataclass
class Thresholds:
    """Decision thresholds: one global value plus optional per-relation overrides."""

    mode: str
    global_threshold: float
    per_relation: dict[int, float] = field(default_factory=dict)

    def predict(self, scores: np.ndarray, rels: np.ndarray) -> np.ndarray:
        """``[n]`` 0/1 predictions: score >= the threshold of the triple's relation."""
        lookup = np.full(int(rels.max()) + 1 if rels.size else 1, self.global_threshold)
        for rel, value in self.per_relation.items():
            if rel < lookup.shape[0]:
                lookup[rel] = value
        return (scores >= lookup[rels]).astype(np.int64)

    def to_dict(self, relation_names: list[str] | None = None) -> dict[str, Any]:
        name = (lambda r: relation_names[r]) if relation_names else str
        return {
            "mode": self.mode,
            "global": self.global_threshold,
            "per_relation": {name(r): v for r, v in sorted(self.per_relation.items())},
        }


def fit_thresholds(
    scores: np.ndarray,
    labels: np.ndarray,
    rels: np.ndarray,
    mode: str = "relation",
    min_examples: int = 10,
) -> Thresholds:
    """Fit classification thresholds on labelled scores.

    ``global``: one threshold for all relations. ``relation``: one per relation that has at
    least ``min_examples`` labelled triples with both labels present; other relations (and
    relations absent from the fitting file) fall back to the global threshold.
    """
    if mode not in THRESHOLD_MODES:
        raise KelmError(
            f"unknown threshold mode {mode!r}; choose one of {', '.join(THRESHOLD_MODES)}"
        )
    scores, labels, rels = (np.asarray(x) for x in (scores, labels, rels))
    global_t, _ = best_threshold(scores, labels)
    per_relation: dict[int, float] = {}
    if mode == "relation":
        for rel in np.unique(rels).tolist():
            sel = rels == rel
            y = labels[sel]
            if sel.sum() >= min_examples and 0 < y.sum() < y.shape[0]:
                per_relation[int(rel)] = best_threshold(scores[sel], y)[0]
    return Thresholds(mode, global_t, per_relation)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(predictions) == np.asarray(labels)).mean()) if len(labels) else 0.0


def triple_classification(
    model: KGEModel,
    dev: Triples,
    test: Triples,
    mode: str = "relation",
    relation_names: list[str] | None = None,
) -> dict[str, Any]:
    """Fit thresholds on ``dev`` scores and report accuracy on ``test``.

    Both files must be labelled. Triples with an entity or relation outside the graph cannot be
    scored: they are skipped and counted (``file.skipped_not_in_graph``); accuracies are over
    the scored triples. ``alternative`` holds the accuracies under the other threshold mode.
    """
    if dev.labels is None or test.labels is None:
        raise ValueError("triple classification needs labelled triples")
    if len(dev) == 0 or len(test) == 0:
        empty = dev if len(dev) == 0 else test
        raise KelmError(f"{empty.path}: no labelled triple of the file is in the graph")
    model.eval()
    dev_scores = score_triples(model, dev.heads, dev.rels, dev.tails)
    test_scores = score_triples(model, test.heads, test.rels, test.tails)
    out: dict[str, Any] = {"mode": mode}
    for m in (mode, *[x for x in THRESHOLD_MODES if x != mode]):
        th = fit_thresholds(dev_scores, dev.labels, dev.rels, m)
        res = {
            "dev_accuracy": accuracy(th.predict(dev_scores, dev.rels), dev.labels),
            "test_accuracy": accuracy(th.predict(test_scores, test.rels), test.labels),
            "relations_with_own_threshold": len(th.per_relation),
        }
        if m == mode:
            out.update(res)
            out["thresholds"] = th.to_dict(relation_names)
        else:
            out["alternative"] = {"mode": m, **res}
    out["dev"] = dev.summary()
    out["test"] = test.summary()
    return out
