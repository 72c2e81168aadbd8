"""Training KG embeddings (TransE, DistMult, ComplEx, RotatE from ``torch_geometric.nn.kge``).

The loop is deliberately plain: shuffle the graph's forward edges, cut them into batches, let the
PyG model's own ``loss`` corrupt each positive triple (head or tail replaced by a uniformly
random entity) and score positives against negatives, step the optimiser. ``negatives`` > 1
repeats the batch so that every positive meets that many corruptions.

The embedding tables are sparse (``sparse=True``): a step touches only the rows of the batch, and
``torch.optim.SparseAdam`` updates only those (dense Adam over 78k x D rows per step is ten times
slower on a CPU). SparseAdam has no weight decay, so the optional L2 penalty ``reg`` is added
to the loss on the embeddings the batch uses (the usual N2 regulariser of DistMult/ComplEx).

Shapes in the comments: ``E`` edges, ``B`` batch, ``k`` negatives per positive, ``N`` entities,
``R`` forward relations, ``D`` the embedding dim.

Runs are reproducible on the CPU for a given seed and thread count: torch, numpy and Python's
``random`` are seeded, and nothing else draws random numbers.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from kelm.errors import KelmError
from kelm.kge.models import MODEL_DEFAULTS, MODELS, make_model

if TYPE_CHECKING:
    from kelm.graph.index import GraphIndex


RANGES: dict[str, tuple[int, int | None]] = {
    "dim": (1, 65_536),
    "epochs": (0, 1_000_000),
    "batch_size": (1, None),  # larger than the graph: one batch of every edge
    "negatives": (1, 10_000),
    "seed": (0, 2**32 - 1),  # numpy's seeding takes no more
    "threads": (1, 1024),
}
"""The integer settings' ranges (``None``: unbounded): past them torch fails on the sizes
(an overflow, or an allocation no machine has), not with a message."""


@dataclass
class KGEConfig:
    """What to train. ``None`` fields take the model's default (see :meth:`resolved`).

    Args:
        model: ``transe``, ``distmult``, ``complex`` or ``rotate``.
        dim: embedding size (``hidden_channels`` of the PyG model; ComplEx and RotatE have a
            real and an imaginary part of this size each).
        epochs: passes over the graph's edges.
        batch_size: positive triples per step.
        negatives: corrupted triples per positive.
        lr: SparseAdam learning rate.
        margin: TransE/DistMult ranking-loss margin; RotatE's score offset (unused by ComplEx).
        p_norm: TransE's norm (1 or 2).
        reg: L2 penalty on the entity and relation vectors of each batch's positive triples
            (mean over the batch of their summed squared norms), added to the loss.
        seed: seeds torch, numpy and ``random``.
        threads: torch CPU threads (``None``: leave torch's setting alone).
    """

    model: str = "distmult"
    dim: int = 100
    epochs: int = 30
    batch_size: int = 1000
    negatives: int = 5
    lr: float | None = None
    margin: float | None = None
    p_norm: float = 1.0
    reg: float | None = None
    seed: int = 0
    threads: int | None = None

    def validate(self) -> KGEConfig:
        """Check every setting's range (:data:`RANGES`; ``lr`` finite and positive, ``margin``
        and ``reg`` finite and not negative: a negative penalty rewards large vectors).

        Raises:
            KelmError: the first setting out of range, named as its flag.
        """
        if self.model not in MODELS:
            raise KelmError(f"unknown --model {self.model!r}; choose one of {', '.join(MODELS)}")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if value is None:
                continue
            flag = f"--{name.replace('_', '-')}"
            if high is None and value < low:
                raise KelmError(f"{flag} must be at least {low}, not {value}")
            if high is not None and not low <= value <= high:
                raise KelmError(f"{flag} must be between {low} and {high:,}, not {value}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise KelmError(f"--lr must be a positive finite number, not {self.lr}")
        for name in ("margin", "reg"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise KelmError(f"--{name} must be a finite number >= 0, not {value}")
        if self.p_norm not in (1.0, 2.0):
            raise KelmError(f"--p-norm must be 1 or 2, not {self.p_norm}")
        return self

    def resolved(self) -> KGEConfig:
        """A copy with the model's defaults filled in for unset fields."""
        self.validate()
        defaults = MODEL_DEFAULTS[self.model]
        return dataclasses.replace(
            self, **{k: v for k, v in defaults.items() if getattr(self, k) is None}
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def l2_penalty(model: KGEModel, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
    """Mean over the batch of the squared norms of every vector a triple uses (scalar)."""
    tables = [(model.node_emb, h), (model.node_emb, t), (model.rel_emb, r)]
    for name, ids in (("node_emb_im", h), ("node_emb_im", t), ("rel_emb_im", r)):
        if hasattr(model, name):
            tables.append((getattr(model, name), ids))
    return sum(table(ids).pow(2).sum(dim=-1).mean() for table, ids in tables)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and any GPU), numpy's global generator and ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    model: KGEModel
    config: KGEConfig
    losses: list[float]
    seconds: float


def train_kge(
    heads: np.ndarray,
    rels: np.ndarray,
    tails: np.ndarray,
    num_nodes: int,
    num_relations: int,
    config: KGEConfig,
    progress: bool | None = True,
    on_epoch: Callable[[int, KGEModel, float], bool | None] | None = None,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train a KGE model on the triples ``(heads[i], rels[i], tails[i])``.

    Args:
        heads, rels, tails: ``[E]`` node and forward-relation ids.
        num_nodes, num_relations: sizes of the embedding tables.
        config: model and optimisation settings (defaults resolved here).
        progress: a tqdm bar per epoch (``True``: shown on a terminal only; ``False``: never).
        on_epoch: called after each epoch with ``(epoch, model, mean loss)`` (epochs count from
            1); returning ``True`` stops training there. The model is in train mode again after.
        device: where the steps run (``cuda``: seconds for CN-100K, where CPU cores take
            minutes); the edge order is drawn on the CPU either way, the negatives on
            ``device``, so devices differ in their numbers (as thread counts do).

    Returns:
        The trained model (in eval mode, on the CPU), the resolved config and the mean loss of
        each epoch.
    """
    from tqdm.auto import tqdm

    cfg = config.resolved()
    seed_everything(cfg.seed)
    h = torch.as_tensor(np.asarray(heads), dtype=torch.long).to(device)  # [E]
    r = torch.as_tensor(np.asarray(rels), dtype=torch.long).to(device)  # [E]
    t = torch.as_tensor(np.asarray(tails), dtype=torch.long).to(device)  # [E]
    num_edges = h.numel()
    if num_edges == 0:
        raise KelmError("the graph has no edges to train embeddings on")

    model = make_model(
        cfg.model, num_nodes, num_relations, cfg.dim, cfg.margin, cfg.p_norm, sparse=True
    ).to(device)
    optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=cfg.lr)
    k = cfg.negatives
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    bar = tqdm(
        range(cfg.epochs),
        desc=f"{cfg.model} d={cfg.dim}",
        unit="epoch",
        disable=None if progress else True,
        leave=False,
    )
    try:
        for epoch in bar:
            perm = torch.randperm(num_edges).to(device)  # [E] a fresh order every epoch
            total = 0.0
            for i in range(0, num_edges, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]  # [B]
                # k copies of the batch: model.loss corrupts the head of each triple in the
                # first half of its input and the tail in the second half, so every positive
                # meets k random negatives, about half of them with a corrupted head.
                hb, rb, tb = h[idx].repeat(k), r[idx].repeat(k), t[idx].repeat(k)  # [B*k]
                loss = model.loss(hb, rb, tb)  # scalar: mean over the B*k (pos, neg) pairs
                if cfg.reg:
                    loss = loss + cfg.reg * l2_penalty(model, h[idx], r[idx], t[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * idx.numel()
            epoch_loss = total / num_edges
            if not math.isfinite(epoch_loss):
                raise KelmError(
                    f"training diverged (loss {epoch_loss}) at epoch {epoch + 1}; lower --lr"
                )
            losses.append(epoch_loss)
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
            if on_epoch is not None:
                stop = on_epoch(epoch + 1, model, epoch_loss)
                model.train()
                if stop:
                    break
    finally:
        bar.close()
    # The epoch loss is measured before each step's update: the last update can still blow the
    # vectors up (an --lr of 1e308), and non-finite embeddings must not be saved.
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise KelmError(
            f"training diverged (the embeddings are not finite after epoch {len(losses)}); "
            "lower --lr"
        )
    model.cpu().eval()
    return TrainResult(model, cfg, losses, time.perf_counter() - start)


# ------------------------------------------------------------------------------ end to end
@dataclass
class EmbedReport:
    """What ``embed_kg`` did: the published directory, its manifest, metrics and timings."""

    out: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    losses: list[float]
    train_seconds: float
    eval_seconds: float


def embed_kg(
    graph: str | Path | GraphIndex,
    out: str | Path,
    config: KGEConfig | None = None,
    *,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    fmt: str = "cn100k",
    classify_dev: str | Path | None = None,
    classify_test: str | Path | None = None,
    threshold: str = "relation",
    progress: bool | None = True,
    eval_batch_size: int = 256,
    on_epoch: Callable[[int, KGEModel, float], bool | None] | None = None,
    device: str = "cpu",
) -> EmbedReport:
    """Train embeddings on a graph index, evaluate them, and publish them in ``out``.

    Args:
        graph: the graph index (directory or loaded) whose forward edges are the training set.
        out: embeddings directory to create or replace (written atomically).
        config: model and training settings.
        valid, test: held-out triples for filtered link prediction (``fmt`` format). Triples
            whose head, tail or relation is not in the graph are skipped and counted. Every
            known triple (graph, valid, test) is filtered from the rankings.
        fmt: ``cn100k`` (relation, head, tail[, label]) or ``tsv`` (head, relation, tail).
        classify_dev, classify_test: labelled files (fourth column 1/0, as CN-100K
            ``dev1.txt``/``dev2.txt``) for triple classification: thresholds fitted on
            ``classify_dev``, accuracy reported on ``classify_test``.
        threshold: ``relation`` (per-relation thresholds, the global one for relations with
            fewer than 10 labelled dev triples or a single label) or ``global``.
        progress: progress bars (``True``: on a terminal only).
        on_epoch: per-epoch callback, as in :func:`train_kge`.
        device: where training runs (:func:`train_kge`; evaluation stays on the CPU).

    Raises:
        KelmError: bad settings, unreadable files, a held-out file with no triple in the graph,
            or a diverging run.
    """
    from kelm._io import check_output_dir
    from kelm.graph.index import GraphIndex
    from kelm.kge.evaluate import (
        THRESHOLD_MODES,
        TRIPLE_FORMATS,
        KnownTriples,
        link_prediction,
        read_triples,
        triple_classification,
    )
    from kelm.kge.store import save_embeddings

    check_output_dir(out)  # before the training, which may take hours
    cfg = (config or KGEConfig()).resolved()
    if fmt not in TRIPLE_FORMATS:
        raise KelmError(f"unknown --format {fmt!r}; choose one of {', '.join(TRIPLE_FORMATS)}")
    if threshold not in THRESHOLD_MODES:
        raise KelmError(
            f"unknown --threshold {threshold!r}; choose one of {', '.join(THRESHOLD_MODES)}"
        )
    if (classify_dev is None) != (classify_test is None):
        raise KelmError(
            "--classify-dev and --classify-test go together (thresholds are fitted "
            "on the first, accuracy is reported on the second)"
        )
    index = graph if isinstance(graph, GraphIndex) else GraphIndex.load(graph)
    out = Path(out)

    # Read every held-out file before training, so that a bad file fails fast.
    held = {
        name: read_triples(p, index, fmt)
        for name, p in (("valid", valid), ("test", test))
        if p is not None
    }
    for name, triples in held.items():
        if len(triples) == 0:
            raise KelmError(
                f"{triples.path}: none of its {triples.total} triples is in the "
                f"graph {index.path} (--{name})"
            )
    labelled = {}
    if classify_dev is not None and classify_test is not None:
        labelled = {
            "dev": read_triples(classify_dev, index, fmt, labelled=True),
            "test": read_triples(classify_test, index, fmt, labelled=True),
        }

    previous_threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        heads, rels, tails, _ = index.edges()
        result = train_kge(
            heads,
            rels,
            tails,
            index.num_nodes,
            index.num_relations,
            cfg,
            progress=progress,
            on_epoch=on_epoch,
            device=device,
        )
        start = time.perf_counter()
        metrics: dict[str, Any] = {}
        if held:
            known = KnownTriples.from_parts(
                [(heads, rels, tails)] + [(x.heads, x.rels, x.tails) for x in held.values()],
                index.num_relations,
            )
            for name, triples in held.items():
                metrics[name] = link_prediction(result.model, triples, known, eval_batch_size)
        if labelled:
            metrics["classification"] = triple_classification(
                result.model,
                labelled["dev"],
                labelled["test"],
                threshold,
                index.relations[: index.num_relations],
            )
        eval_seconds = time.perf_counter() - start
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)

    manifest = {
        "graph": {
            "path": str(index.path),
            "checksum": index.checksum,
            "nodes": index.num_nodes,
            "edges": index.num_edges,
            "relations": index.relations[: index.num_relations],
        },
        "model": cfg.model,
        "dim": cfg.dim,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "options": {
            **cfg.to_dict(),
            "threads": threads,
            "device": str(device),
            "format": fmt,
            "threshold": threshold,
            "valid": str(valid) if valid else None,
            "test": str(test) if test else None,
            "classify_dev": str(classify_dev) if classify_dev else None,
            "classify_test": str(classify_test) if classify_test else None,
        },
        "metrics": metrics,
        "losses": result.losses,
        "train_seconds": round(result.seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
    }
    save_embeddings(out, result.model, manifest)
    return EmbedReport(out, manifest, metrics, result.losses, result.seconds, eval_seconds)
