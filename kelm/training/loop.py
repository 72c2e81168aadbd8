"""The training loop (``kelm train``), written to be read top to bottom.

    result = train(load_train_config("configs/csqa-qagnn.yaml"))

One run:

1. **Setup**: an ``accelerate.Accelerator`` (one or several processes: ``torchrun`` /
   ``accelerate launch``; gloo on CPUs), the run directory, seeds.
2. **Data**: QA file -> training questions and a held-out split (:mod:`kelm.training.data`);
   graph models run ground -> retrieve (cached) and get one subgraph (+ paths) per statement;
   ``ernie`` links each statement's question and choice to graph nodes (entity ids aligned to
   wordpieces).
3. **Model**: the family of ``model.type`` on the text encoder; graph models get a node table
   (``ernie``: an entity table) of the graph's size, initialised from KG embeddings or from
   text embeddings of the node names (cached per graph checksum + encoder).
4. **Optimizer**: AdamW, one learning rate for the text encoder and one for the rest; a
   warm-up + linear/cosine/constant schedule; the encoder frozen for the first
   ``optim.freeze_lm_steps`` steps.
5. **Loop**: per epoch a permutation seeded by ``(seed, epoch)``; per step cross-entropy over
   the choices (with ``distill.teacher``, mixed with the KL divergence to a teacher run's
   choice distribution: :mod:`kelm.training.distillation`); after each epoch evaluation on
   the held-out split and a checkpoint (model, optimizer, scheduler, RNG states).
   ``resume=True`` restarts from the newest checkpoint and reproduces the uninterrupted run
   exactly.
6. **Outputs** (main process): ``model/`` (``save_pretrained`` + tokenizer), ``metrics.json``,
   ``predictions.jsonl``, ``history.json``, ``curves.png``; TensorBoard events in ``tb/``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kelm._io import write_json
from kelm.config import to_dict
from kelm.errors import KelmError
from kelm.training import checkpoint as ckpt
from kelm.training.config import ENTITY_MODELS, TrainConfig, load_train_config
from kelm.training.data import (
    IGNORE_INDEX,
    Collator,
    Example,
    GraphResources,
    build_examples,
    epoch_batches,
    model_inputs,
    move_to,
    read_items,
    split_items,
)
from kelm.training.distillation import (
    choice_distillation_loss,
    teacher_batch,
    teacher_choice_logits,
)
from kelm.training.runtime import (
    check_resume_config,
    check_run_dir,
    hf_progress_bars,
    log_train_step,
    make_accelerator,
    open_run_dir,
    optimizer_step,
    progress_bar,
    restore_checkpoint,
    save_model,
    summary_writer,
    warn_streams_differ,
    write_checkpoint,
    write_history,
)

log = logging.getLogger(__name__)

RESUMABLE_CHANGES = frozenset(
    {"run_dir", "eval_batch_size", "log_every", "threads", "keep_checkpoints", "graph.cache_dir"}
)
"""Config keys that may differ between a run and its ``--resume`` (they do not change the
numbers)."""

RUN_OUTPUTS = (
    "model",
    "checkpoints",
    "tb",
    "metrics.json",
    "predictions.jsonl",
    "history.json",
    "curves.png",
)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: the run directory.
        metrics: the contents of ``metrics.json`` (empty when the run stopped early).
        history: per-step and per-epoch losses and accuracies.
        completed: all ``epochs`` done (``False`` after ``stop_after_epochs``).
        resumed_from: the checkpoint the run continued from, if any.
    """

    run_dir: Path
    metrics: dict[str, Any]
    history: dict[str, Any]
    completed: bool
    resumed_from: Path | None = None


# ---------------------------------------------------------------------------------- model
def _encoder_source(cfg: TrainConfig) -> str:
    from kelm.modeling import default_text_encoder_path

    return str(cfg.model.encoder or default_text_encoder_path())


def _check_local_sources(cfg: TrainConfig) -> None:
    """A ``model.encoder`` / ``model.tokenizer`` that is a local path (a hub id has at most one
    ``/``) must exist: say so, rather than let the hub client reject it as a repository id."""
    for key in ("encoder", "tokenizer"):
        name = getattr(cfg.model, key)
        if not name or Path(name).exists():
            continue
        if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(".gguf"):
            raise KelmError(
                f"config: model.{key} {name!r} does not exist (a pretraining run's output? run "
                "the `kelm pretrain` config named in the training config's comments first)"
            )


