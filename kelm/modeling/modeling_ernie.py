"""ERNIE-style knowledgeable encoder (Zhang et al. 2019, "ERNIE: Enhanced Language
Representation with Informative Entities") on a BERT-family backbone, and its heads.

The backbone's ``N`` layers are split in two:

* **T-Encoder**: the backbone's embeddings and its lower ``N - M`` layers, unchanged.
* **K-Encoder**: the top ``M = config.num_knowledge_layers`` layers. Each runs

  1. the backbone layer's own token self-attention sub-layer (its weights, residual, LayerNorm):
     ``w~``;
  2. a new multi-head self-attention over the entity states of the sequence (only the
     positions that carry an entity take part), with residual and LayerNorm: ``e~``;
  3. the information fusion, with the backbone layer's feed-forward weights as the token side:
     ``h_j = act(W_t w~_j + W_e e~_j + b)`` where token ``j`` has an aligned entity, else
     ``h_j = act(W_t w~_j + b)`` (``W_t``, ``b``, ``act``: the layer's ``intermediate``
     module, so ``h`` is ``intermediate_size`` wide and the pretrained FFN is kept);
  4. token output: the backbone layer's ``output`` module (``W_t' h_j + b_t'``, dropout,
     residual with ``w~_j``, LayerNorm); the pretrained FFN has no activation there, so none
     is added;
  5. entity output (aligned positions only): ``LayerNorm(e~_j + dropout(GELU(W_e' h_j + b_e')))``.

  A sequence without entities passes the K-Encoder exactly as the plain backbone layers.

Entities: ``entity_ids [B, L]`` holds the KG node id aligned to each wordpiece (on the *first*
wordpiece of a mention), ``-1`` elsewhere. The entity table ``[num_entities, entity_dim]``
starts from KG embeddings (``kelm embed-kg``) or node-name text embeddings
(:meth:`KelmErniePreTrainedModel.init_entity_embeddings`), is frozen or trained by
``config.freeze_entity_embeddings``, and is projected to ``entity_hidden_size`` when the widths
differ. Inside the K-Encoder the entity states are packed per sequence (``[N, E, d_e]``, ``E``
the most entities of one sequence), so the entity stream costs little when entities are sparse.

Heads (all share the parameter names of :class:`KelmErnieModel`, so a checkpoint of one loads
into another with ``from_pretrained``):

* :class:`KelmErnieForPreTraining` - masked LM (decoder tied to the word embeddings) plus the
  denoising entity auto-encoder (dEA); the ``ernie`` pretraining objective corrupts the
  alignments for it (:func:`kelm.pretraining.masking.dea_noise`);
* :class:`KelmErnieForSequenceClassification` - pooled statement -> ``num_labels``;
* :class:`KelmErnieForMultipleChoice` - ``[B, C, L]`` statements -> ``logits [B, C]``
  (``kelm train`` model type ``ernie``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import (
    MultipleChoiceModelOutput,
    SequenceClassifierOutput,
)
from transformers.utils import ModelOutput, can_return_tuple

from kelm.errors import KelmError
from kelm.modeling.backbones import KelmPreTrainedModel, NodeEmbedding, zero_init
from kelm.modeling.configuration_ernie import KelmErnieConfig
from kelm.modeling.encoders import pool_hidden_states

_GRAPH_INPUTS = {"graphs", "path_nodes", "path_rels", "path_mask"}


# ---------------------------------------------------------------------- outputs
@dataclass
class KelmErnieModelOutput(ModelOutput):
    """Output of :class:`KelmErnieModel`.

    Attributes:
        last_hidden_state: token states ``[N, L, H]``.
        entity_hidden_state: entity states of the last K-Encoder layer at aligned positions,
            zeros elsewhere, ``[N, L, d_e]``.
        pooler_output: statement vectors (``config.pooling``) ``[N, H]``.
    """

    last_hidden_state: Tensor | None = None
    entity_hidden_state: Tensor | None = None
    pooler_output: Tensor | None = None


@dataclass
class KelmErniePreTrainingOutput(ModelOutput):
    """Output of :class:`KelmErnieForPreTraining`.

    Attributes:
        loss: ``mlm_loss + dea_loss`` (the terms that have targets), with targets only.
        mlm_loss: mean cross-entropy over the positions with ``labels != -100``.
        dea_loss: mean cross-entropy over the positions with ``entity_labels >= 0``.
        mlm_logits: vocabulary scores ``[N, L, V]``.
        dea_logits: ``[P, K]``: for each of the ``P`` dEA targets (row-major order), scores of
            the ``K`` candidate entities.
        dea_targets: ``[P]``: index of the true entity among the candidates.
        dea_candidates: ``[K]``: the candidate entity ids (sorted), the distinct entities of
            the batch (``entity_labels`` and ``entity_ids``).
        mlm_correct, mlm_count: 0-d counts of correct top-1 predictions and of MLM targets.
        dea_correct, dea_count: the same for dEA.
        last_hidden_state: token states ``[N, L, H]``.
    """

    loss: Tensor | None = None
    mlm_loss: Tensor | None = None
    dea_loss: Tensor | None = None
    mlm_logits: Tensor | None = None
    dea_logits: Tensor | None = None
    dea_targets: Tensor | None = None
    dea_candidates: Tensor | None = None
    mlm_correct: Tensor | None = None
    mlm_count: Tensor | None = None
    dea_correct: Tensor | None = None
    dea_count: Tensor | None = None
    last_hidden_state: Tensor | None = None


# ---------------------------------------------------------------------- K-Encoder parts
class EntitySelfAttention(nn.Module):
    """Multi-head self-attention over the packed entity states of each sequence, then
    dense + dropout + residual + LayerNorm (the BERT attention sub-layer, entity-sized).

    Args:
        dim: entity stream width.
        heads: attention heads (divide ``dim``).
        dropout: dropout on attention probabilities and on the output.
        eps: LayerNorm epsilon.

    Shapes:
        - states: ``[N, E, dim]``; key_mask: ``[N, E]`` bool (True: a real entity)
        - output: ``[N, E, dim]``
    """

    def __init__(self, dim: int, heads: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.dense = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(dim, eps=eps)

    def forward(self, states: Tensor, key_mask: Tensor) -> Tensor:
        n, e, d = states.shape
        shape = (n, e, self.heads, d // self.heads)
        q = self.query(states).view(shape).transpose(1, 2)  # [N, heads, E, dh]
        k = self.key(states).view(shape).transpose(1, 2)
        v = self.value(states).view(shape).transpose(1, 2)
        out = nn.functional.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=key_mask[:, None, None, :],  # [N, 1, 1, E]
            dropout_p=self.dropout.p if self.training else 0.0,
        )  # [N, heads, E, dh]
        out = out.transpose(1, 2).reshape(n, e, d)
        return self.LayerNorm(states + self.dropout(self.dense(out)))


class KnowledgeFusion(nn.Module):
    """The new parameters of one K-Encoder layer (entity attention and the fusion's entity
    side); the token side is the backbone layer passed to :meth:`forward`.

    Args:
        config: the model config.
        intermediate_size: width ``I`` of the backbone layer's feed-forward (``h``'s width).
        eps: LayerNorm epsilon.
    """

    def __init__(self, config: KelmErnieConfig, intermediate_size: int, eps: float) -> None:
        super().__init__()
        de = config.entity_width
        self.entity_attention = EntitySelfAttention(
            de, config.entity_attention_heads, config.entity_dropout, eps
        )
        # W_e: no bias of its own; the fusion's bias b is the backbone's intermediate bias.
        # It starts at zero: at step 0 the K-Encoder is the backbone's own layers, so a new
        # fusion model equals its text baseline and training adds what the entities give.
        self.entity_to_fusion = zero_init(nn.Linear(de, intermediate_size, bias=False))
        self.fusion_to_entity = nn.Linear(intermediate_size, de)  # W_e', b_e'
        self.entity_norm = nn.LayerNorm(de, eps=eps)
        self.dropout = nn.Dropout(config.entity_dropout)

    def forward(
        self,
        layer: nn.Module,
        tokens: Tensor,
        token_mask: Tensor | None,
        entities: Tensor,
        entity_mask: Tensor,
        where: tuple[Tensor, Tensor, Tensor],
    ) -> tuple[Tensor, Tensor]:
        """One K-Encoder layer.

        Args:
            layer: the backbone layer (``attention``, ``intermediate``, ``output`` modules).
            tokens: token states.
            token_mask: the backbone's attention mask (as its layers take it).
            entities: packed entity states.
            entity_mask: which packed slots hold an entity.
            where: ``(seq, pos, slot)`` of every aligned entity: sequence, token position,
                packed slot.

        Shapes:
            - tokens: ``[N, L, H]``; entities: ``[N, E, d_e]``; entity_mask: ``[N, E]``
            - where: three ``[P]`` index tensors
            - output: ``(tokens [N, L, H], entities [N, E, d_e])``
        """
        attended = layer.attention(tokens, token_mask)
        if isinstance(attended, tuple):
            attended = attended[0]  # [N, L, H]
        fused = layer.intermediate.dense(attended)  # [N, L, I]: W_t w~ + b
        seq, pos, slot = where
        if seq.numel():
            ent = self.entity_attention(entities, entity_mask)  # [N, E, d_e]
            # Add W_e e~ at the aligned positions only (index_put keeps autograd to both sides).
            fused = fused.index_put(
                (seq, pos), self.entity_to_fusion(ent[seq, slot]), accumulate=True
            )
        hidden = layer.intermediate.intermediate_act_fn(fused)  # [N, L, I]
        tokens_out = layer.output(hidden, attended)  # [N, L, H]
        if not seq.numel():
            return tokens_out, entities
        ent_update = nn.functional.gelu(self.fusion_to_entity(hidden[seq, pos]))  # [P, d_e]
        ent_new = self.entity_norm(ent[seq, slot] + self.dropout(ent_update))  # [P, d_e]
        entities_out = torch.zeros_like(ent).index_put((seq, slot), ent_new)  # [N, E, d_e]
        return tokens_out, entities_out


# ---------------------------------------------------------------------- base
class KelmErniePreTrainedModel(KelmPreTrainedModel):
    """Base of the ERNIE models: the backbone (``text_encoder``), the entity table
    (``entity_embedding``, ``entity_proj``) and the K-Encoder fusion layers
    (``knowledge_layers``), with :meth:`encode` running both encoders.
    """

    config_class = KelmErnieConfig
    config: KelmErnieConfig

    def _build_knowledge_encoder(self) -> None:
        config = self.config
        self._build_text_encoder()
        layers = self._backbone_layers()
        m = config.num_knowledge_layers
        if not 1 <= m <= len(layers):
            raise ValueError(
                f"num_knowledge_layers must be between 1 and the encoder's {len(layers)} "
                f"layers, got {m}"
            )
        enc = config.encoder_config
        self.entity_embedding = NodeEmbedding(config.num_entities, config.entity_dim)
        self.entity_proj: nn.Module = (
            nn.Linear(config.entity_dim, config.entity_width)
            if config.entity_width != config.entity_dim
            else nn.Identity()
        )
        eps = float(getattr(enc, "layer_norm_eps", 1e-12))
        self.knowledge_layers = nn.ModuleList(
            KnowledgeFusion(config, int(enc.intermediate_size), eps) for _ in range(m)
        )

    def _backbone_layers(self) -> nn.ModuleList:
        """The backbone's transformer layers; refuses encoders that are not BERT-like."""
        layers = getattr(getattr(self.text_encoder, "encoder", None), "layer", None)
        ok = (
            isinstance(layers, nn.ModuleList)
            and len(layers) > 0
            and all(
                hasattr(layer, "attention")
                and hasattr(getattr(layer, "intermediate", None), "dense")
                and hasattr(layer.intermediate, "intermediate_act_fn")
                and hasattr(layer, "output")
                for layer in layers
            )
            and hasattr(self.text_encoder, "embeddings")
        )
        if not ok:
            raise KelmError(
                f"{type(self.text_encoder).__name__} is not a BERT-family encoder (layers with "
                "attention, intermediate and output modules); the ERNIE model needs one"
            )
        return layers  # type: ignore[return-value]

    def get_input_embeddings(self) -> nn.Module:
        return self.text_encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_encoder.set_input_embeddings(value)

    # ------------------------------------------------------------------ entities
    def init_entity_embeddings(self, vectors: Tensor | Any, freeze: bool = False) -> None:
        """Initialise the entity table from KG embeddings (``entity`` of a kelm KGE file) or
        node-name text embeddings.

        Args:
            vectors: ``[num_entities, entity_dim]``.
            freeze: keep the table fixed in training (saved in the config).

        Raises:
            KelmError: the shape does not match the table.
        """
        vectors = torch.as_tensor(vectors)
        expected = (self.config.num_entities, self.config.entity_dim)
        if tuple(vectors.shape) != expected:
            raise KelmError(
                f"entity embeddings of shape {tuple(vectors.shape)} do not fit the entity table "
                f"{expected} (num_entities, entity_dim); build the config with "
                f"num_entities={vectors.shape[0]} and entity_dim={vectors.shape[-1]}"
            )
        self.entity_embedding.load(vectors, freeze=freeze)
        self.config.freeze_entity_embeddings = bool(freeze)

    def _apply_freeze(self) -> None:
        self.entity_embedding.weight.requires_grad_(not self.config.freeze_entity_embeddings)

    def entity_vectors(self, entity_ids: Tensor) -> Tensor:
        """Projected entity embeddings (``-1`` gives the projection of a zero vector).

        Shapes: ``[*]`` -> ``[*, d_e]``
        """
        return self.entity_proj(self.entity_embedding(entity_ids))

    def check_entity_ids(self, entity_ids: Tensor) -> None:
        """Refuse ids outside ``[0, num_entities)`` other than ``-1``.

        Raises:
            KelmError: naming the bad id and the table size.
        """
        n = self.config.num_entities
        outside = (entity_ids < -1) | (entity_ids >= n)
        if bool(outside.any()):  # one host sync per forward; details only on failure
            bad = int(entity_ids[outside][0])
            raise KelmError(
                f"entity id {bad} out of range: ids must be -1 (no entity) or in [0, {n}) "
                "(config.num_entities, the graph's node count)"
            )

    # ------------------------------------------------------------------ frozen encoder
    def frozen_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """What a frozen-encoder warm-up freezes: the T-Encoder (embeddings and the lower
        layers). The K-Encoder layers are the fusion, so they train with it."""
        split = len(self._backbone_layers()) - self.config.num_knowledge_layers
        lower = tuple(f"text_encoder.encoder.layer.{i}." for i in range(split))
        return [
            (n, p)
            for n, p in self.named_parameters()
            if n.startswith(("text_encoder.embeddings.", *lower))
        ]

    frozen_feature_kind = "t_encoder_states"

    @property
    def frozen_feature_numel(self) -> int:
        """Token states: ``L * H`` per statement (large: kept in memory, not on disk)."""
        return 1 << 30

    def t_encoder(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """The T-Encoder: embeddings and the lower ``N - M`` backbone layers.

        Shapes: ``[N, L]`` -> ``[N, L, H]``
        """
        encoder = self.text_encoder
        layers = self._backbone_layers()
        hidden = encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        token_mask = create_bidirectional_mask(
            config=encoder.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        for layer in layers[: len(layers) - self.config.num_knowledge_layers]:
            hidden = layer(hidden, token_mask)
            if isinstance(hidden, tuple):  # layers of older architectures return tuples
                hidden = hidden[0]
        return hidden

    def frozen_features(
        self, input_ids: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor | None
    ) -> Tensor:
        """The T-Encoder's token states (the model's ``t_encoder_states`` input).

        Shapes: ``[N, L]`` -> ``[N, L, H]``
        """
        return self.t_encoder(input_ids, attention_mask, token_type_ids)

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        entity_ids: Tensor | None = None,
        t_encoder_states: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the T-Encoder and the K-Encoder.

        Args:
            input_ids, attention_mask, token_type_ids: as BERT.
            entity_ids: KG node id aligned to each wordpiece, ``-1`` where none (``None``: no
                entities; the model is then the plain backbone).
            t_encoder_states: the T-Encoder's output computed before (a frozen T-Encoder:
                :mod:`kelm.engine.frozen`); when given, the T-Encoder does not run.

        Returns:
            ``(tokens, entities, has_entity)``: token states, entity states (zeros where no
            entity), and which positions carry an entity.

        Shapes:
            - inputs: ``[N, L]``
            - output: ``([N, L, H], [N, L, d_e], [N, L] bool)``

        Raises:
            KelmError: an entity id out of range.
            ValueError: ``entity_ids`` not shaped like ``input_ids``.
        """
        n, length = input_ids.shape
        device = input_ids.device
        if entity_ids is None:
            entity_ids = torch.full_like(input_ids, -1)
        if entity_ids.shape != input_ids.shape:
            raise ValueError(
                f"entity_ids {list(entity_ids.shape)} must have the shape of input_ids "
                f"{list(input_ids.shape)}"
            )
        self.check_entity_ids(entity_ids)
        has_entity = entity_ids >= 0  # [N, L]
        if attention_mask is not None:
            has_entity &= attention_mask.bool()  # padding never carries an entity

        layers = self._backbone_layers()
        if t_encoder_states is None:
            hidden = self.t_encoder(input_ids, attention_mask, token_type_ids)  # [N, L, H]
        else:
            if t_encoder_states.shape[:2] != input_ids.shape:
                raise ValueError(
                    f"t_encoder_states {list(t_encoder_states.shape)} must be [N, L, H] for "
                    f"input_ids {list(input_ids.shape)}"
                )
            hidden = t_encoder_states.to(self.dtype)
        token_mask = create_bidirectional_mask(
            config=self.text_encoder.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        split = len(layers) - self.config.num_knowledge_layers

        # Pack the entities of each sequence into slots 0..E-1 (E: the most of one sequence).
        seq, pos = has_entity.nonzero(as_tuple=True)  # [P] each, row-major
        counts = has_entity.sum(dim=1)  # [N]
        slots = int(counts.max()) if n else 0
        slot = (has_entity.cumsum(dim=1) - 1)[seq, pos]  # [P]
        # Sequences without entities keep slot 0 (zeros) unmasked so no softmax row is empty.
        entity_mask = torch.arange(max(slots, 1), device=device) < counts.clamp(min=1)[:, None]
        first = self.entity_vectors(entity_ids[seq, pos])  # [P, d_e]
        entities = first.new_zeros(n, max(slots, 1), first.size(-1)).index_put((seq, slot), first)
        where = (seq, pos, slot)
        for layer, fusion in zip(layers[split:], self.knowledge_layers, strict=True):  # K-Encoder
            hidden, entities = fusion(layer, hidden, token_mask, entities, entity_mask, where)

        entity_states = entities.new_zeros(n, length, entities.size(-1))
        entity_states = entity_states.index_put((seq, pos), entities[seq, slot])  # [N, L, d_e]
        return hidden, entity_states, has_entity


# ---------------------------------------------------------------------- models
class KelmErnieModel(KelmErniePreTrainedModel):
    """The ERNIE encoder without head (see the module docstring).

    Args:
        config: a :class:`KelmErnieConfig`.
    """

    def __init__(self, config: KelmErnieConfig) -> None:
        super().__init__(config)
        self._build_knowledge_encoder()
        self.post_init()
        self._apply_freeze()

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        entity_ids: Tensor | None = None,
        **kwargs: Any,
    ) -> KelmErnieModelOutput:
        """Encode sequences with their aligned entities.

        Shapes:
            - input_ids, attention_mask, token_type_ids, entity_ids: ``[N, L]``
            - output: ``last_hidden_state [N, L, H]``, ``entity_hidden_state [N, L, d_e]``,
              ``pooler_output [N, H]``
        """
        tokens, entities, _ = self.encode(input_ids, attention_mask, token_type_ids, entity_ids)
        pooled = pool_hidden_states(tokens, attention_mask, self.config.pooling)
        return KelmErnieModelOutput(
            last_hidden_state=tokens, entity_hidden_state=entities, pooler_output=pooled
        )


class ErnieMLMHead(nn.Module):
    """BERT-style masked-LM head: dense + activation + LayerNorm, then the vocabulary
    decoder (its weight tied to the word embeddings, its own bias).

    Shapes: ``[*, H]`` -> ``[*, V]``
    """

    def __init__(self, encoder_config: Any) -> None:
        super().__init__()
        hidden = int(encoder_config.hidden_size)
        act = getattr(encoder_config, "hidden_act", "gelu")
        from transformers.activations import ACT2FN

        self.dense = nn.Linear(hidden, hidden)
        self.act = ACT2FN[act] if isinstance(act, str) else act
        self.LayerNorm = nn.LayerNorm(
            hidden, eps=float(getattr(encoder_config, "layer_norm_eps", 1e-12))
        )
        self.decoder = nn.Linear(hidden, int(encoder_config.vocab_size))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.LayerNorm(self.act(self.dense(hidden))))


class KelmErnieForPreTraining(KelmErniePreTrainedModel):
    """ERNIE with the masked-LM and dEA heads (knowledge-enhanced pretraining).

    dEA: every position with ``entity_labels >= 0`` predicts its true entity among the
    distinct entities of the batch; score = dot product of the transformed token state
    (dense + GELU + LayerNorm, to the entity width) with the projected candidate embeddings.
    The noising (:func:`kelm.pretraining.masking.dea_noise`) is the data collator's job.

    Args:
        config: a :class:`KelmErnieConfig` (the MLM head is new: MiniLM ships none).
    """

    _tied_weights_keys = {
        "mlm_head.decoder.weight": "text_encoder.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: KelmErnieConfig) -> None:
        super().__init__(config)
        self._build_knowledge_encoder()
        enc = config.encoder_config
        self.mlm_head = ErnieMLMHead(enc)
        de = config.entity_width
        self.dea_transform = nn.Sequential(
            nn.Linear(int(enc.hidden_size), de),
            nn.GELU(),
            nn.LayerNorm(de, eps=float(getattr(enc, "layer_norm_eps", 1e-12))),
        )
        self.post_init()
        self._apply_freeze()

    def get_output_embeddings(self) -> nn.Module:
        return self.mlm_head.decoder

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.mlm_head.decoder = value

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        entity_ids: Tensor | None = None,
        labels: Tensor | None = None,
        entity_labels: Tensor | None = None,
        **kwargs: Any,
    ) -> KelmErniePreTrainingOutput:
        """MLM and dEA predictions and losses.

        Args:
            input_ids, attention_mask, token_type_ids: as BERT (MLM-masked input).
            entity_ids: the (noised) aligned entity ids, ``-1`` where none.
            labels: MLM targets, ``-100`` where ignored.
            entity_labels: the true entity at aligned positions, ``-1`` elsewhere.

        Shapes:
            - inputs, labels, entity_labels: ``[N, L]``
            - output: see :class:`KelmErniePreTrainingOutput`
        """
        tokens, _, _ = self.encode(input_ids, attention_mask, token_type_ids, entity_ids)
        mlm_logits = self.mlm_head(tokens)  # [N, L, V]
        zero = tokens.new_zeros(())
        out = KelmErniePreTrainingOutput(mlm_logits=mlm_logits, last_hidden_state=tokens)
        losses = []
        if labels is not None:
            target = labels != -100  # [N, L]
            count = target.sum()
            flat_logits = mlm_logits[target]  # [T, V]
            flat_labels = labels[target]  # [T]
            out.mlm_loss = (
                nn.functional.cross_entropy(flat_logits.float(), flat_labels)
                if flat_labels.numel()
                else zero
            )
            out.mlm_correct = (flat_logits.argmax(-1) == flat_labels).sum()
            out.mlm_count = count
            losses.append(out.mlm_loss)
        if entity_labels is not None:
            if entity_labels.shape != input_ids.shape:
                raise ValueError(
                    f"entity_labels {list(entity_labels.shape)} must have the shape of "
                    f"input_ids {list(input_ids.shape)}"
                )
            self.check_entity_ids(entity_labels)
            target = entity_labels >= 0  # [N, L]
            if attention_mask is not None:
                target &= attention_mask.bool()
            true_ids = entity_labels[target]  # [P]
            present = entity_ids[entity_ids >= 0] if entity_ids is not None else true_ids[:0]
            candidates = torch.unique(torch.cat([true_ids, present]))  # [K] sorted
            queries = self.dea_transform(tokens[target])  # [P, d_e]
            logits = queries @ self.entity_vectors(candidates).t()  # [P, K]
            targets = torch.searchsorted(candidates, true_ids)  # [P]
            out.dea_logits, out.dea_targets, out.dea_candidates = logits, targets, candidates
            out.dea_loss = (
                nn.functional.cross_entropy(logits.float(), targets) if true_ids.numel() else zero
            )
            out.dea_correct = (logits.argmax(-1) == targets).sum()
            out.dea_count = target.sum()
            losses.append(out.dea_loss)
        if losses:
            out.loss = sum(losses[1:], losses[0])
        return out


class KelmErnieForSequenceClassification(KelmErniePreTrainedModel):
    """ERNIE pooled sequence vector (``config.pooling``) -> dropout -> linear ->
    ``num_labels`` scores; the loss follows ``config.problem_type`` as BERT's does
    (regression: MSE; single-label: cross-entropy; multi-label: BCE with logits).

    Args:
        config: a :class:`KelmErnieConfig` (``num_labels``, optional ``problem_type``).
    """

    def __init__(self, config: KelmErnieConfig) -> None:
        super().__init__(config)
        self._build_knowledge_encoder()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.statement_dim, config.num_labels)
        self.post_init()
        self._apply_freeze()

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        entity_ids: Tensor | None = None,
        labels: Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        """Classify sequences.

        Shapes:
            - inputs: ``[N, L]``; labels: ``[N]`` (or ``[N, num_labels]`` multi-label)
            - output: ``logits [N, num_labels]``; ``loss`` with labels
        """
        tokens, _, _ = self.encode(input_ids, attention_mask, token_type_ids, entity_ids)
        pooled = pool_hidden_states(tokens, attention_mask, self.config.pooling)  # [N, H]
        logits = self.classifier(self.dropout(pooled))  # [N, num_labels]
        loss = None
        if labels is not None:
            problem = self.config.problem_type
            if problem is None:
                if self.config.num_labels == 1:
                    problem = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    problem = "single_label_classification"
                else:
                    problem = "multi_label_classification"
                self.config.problem_type = problem
            if problem == "regression":
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            elif problem == "single_label_classification":
                loss = nn.functional.cross_entropy(logits, labels.view(-1))
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(
                    logits, labels.to(logits.dtype)
                )
        return SequenceClassifierOutput(loss=loss, logits=logits)


class KelmErnieForMultipleChoice(KelmErniePreTrainedModel):
    """ERNIE statement vector of "question [SEP] choice" -> dropout -> linear score; softmax
    over the choices (``kelm train`` model type ``ernie``).

    With ``config.entity_scoring`` the score also reads the entity stream: ``MLP([s; e])``
    over the statement vector ``s`` and the mean ``e`` of the statement's entity states after
    the K-Encoder, its last layer starting at zero. Through the token side alone the entities
    reach the score only once the zero-initialised fusion weights have grown, and the entity
    attention (where the question's and the choice's entities meet) learns nothing until then:
    the first epoch stays flat and whether training escapes is a matter of the seed. The MLP
    gives the entity stream a path to the loss from the first step, while at step 0 the model
    still equals its text baseline.

    Args:
        config: a :class:`KelmErnieConfig`.
    """

    def __init__(self, config: KelmErnieConfig) -> None:
        super().__init__(config)
        self._build_knowledge_encoder()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.statement_dim, 1)
        self.entity_scorer: nn.Module | None = None
        if config.entity_scoring:
            self.entity_scorer = nn.Sequential(
                nn.Linear(self.statement_dim + config.entity_width, config.entity_scoring_dim),
                nn.GELU(),
                nn.Dropout(config.classifier_dropout),
                zero_init(nn.Linear(config.entity_scoring_dim, 1)),
            )
        self.post_init()
        self._apply_freeze()

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        entity_ids: Tensor | None = None,
        t_encoder_states: Tensor | None = None,
        labels: Tensor | None = None,
        **kwargs: Any,
    ) -> MultipleChoiceModelOutput:
        """Score every choice.

        Args:
            input_ids, attention_mask, token_type_ids: the tokenised statements.
            entity_ids: aligned entity ids, ``-1`` where none (``None``: no entities).
            t_encoder_states: the T-Encoder's token states computed before (a frozen
                T-Encoder); when given, the T-Encoder does not run.
            labels: index of the right choice (optional).
            kwargs: the graph inputs of a collator shared with the graph models (``graphs``,
                ``path_*``) are accepted and ignored.

        Shapes:
            - input_ids, attention_mask, token_type_ids, entity_ids: ``[B, C, L]``
            - t_encoder_states: ``[B, C, L, H]``
            - labels: ``[B]``
            - output: ``logits [B, C]``; ``loss`` (cross-entropy over choices) when ``labels``
        """
        unknown = set(kwargs) - _GRAPH_INPUTS
        if unknown:
            raise TypeError(f"unexpected inputs: {', '.join(sorted(unknown))}")
        if input_ids.dim() != 3:
            raise ValueError(
                f"input_ids must be [batch, choices, length], got {list(input_ids.shape)}"
            )
        num_choices, length = input_ids.shape[1], input_ids.shape[2]

        def flat(t: Tensor | None) -> Tensor | None:
            return t.reshape(-1, length) if t is not None else None

        mask = flat(attention_mask)
        tokens, entity_states, has_entity = self.encode(
            flat(input_ids),
            mask,
            flat(token_type_ids),
            flat(entity_ids),  # type: ignore[arg-type]
            t_encoder_states.reshape(-1, length, t_encoder_states.shape[-1])
            if t_encoder_states is not None
            else None,
        )
        statements = pool_hidden_states(tokens, mask, self.config.pooling)  # [B*C, H]
        scores = self.classifier(self.dropout(statements))  # [B*C, 1]
        if self.entity_scorer is not None:
            # entity_states is zero where no entity: the sum over positions / their count
            count = has_entity.sum(dim=1, keepdim=True).clamp(min=1)  # [B*C, 1]
            pooled = entity_states.sum(dim=1) / count.to(entity_states.dtype)  # [B*C, d_e]
            scores = scores + self.entity_scorer(torch.cat([statements, pooled], dim=-1))
        return self.choice_output(scores, num_choices, labels)  # logits [B, C]


__all__ = [
    "EntitySelfAttention",
    "KelmErnieForMultipleChoice",
    "KelmErnieForPreTraining",
    "KelmErnieForSequenceClassification",
    "KelmErnieModel",
    "KelmErnieModelOutput",
    "KelmErniePreTrainedModel",
    "KelmErniePreTrainingOutput",
    "KnowledgeFusion",
]
