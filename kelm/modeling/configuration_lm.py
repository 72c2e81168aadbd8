"""Configuration of :class:`~kelm.modeling.modeling_lm.KelmLMForMultipleChoice`."""

from huggingface_hub.dataclasses import strict

from kelm.modeling.backbones import KelmBaseConfig


@strict
class KelmLMConfig(KelmBaseConfig):
    """The plain text baseline: encoder statement vector -> linear score.

    Args:
        encoder_config: the text encoder's config (``None``: the MiniLM-L6-H384 architecture).
        encoder_name_or_path: where the encoder weights came from (provenance only).
        pooling: statement vector: ``"cls"`` (first token) or ``"mean"`` (masked mean).
        classifier_dropout: dropout on the statement vector before the linear score.
        initializer_range: std of the normal init of new weights.

    Example::

        config = KelmLMConfig(encoder_config=BertConfig(...), pooling="cls")
        model = KelmLMForMultipleChoice(config)
        model = KelmLMForMultipleChoice.from_text_encoder()  # pretrained offline MiniLM
    """

    model_type = "kelm_lm"


__all__ = ["KelmLMConfig"]
