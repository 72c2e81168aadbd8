"""Configuration of :class:`~kelm.modeling.modeling_gpt.KelmGPTForMultipleChoice`."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

GPT1_ARCHITECTURE = {
    "vocab_size": 40478,
    "n_positions": 512,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
}
"""GPT-1's hyper-parameters (Radford et al. 2018): the backbone sub-config when none is given."""


@strict
class KelmGPTConfig(PreTrainedConfig):
    """A GPT-1-style multiple-choice model: a causal LM reads each statement in the transfer
    format ``<start> question <delim> choice <extract>``; a linear head scores the extract
    token's final state, and the LM loss on the statement tokens is an auxiliary objective.

    Args:
        encoder_config: the causal LM backbone's config (any ``AutoModelForCausalLM``
            architecture: ``openai-gpt``, ``gpt2``, ``llama`` ...; a config, its dict, or
            ``None`` for the GPT-1 architecture). Named as in the other kelm configs so that
            tools read every family's backbone the same way.
        encoder_name_or_path: where the backbone weights came from (provenance only).
        lm_loss_weight: weight ``lambda`` of the auxiliary LM loss added to the choice
            cross-entropy in training (GPT-1 used 0.5; 0 switches it off).
        classifier_dropout: dropout on the extract state before the linear score.
        initializer_range: std of the normal init of new weights.
        start_token_id, delimiter_token_id, extract_token_id: ids of the transfer-format
            special tokens in the backbone's (resized) vocabulary (``-1``: unknown).

    Example::

        config = KelmGPTConfig(encoder_config=GPT2Config(...), lm_loss_weight=0.5)
        model = KelmGPTForMultipleChoice(config)
        model = KelmGPTForMultipleChoice.from_causal_lm("path/or/id", tokenizer=tokenizer)
    """

    model_type = "kelm_gpt"
    sub_configs_defaults = {
        "encoder_config": SubConfigSpec(
            config_class=AutoConfig, model_type="openai-gpt", init_kwargs=GPT1_ARCHITECTURE
        )
    }

    encoder_config: dict | PreTrainedConfig | None = None
    encoder_name_or_path: str = ""
    lm_loss_weight: float | int = 0.5
    classifier_dropout: float | int = 0.1
    initializer_range: float | int = 0.02
    start_token_id: int = -1
    delimiter_token_id: int = -1
    extract_token_id: int = -1

    def validate_weights(self) -> None:
        if self.lm_loss_weight < 0:
            raise ValueError(f"lm_loss_weight must be 0 or more, got {self.lm_loss_weight}")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}")

    @property
    def special_token_ids(self) -> tuple[int, int, int]:
        """``(start, delimiter, extract)`` ids."""
        return (self.start_token_id, self.delimiter_token_id, self.extract_token_id)


__all__ = ["GPT1_ARCHITECTURE", "KelmGPTConfig"]