def _run_tokenizer(cfg: TrainConfig) -> Any:
    """The run's tokenizer; ``gpt``: the causal LM's, with the GPT-1 transfer tokens added."""
    _check_local_sources(cfg)
    if cfg.model.type == "gpt":
        from kelm.modeling.modeling_gpt import load_gpt_tokenizer

        return load_gpt_tokenizer(cfg.model.tokenizer or cfg.model.encoder)
    from kelm.modeling import load_tokenizer

    return load_tokenizer(cfg.model.tokenizer or _encoder_source(cfg))


def _bad_model_settings(exc: Exception) -> KelmError:
    """The one-line error for a model class that refused the settings: the last line of its
    message (a strict config's validation error runs over several lines)."""
    detail = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
    return KelmError(f"config: bad model settings ({detail})")


def _build_gpt(cfg: TrainConfig, tokenizer: Any) -> nn.Module:
    """The GPT-1-style model on ``model.encoder`` (a causal LM), its embeddings grown to the
    tokenizer's transfer tokens."""
    from huggingface_hub.errors import StrictDataclassError

    from kelm.modeling import KelmGPTForMultipleChoice

    m = cfg.model
    try:
        model = KelmGPTForMultipleChoice.from_causal_lm(
            m.encoder,
            tokenizer=tokenizer,
            lm_loss_weight=m.lm_loss_weight,
            classifier_dropout=m.classifier_dropout,
        )
    except (ValueError, TypeError, StrictDataclassError) as exc:
        raise _bad_model_settings(exc) from None
    window = model.max_positions
    if window is not None and cfg.data.max_length > window:
        raise KelmError(
            f"config: 'data.max_length' ({cfg.data.max_length}) exceeds the causal LM's context "
            f"window ({window} tokens)"
        )
    return model


