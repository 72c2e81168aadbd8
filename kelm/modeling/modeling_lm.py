"""The plain multiple-choice baseline: a text encoder scores each (question, choice) statement."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from transformers.modeling_outputs import MultipleChoiceModelOutput
from transformers.utils import can_return_tuple

from kelm.modeling.backbones import KelmPreTrainedModel
from kelm.modeling.configuration_lm import KelmLMConfig

_GRAPH_INPUTS = {"graphs", "path_nodes", "path_rels", "path_mask"}


class KelmLMForMultipleChoice(KelmPreTrainedModel):
    """Encoder representation of "question [SEP] choice" (CLS or mean pooling, by
    ``config.pooling``) -> dropout -> linear score; softmax over the choices.

    Args:
        config: a :class:`KelmLMConfig`.
    """

    config_class = KelmLMConfig
    config: KelmLMConfig

    def __init__(self, config: KelmLMConfig) -> None:
        super().__init__(config)
        self._build_text_encoder()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.statement_dim, 1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        statement_vectors: Tensor | None = None,
        labels: Tensor | None = None,
        **kwargs: Any,
    ) -> MultipleChoiceModelOutput:
        """Score every choice.

        Args:
            input_ids, attention_mask, token_type_ids: the tokenised statements.
            statement_vectors: precomputed statement vectors of a frozen encoder (see
                :meth:`~kelm.modeling.backbones.KelmPreTrainedModel.encode_statements`).
            labels: index of the right choice (optional).
            kwargs: ``graphs``, ``path_nodes``, ``path_rels``, ``path_mask`` from a collator
                shared with the graph models are accepted and ignored.

        Shapes:
            - input_ids, attention_mask, token_type_ids: ``[B, C, L]``
            - statement_vectors: ``[B, C, H]``
            - labels: ``[B]``
            - output: ``logits [B, C]``; ``loss`` (cross-entropy over choices) when ``labels``
        """
        unknown = set(kwargs) - _GRAPH_INPUTS
        if unknown:
            raise TypeError(f"unexpected inputs: {', '.join(sorted(unknown))}")
        statements, num_choices = self.encode_statements(
            input_ids, attention_mask, token_type_ids, statement_vectors
        )
        return self.choice_output(
            self.classifier(self.dropout(statements)), num_choices, labels
        )  # logits [B, C]


__all__ = ["KelmLMForMultipleChoice"]
