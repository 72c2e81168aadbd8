"""Building blocks shared by the kelm model families: configs, node embeddings, the base model.

The text encoders themselves (loading, tokenizers, pooling, embeddings) are
:mod:`kelm.modeling.encoders`.

A kelm config keeps the encoder's config as a sub-config (``encoder_config``): a saved kelm model
rebuilds its encoder from that config and its own weights, never reading the original checkpoint
again; ``encoder_name_or_path`` only records where the weights first came from.

Module contents:

* :class:`KelmBaseConfig`, :class:`KelmGraphConfig` - the fields shared by the model configs;
* :class:`NodeEmbedding` - the ``[num_nodes, d]`` node table, initialisable from KG embeddings;
* :class:`KelmPreTrainedModel` - statement encoding, ``from_text_encoder``, weight init.

No ``from __future__ import annotations`` here or in the ``configuration_*`` modules: the
``@strict`` config dataclasses validate field types from the live annotations.
"""

import math
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub.dataclasses import strict
from torch import Tensor, nn
from transformers import AutoConfig, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.configuration_utils import SubConfigSpec

from kelm.errors import KelmError
from kelm.modeling.encoders import (
    MINILM_ARCHITECTURE,
    accepts_token_type_ids,
    build_text_encoder,
    load_text_encoder,
    pool_hidden_states,
    resolve_encoder,
)
from kelm.retrieval.subgraph import NODE_TYPES

Pooling = Literal["cls", "mean"]

NUM_NODE_TYPES = len(NODE_TYPES)
"""Node types of the retrieval subgraphs (question, answer, intermediate, context)."""

IGNORE_INDEX = -100
"""The label of a position or question left out of a loss (PyTorch's cross-entropy default)."""


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


ZERO_INIT = "_kelm_zero_init"
"""Attribute that marks a module whose parameters start at zero (see :func:`zero_init`)."""


def zero_init(module: nn.Module) -> nn.Module:
    """Mark ``module`` to be initialised with zeros by :class:`KelmPreTrainedModel`
    (``post_init``): the last layer of a residual graph contribution, so that contribution
    starts at exactly zero. Weights loaded by ``from_pretrained`` are left alone."""
    setattr(module, ZERO_INIT, True)
    return module


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
        statement_vectors: Tensor | None = None,
    ) -> tuple[Tensor, int]:
        """Encode "question [SEP] choice" statements.

        Args:
            input_ids, attention_mask, token_type_ids: the tokenised statements.
            statement_vectors: the encoder's statement vectors computed before (a frozen
                encoder: :mod:`kelm.engine.frozen`); when given, the encoder does not run.

        Shapes:
            - input_ids, attention_mask, token_type_ids: ``[B, C, L]``
            - statement_vectors: ``[B, C, H]``
            - output: ``([B * C, H], C)``: statement vectors in question-major order and the
              number of choices
        """
        if statement_vectors is not None:
            if statement_vectors.dim() != 3 or statement_vectors.shape[-1] != self.statement_dim:
                raise ValueError(
                    f"statement_vectors must be [batch, choices, {self.statement_dim}], "
                    f"got {list(statement_vectors.shape)}"
                )
            vectors = statement_vectors.to(self.dtype)
            return vectors.reshape(-1, vectors.shape[-1]), vectors.shape[1]
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

    # ------------------------------------------------------------------ frozen encoder
    def frozen_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters a frozen-encoder warm-up freezes (``optim.unfreeze_epoch``): the text
        encoder's."""
        return [(n, p) for n, p in self.named_parameters() if n.startswith("text_encoder.")]

    frozen_feature_kind = "statement_vectors"
    """What :meth:`frozen_features` computes (part of its cache key: models of one kind on one
    encoder share the cached features)."""

    @property
    def frozen_feature_numel(self) -> int:
        """Numbers per statement of :meth:`frozen_features` (a statement vector: ``H``)."""
        return self.statement_dim

    def frozen_features(
        self, input_ids: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor | None
    ) -> Tensor:
        """What the frozen encoder computes for each statement, as the model's
        ``statement_vectors`` input takes it: the pooled statement vector.

        Shapes: ``[N, L]`` -> ``[N, H]``
        """
        vectors, _ = self.encode_statements(
            input_ids.unsqueeze(1),
            attention_mask.unsqueeze(1) if attention_mask is not None else None,
            token_type_ids.unsqueeze(1) if token_type_ids is not None else None,
        )
        return vectors

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
        if getattr(module, ZERO_INIT, False):
            for param in module.parameters(recurse=False):
                init.zeros_(param)
            return
        from torch_geometric.nn import RGCNConv

        if isinstance(module, RGCNConv):
            glorot_(module.weight)
            glorot_(module.comp)
            glorot_(module.root)
            if module.bias is not None:
                init.zeros_(module.bias)