def _state_digest(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def node_name_embeddings(
    graph: GraphResources,
    encoder: nn.Module | None,
    tokenizer: Any,
    source: str | None = None,
    *,
    progress: bool = False,
) -> torch.Tensor:
    """Text embeddings of the graph's node names, ``[num_nodes, H]`` float32, cached per graph
    checksum and encoder.

    With a local encoder folder (the bundled MiniLM included) these are the mean-pooled,
    L2-normalised sentence embeddings of the node labels that the retrieval's cosine scorer
    computes and caches (:meth:`kelm.retrieval.scoring.CosineScorer.node_embeddings`, in its
    shared cache ``$KELM_CACHE/retrieval``, keyed on graph checksum and model): the graph's
    names are embedded once for ``kelm retrieve`` and every training run. Otherwise
    (a hub name) the in-memory ``encoder`` embeds them (:func:`kelm.modeling.embed_node_names`)
    into ``<cache>/node-emb/``.
    """
    if source is not None and Path(source).is_dir():
        from kelm.retrieval.scoring import CosineScorer, SentenceEncoder

        scorer = CosineScorer(
            graph.index,
            SentenceEncoder(source, device="cpu"),
            cache_dir=None,  # the scorer's shared cache: reused across runs and `kelm retrieve`
            progress=progress,
        )
        return torch.from_numpy(np.asarray(scorer.node_embeddings(), dtype=np.float32))

    from safetensors.torch import load_file, save_file

    from kelm.modeling import embed_node_names, load_text_encoder

    if encoder is None:
        encoder = load_text_encoder(source)
    key = f"{graph.index.checksum[:16]}-{_state_digest(encoder)[:16]}"
    path = graph.cache / "node-emb" / f"{key}.safetensors"
    if path.is_file():
        try:
            vectors = load_file(str(path))["names"]
            if vectors.shape[0] == graph.index.num_nodes:
                return vectors
        except Exception:  # a damaged cache entry is recomputed
            log.warning("%s: unreadable node embedding cache, recomputing", path)
    log.info("embedding %d node names", graph.index.num_nodes)
    names = graph.index.names.to_list()
    # Batches of similar lengths pad little: embed in length order, then put rows back.
    order = sorted(range(len(names)), key=lambda i: (len(names[i]), i))
    sorted_vectors = embed_node_names(
        [names[i] for i in order], encoder, tokenizer, batch_size=128, max_length=16
    )
    vectors = torch.empty_like(sorted_vectors)
    vectors[torch.tensor(order, dtype=torch.long)] = sorted_vectors
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    save_file({"names": vectors.contiguous()}, str(tmp))
    tmp.replace(path)
    return vectors


def build_model(
    cfg: TrainConfig, tokenizer: Any, graph: GraphResources | None, *, progress: bool = False
) -> nn.Module:
    """A new model of ``cfg.model.type`` on the pretrained text encoder; graph models get the
    graph's node table initialised per ``cfg.model.node_init``.

    Raises:
        KelmError: bad model settings, unloadable encoder or KG embeddings.
    """
    import kelm.modeling as km

    m = cfg.model
    common: dict[str, Any] = {"pooling": m.pooling, "classifier_dropout": m.classifier_dropout}
    source = _encoder_source(cfg)
    if m.type == "lm":
        try:
            return km.KelmLMForMultipleChoice.from_text_encoder(source, **common)
        except (ValueError, TypeError) as exc:
            raise KelmError(f"config: bad model settings ({exc})") from None
    if m.type == "gpt":
        return _build_gpt(cfg, tokenizer)
    assert graph is not None
    index = graph.index
    kge = None
    init = m.node_init
    if init == "auto":
        init = "kge" if m.kge_dir else "names"
    if init == "kge":
        from kelm.kge import load_embeddings

        kge = load_embeddings(m.kge_dir, index)  # type: ignore[arg-type]
        node_dim = int(kge.entity.shape[1])
    elif init == "names":
        from transformers import AutoConfig

        node_dim = int(AutoConfig.from_pretrained(source).hidden_size)
    else:
        node_dim = m.node_dim
    if m.type in ENTITY_MODELS:
        return _build_ernie(cfg, source, common, graph, kge, init, node_dim, tokenizer, progress)
    kwargs: dict[str, Any] = {
        **common,
        "num_nodes": index.num_nodes,
        "num_relations": index.num_relations,
        "node_dim": node_dim,
        "graph_checksum": index.checksum,
        "gnn_dim": m.gnn_dim,
        "gnn_dropout": m.gnn_dropout,
        "fc_dim": m.fc_dim,
        "freeze_node_embeddings": m.freeze_node_embeddings,
    }
    if m.gnn_layers is not None:
        kwargs["gnn_layers"] = m.gnn_layers
    if m.type == "kagnet":
        cls: Any = km.KagnetForMultipleChoice
        relation_dim = m.relation_dim or (int(kge.relation.shape[1]) if kge is not None else 100)
        kwargs.update(relation_dim=relation_dim, path_dim=m.path_dim, max_hops=cfg.graph.hops)
    else:
        cls = km.QAGNNForMultipleChoice
        kwargs.update(gnn_heads=m.gnn_heads, pool_heads=m.pool_heads)
    try:
        model = cls.from_text_encoder(source, **kwargs)
    except (ValueError, TypeError) as exc:
        raise KelmError(f"config: bad model settings ({exc})") from None
    if init == "kge":
        model.init_node_embeddings(kge.entity, freeze=m.freeze_node_embeddings)
        if m.type == "kagnet" and kge.relation.shape[1] == model.config.relation_dim:
            model.init_relation_embeddings(kge.relation, freeze=m.freeze_node_embeddings)
    elif init == "names":
        vectors = node_name_embeddings(
            graph, model.text_encoder, tokenizer, source, progress=progress
        )
        model.init_node_embeddings(vectors, freeze=m.freeze_node_embeddings)
    return model


def _build_ernie(
    cfg: TrainConfig,
    source: str,
    common: dict[str, Any],
    graph: GraphResources,
    kge: Any,
    init: str,
    entity_dim: int,
    tokenizer: Any,
    progress: bool,
) -> nn.Module:
    """The ERNIE multiple-choice model with an entity table of the graph's size, initialised
    per ``init`` (``kge``, ``names`` or ``random``)."""
    from huggingface_hub.errors import StrictDataclassError

    import kelm.modeling as km

    m = cfg.model
    try:
        model = km.KelmErnieForMultipleChoice.from_text_encoder(
            source,
            **common,
            num_entities=graph.index.num_nodes,
            entity_dim=entity_dim,
            entity_hidden_size=m.entity_hidden_size,
            entity_attention_heads=m.entity_heads,
            num_knowledge_layers=m.knowledge_layers,
            graph_checksum=graph.index.checksum,
            freeze_entity_embeddings=m.freeze_node_embeddings,
        )
    except (ValueError, TypeError, StrictDataclassError) as exc:
        raise _bad_model_settings(exc) from None
    if init == "kge":
        model.init_entity_embeddings(kge.entity, freeze=m.freeze_node_embeddings)
    elif init == "names":
        vectors = node_name_embeddings(
            graph, model.text_encoder, tokenizer, source, progress=progress
        )
        model.init_entity_embeddings(vectors, freeze=m.freeze_node_embeddings)
    return model


def set_lm_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze the text encoder (``model.text_encoder``)."""
    for p in model.text_encoder.parameters():
        p.requires_grad_(trainable)


# ---------------------------------------------------------------------------------- optim
def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with four groups: encoder / rest x decay / no decay (biases, norms, 1-d).

    Frozen non-encoder parameters (a frozen node table) are left out; the encoder is always
    in (it may only be frozen for the first steps).
    """
    o = cfg.optim
    groups: dict[str, list[nn.Parameter]] = {
        "lm": [],
        "lm_no_decay": [],
        "gnn": [],
        "gnn_no_decay": [],
    }
    for name, p in model.named_parameters():
        lm = name.startswith("text_encoder.")
        if not lm and not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "norm" in name.lower()
        groups[("lm" if lm else "gnn") + ("_no_decay" if no_decay else "")].append(p)
    param_groups = [
        {
            "params": params,
            "lr": o.lm_lr if name.startswith("lm") else o.gnn_lr,
            "weight_decay": 0.0 if name.endswith("no_decay") else o.weight_decay,
            "name": name,
        }
        for name, params in groups.items()
        if params
    ]
    return torch.optim.AdamW(param_groups, betas=(o.betas[0], o.betas[1]), eps=o.eps)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``optim.warmup_steps``, then linear decay to 0, cosine decay, or
    constant, over ``total_steps``."""
    warmup, schedule = cfg.optim.warmup_steps, cfg.optim.schedule
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(1.0 - progress, 0.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------------------------- run dir
def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_resume_config(cfg: TrainConfig, run_dir: Path) -> None:
    """The config must match the run's saved one, except :data:`RESUMABLE_CHANGES`."""
    check_resume_config(
        run_dir,
        _flat(to_dict(cfg)),
        lambda saved_file: _flat(to_dict(load_train_config(saved_file))),
        RESUMABLE_CHANGES,
    )


def prepare_run_dir(cfg: TrainConfig, *, resume: bool, overwrite: bool) -> Path | None:
    """Check the run directory for this start mode; returns the checkpoint to resume from.

    Raises:
        KelmError: ``resume`` without checkpoint or with another config; an existing run
            without ``resume`` or ``overwrite``.
    """
    return check_run_dir(
        Path(cfg.run_dir),
        resume=resume,
        overwrite=overwrite,
        outputs=RUN_OUTPUTS,
        check_config=lambda run_dir: _check_resume_config(cfg, run_dir),
    )


# ---------------------------------------------------------------------------------- data
@dataclass
class RunData:
    """The tokenised (and graph-attached) training and evaluation questions."""

    train: list[Example]
    eval: list[Example]
    counts: dict[str, int]
    graph: GraphResources | None
    train_items: list[Any]


def load_data(
    cfg: TrainConfig, tokenizer: Any, accelerator: Any, *, progress: bool = False
) -> RunData:
    """Read, split, ground/retrieve (graph models; the main process first, so the others
    find the cache) and tokenise the run's questions."""
    d = cfg.data
    items = read_items(d.train, need_answers=True)
    if d.eval:
        train_items, _ = split_items(items, 0.0, d.split_seed, d.max_train)
        eval_items = read_items(d.eval, need_answers=False)
    else:
        train_items, eval_items = split_items(items, d.holdout, d.split_seed, d.max_train)
    if d.max_eval is not None:
        eval_items = eval_items[: d.max_eval]
    graph = train_store = eval_store = None
    if cfg.uses_graph:
        with accelerator.main_process_first():
            graph = GraphResources.open(cfg.graph, progress=progress)
            if d.eval:
                train_store = graph.store_for(train_items, cfg.graph, progress=progress)
                if eval_items:
                    eval_store = graph.store_for(eval_items, cfg.graph, progress=progress)
            else:
                train_store = eval_store = graph.store_for(
                    train_items + eval_items, cfg.graph, progress=progress
                )
    train_mentions = eval_mentions = None
    if cfg.model.type in ENTITY_MODELS:
        with accelerator.main_process_first():  # the main process builds the linker index
            graph = GraphResources.open(cfg.graph, progress=progress)
            train_mentions = graph.link_entities(train_items, cfg.graph, progress=progress)
            eval_mentions = graph.link_entities(eval_items, cfg.graph, progress=progress)
    with_paths = cfg.model.type == "kagnet"
    train, c1 = build_examples(
        train_items,
        tokenizer,
        d.max_length,
        store=train_store,
        with_paths=with_paths,
        mentions=train_mentions,
    )
    evaluation, c2 = build_examples(
        eval_items,
        tokenizer,
        d.max_length,
        store=eval_store,
        with_paths=with_paths,
        mentions=eval_mentions,
    )
    counts = {
        "train_questions": len(train),
        "eval_questions": len(evaluation),
        **{f"train_{k}": v for k, v in c1.items()},
        **{f"eval_{k}": v for k, v in c2.items()},
    }
    return RunData(train, evaluation, counts, graph, train_items)


# ---------------------------------------------------------------------------------- train
def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stop_after_epochs: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or continue training) a multiple-choice model; see the module docstring.

    Args:
        cfg: the run's config (:func:`~kelm.training.config.load_train_config`).
        resume: continue from the newest checkpoint of ``cfg.run_dir``.
        overwrite: delete an existing run in ``cfg.run_dir`` first.
        stop_after_epochs: stop (after checkpointing) once this many epochs have run in this
            call; ``--resume`` continues.
        progress: progress bars (main process).

    Raises:
        KelmError: bad config, data, graph or checkpoint; an existing run directory.
    """
    with hf_progress_bars(progress):
        return _train(
            cfg,
            resume=resume,
            overwrite=overwrite,
            stop_after_epochs=stop_after_epochs,
            progress=progress,
        )


def _train(
    cfg: TrainConfig,
    *,
    resume: bool,
    overwrite: bool,
    stop_after_epochs: int | None,
    progress: bool,
) -> TrainResult:
    from accelerate.utils import set_seed

    from kelm.evaluation.qa import predict_logits, score, write_predictions

    cfg.validate()
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise KelmError("--stop-after-epochs must be at least 1")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    # ---- 1. setup: processes, run directory, seeds
    accelerator = make_accelerator(cpu=cfg.cpu, mixed_precision=cfg.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    main = accelerator.is_main_process
    run_dir = Path(cfg.run_dir)
    resume_from = prepare_run_dir(cfg, resume=resume, overwrite=overwrite)
    open_run_dir(accelerator, cfg, resume_from, overwrite=overwrite, outputs=RUN_OUTPUTS)
    set_seed(cfg.seed)
    show = progress and main

    # ---- 2. data
    tokenizer = _run_tokenizer(cfg)
    data = load_data(cfg, tokenizer, accelerator, progress=show)
    if not data.train:
        raise KelmError(f"{cfg.data.train}: no training questions")
    collator = Collator(tokenizer.pad_token_id or 0, cfg.graph.hops, cfg.model.max_paths)
    # Task distillation: the teacher run scores the training questions once (soft targets).
    soft_targets = None
    if cfg.distill.teacher:
        soft_targets = teacher_choice_logits(
            cfg.distill.teacher,
            data.train_items,
            device=accelerator.device,
            batch_size=cfg.eval_batch_size,
            progress=show,
        )
    alpha = cfg.distill.alpha if soft_targets is not None else 0.0

    # ---- 3. model (identical on every process: same seed)
    set_seed(cfg.seed)
    with accelerator.main_process_first():  # the main process fills the node-name cache
        model = build_model(cfg, tokenizer, data.graph, progress=show)
    model_type = cfg.model.type

    # ---- 4. optimizer and schedule
    batches_per_epoch = len(
        epoch_batches(len(data.train), cfg.batch_size, cfg.seed, 0, rank, world)
    )
    total_steps = cfg.epochs * batches_per_epoch
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, total_steps)

    # ---- resume: model, optimizer, scheduler, history (RNG states at the very end)
    history: dict[str, Any] = {"steps": [], "epochs": []}
    start_epoch, global_step, rng = 0, 0, None
    if resume_from is not None:
        state = restore_checkpoint(resume_from, rank, model, optimizer, scheduler)
        start_epoch = int(state.trainer_state["epoch"])
        global_step = int(state.trainer_state["global_step"])
        history = state.trainer_state["history"]
        rng = state.rng
        if rng is None or int(state.trainer_state.get("world_size", 1)) != world:
            warn_streams_differ(resume_from, state.trainer_state.get("world_size"), world)

    # The encoder must require grad when DDP wraps the model (it registers those parameters
    # only); freezing afterwards makes them "unused" in DDP's eyes for the frozen steps.
    set_lm_trainable(model, True)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    lm_frozen: bool | None = None
    if rng is not None:
        ckpt.set_rng_state(rng["tensors"], rng["meta"])
    elif resume_from is not None:
        set_seed(cfg.seed + 1000 * start_epoch + rank)

    writer = summary_writer(run_dir, global_step if resume_from else None) if main else None
    if main:
        log.info(
            "training %s on %d questions (%d held out), %d steps/epoch x %d epochs, %d process(es)",
            model_type,
            len(data.train),
            len(data.eval),
            batches_per_epoch,
            cfg.epochs,
            world,
        )

    # ---- 5. the loop
    eval_logits: list[np.ndarray] | None = None
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        batches = epoch_batches(len(data.train), cfg.batch_size, cfg.seed, epoch, rank, world)
        t0, statements = time.perf_counter(), 0
        loss_sum = torch.zeros(3, dtype=torch.float64)  # [sum of losses, correct, questions]
        bar = progress_bar(len(batches), f"epoch {epoch + 1}/{cfg.epochs}", show)
        for idx in batches:
            frozen = global_step < cfg.optim.freeze_lm_steps
            if frozen != lm_frozen:
                set_lm_trainable(unwrapped, not frozen)
                lm_frozen = frozen
            batch = move_to(collator([data.train[i] for i in idx]), accelerator.device)
            output = model(**model_inputs(batch, model_type))
            logits = output.logits.float()  # [B, C]
            logits = logits.masked_fill(~batch["choice_mask"], float("-inf"))  # [B, C]
            labels = batch["labels"]  # [B]
            loss = nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)  # []
            objective = loss if alpha == 0 else (1.0 - alpha) * loss
            step_logs: dict[str, float] = {}
            if soft_targets is not None:
                teacher = teacher_batch(soft_targets, idx, logits.shape[1], logits.device)
                kd = choice_distillation_loss(
                    output.logits, teacher, batch["choice_mask"], cfg.distill.temperature
                )  # []
                objective = objective + alpha * kd
                step_logs["distill_loss"] = float(accelerator.reduce(kd.detach(), "mean"))
            # gpt: the weighted auxiliary LM loss joins the gradient; logs keep the choice loss.
            aux = getattr(output, "aux_loss", None)
            accelerator.backward(objective if aux is None else objective + aux)
            lrs = optimizer_step(accelerator, model, optimizer, scheduler, cfg.optim.max_grad_norm)
            global_step += 1

            # Logging: the step's loss averaged over processes.
            correct = (logits.argmax(-1) == labels).sum()
            count = torch.tensor(float(len(idx)), dtype=torch.float64, device=loss.device)
            stats = torch.stack([loss.detach().double() * count, correct.double(), count])  # [3]
            stats = accelerator.reduce(stats, "sum").cpu()  # [3] summed over processes
            loss_sum += stats
            statements += int(batch["choice_mask"].sum()) * world
            step_loss = float(stats[0] / stats[2])
            history["steps"].append(
                {
                    "step": global_step,
                    "epoch": epoch + 1,
                    "loss": step_loss,
                    "lr_lm": lrs.get("lm", lrs.get("lm_no_decay", 0.0)),
                    "lr_gnn": lrs.get("gnn", lrs.get("gnn_no_decay", 0.0)),
                    "lm_frozen": frozen,
                    **step_logs,
                }
            )
            log_train_step(
                writer, {"loss": step_loss, **step_logs}, lrs, global_step, cfg.log_every
            )
            bar.set_postfix(loss=f"{step_loss:.4f}")
            bar.update(1)
        bar.close()
        train_seconds = time.perf_counter() - t0

        # ---- end of epoch: evaluate, record, checkpoint
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": global_step,
            "train_loss": float(loss_sum[0] / loss_sum[2]),
            "train_accuracy": float(loss_sum[1] / loss_sum[2]),
            "train_seconds": round(train_seconds, 3),
            "train_statements_per_second": round(statements / max(train_seconds, 1e-9), 2),
        }
        last = epoch + 1 == cfg.epochs
        eval_logits = None
        if data.eval and (cfg.eval_every_epoch or last):
            t1 = time.perf_counter()
            eval_logits = predict_logits(
                unwrapped,
                data.eval,
                collator,
                model_type,
                batch_size=cfg.eval_batch_size,
                device=accelerator.device,
                accelerator=accelerator,
                progress=show,
            )
            m = score(data.eval, eval_logits)
            record["eval_loss"] = m.get("loss")
            record["eval_accuracy"] = m.get("accuracy")
            eval_seconds = time.perf_counter() - t1
            record["eval_seconds"] = round(eval_seconds, 3)
            eval_statements = sum(e.num_choices for e in data.eval)
            record["eval_statements_per_second"] = round(
                eval_statements / max(eval_seconds, 1e-9), 2
            )
        history["epochs"].append(record)
        if writer is not None:
            for key in ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy"):
                if record.get(key) is not None:
                    group, name = key.split("_", 1)
                    writer.add_scalar(f"{group}/epoch_{name}", record[key], epoch + 1)
            writer.flush()
        if show:
            acc_text = (
                f", eval accuracy {record['eval_accuracy']:.4f}"
                if record.get("eval_accuracy") is not None
                else ""
            )
            print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}{acc_text}")
        write_checkpoint(
            accelerator,
            cfg.run_dir,
            epoch + 1,
            model=unwrapped,
            optimizer=optimizer,
            scheduler=scheduler,
            trainer_state={
                "epoch": epoch + 1,
                "global_step": global_step,
                "history": history,
                "world_size": world,
                "seed": cfg.seed,
            },
            keep=cfg.keep_checkpoints,
        )
        ran = epoch + 1 - start_epoch
        if stop_after_epochs is not None and ran >= stop_after_epochs and not last:
            break

    completed = len(history["epochs"]) >= cfg.epochs
    if writer is not None:
        writer.close()
    metrics: dict[str, Any] = {}
    if completed:
        if data.eval and eval_logits is None:  # resumed a finished run: evaluate again
            eval_logits = predict_logits(
                unwrapped,
                data.eval,
                collator,
                model_type,
                batch_size=cfg.eval_batch_size,
                device=accelerator.device,
                accelerator=accelerator,
            )
        metrics = _final_metrics(cfg, history, data, eval_logits, score)
    # ---- 6. outputs
    if main:
        write_history(run_dir, history)
        if completed:
            save_model(unwrapped, tokenizer, run_dir / "model")
            if eval_logits is not None:
                write_predictions(run_dir / "predictions.jsonl", data.eval, eval_logits)
            write_json(run_dir / "metrics.json", metrics)
    accelerator.wait_for_everyone()
    return TrainResult(run_dir, metrics, history, completed, resume_from)


def _final_metrics(
    cfg: TrainConfig,
    history: dict[str, Any],
    data: RunData,
    eval_logits: list[np.ndarray] | None,
    score: Any,
) -> dict[str, Any]:
    last = history["epochs"][-1]
    metrics: dict[str, Any] = {"model": cfg.model.type, "seed": cfg.seed}
    if eval_logits is not None:
        metrics.update(score(data.eval, eval_logits))
    else:
        metrics.update({"n": 0, "n_labelled": 0})
    metrics.update(
        {
            "epochs": len(history["epochs"]),
            "steps": last["step"],
            "train_loss": last["train_loss"],
            "train_accuracy": last["train_accuracy"],
            "train_statements_per_second": last.get("train_statements_per_second"),
            "eval_statements_per_second": last.get("eval_statements_per_second"),
            "data": data.counts,
            "history": [
                {k: v for k, v in e.items() if not k.endswith(("seconds", "per_second"))}
                for e in history["epochs"]
            ],
        }
    )
    return metrics


__all__ = [
    "RESUMABLE_CHANGES",
    "TrainResult",
    "build_model",
    "hf_progress_bars",
    "make_optimizer",
    "make_scheduler",
    "node_name_embeddings",
    "prepare_run_dir",
    "save_model",
    "set_lm_trainable",
    "train",
]
