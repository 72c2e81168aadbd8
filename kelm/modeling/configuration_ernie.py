"""Configuration of the ERNIE-style knowledgeable encoder (:mod:`kelm.modeling.modeling_ernie`)."""

from huggingface_hub.dataclasses import strict

from kelm.modeling.backbones import KelmBaseConfig


@strict
class KelmErnieConfig(KelmBaseConfig):
    """ERNIE-style token-entity fusion inside a BERT-family encoder (Zhang et al. 2019).

    The lower ``N - M`` layers of the ``N``-layer backbone are the text-only T-Encoder; the top
    ``M = num_knowledge_layers`` layers become K-Encoder layers that fuse each token with the
    KG entity aligned to it.

    Args:
        encoder_config, encoder_name_or_path, pooling, classifier_dropout, initializer_range:
            the text encoder (see :class:`~kelm.modeling.KelmLMConfig`); a BERT-family
            encoder (layers with ``attention``, ``intermediate`` and ``output`` modules).
        num_knowledge_layers: ``M``, the top backbone layers turned into K-Encoder layers
            (1 to the backbone's layer count).
        num_entities: rows of the entity table (the graph's node count).
        entity_dim: width of the entity table (the KG embedding width).
        entity_hidden_size: width of the K-Encoder's entity stream; ``None``: ``entity_dim``
            (the table is projected when the widths differ).
        entity_attention_heads: heads of the entity self-attention (divides the stream width).
        entity_dropout: dropout in the entity stream (attention output and fusion output).
        freeze_entity_embeddings: keep the entity table fixed in training.
        entity_scoring: the multiple-choice model's logit also reads the entity stream: an MLP
            over the statement vector and the mean of the statement's entity states after the
            K-Encoder, its last layer starting at zero (residual scoring).
        entity_scoring_dim: hidden width of that MLP.
        graph_checksum: checksum of the graph index the entity ids refer to (``""``: unknown).
        tie_word_embeddings: tie the masked-LM decoder to the word embeddings (pretraining head).

    Example::

        config = KelmErnieConfig(encoder_config=BertConfig(...), num_entities=1000, entity_dim=100)
        model = KelmErnieForMultipleChoice(config)
        model = KelmErnieForMultipleChoice.from_text_encoder(num_entities=n, entity_dim=100)
    """

    model_type = "kelm_ernie"

    num_knowledge_layers: int = 2
    num_entities: int = 1
    entity_dim: int = 100
    entity_hidden_size: int | None = None
    entity_attention_heads: int = 4
    entity_dropout: float | int = 0.1
    freeze_entity_embeddings: bool = False
    entity_scoring: bool = False
    entity_scoring_dim: int = 200
    graph_checksum: str = ""
    tie_word_embeddings: bool = True

    @property
    def entity_width(self) -> int:
        """Width of the K-Encoder entity stream (``entity_hidden_size`` or ``entity_dim``)."""
        return int(self.entity_hidden_size or self.entity_dim)

    def validate_entities(self) -> None:
        for name in ("num_entities", "entity_dim", "entity_attention_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.entity_hidden_size is not None and self.entity_hidden_size < 1:
            raise ValueError(f"entity_hidden_size must be >= 1, got {self.entity_hidden_size}")
        if self.entity_width % self.entity_attention_heads:
            raise ValueError(
                f"the entity stream width ({self.entity_width}) must be a multiple of "
                f"entity_attention_heads ({self.entity_attention_heads})"
            )
        if not 0.0 <= self.entity_dropout < 1.0:
            raise ValueError(f"entity_dropout must be in [0, 1), got {self.entity_dropout}")
        if self.entity_scoring_dim < 1:
            raise ValueError(f"entity_scoring_dim must be >= 1, got {self.entity_scoring_dim}")

    def validate_knowledge_layers(self) -> None:
        layers = getattr(self.encoder_config, "num_hidden_layers", None)
        if self.num_knowledge_layers < 1 or (
            layers is not None and self.num_knowledge_layers > layers
        ):
            raise ValueError(
                f"num_knowledge_layers must be between 1 and the encoder's {layers} layers, "
                f"got {self.num_knowledge_layers}"
            )


__all__ = ["KelmErnieConfig"]
