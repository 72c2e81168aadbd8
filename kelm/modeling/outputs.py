"""What a graph model attended to, returned beside its logits when asked
(``model(..., output_attentions=True)``), for inspection (``kelm explore``).

The default output of every model is unchanged: a plain ``MultipleChoiceModelOutput``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor
from transformers.modeling_outputs import MultipleChoiceModelOutput


@dataclass
class KelmMultipleChoiceOutput(MultipleChoiceModelOutput):
    """``MultipleChoiceModelOutput`` with the graph attention of a kelm model.

    Attributes:
        node_attention: QA-GNN: the pooling attention of every node of the input ``graphs``
            (``[n_nodes]``, in the batch's node order, the mean over heads); it sums to 1 over
            the knowledge nodes of each statement graph; a node not pooled (the context node
            of a graph that has knowledge nodes) gets 0.
        path_attention: KagNet: the weight of each padded path slot (``[B * C, P]``): its
            attention within its concept pair times the pair's attention within the
            statement, so the paths of a statement sum to 1; 0 for padding.
    """

    node_attention: Tensor | None = None
    path_attention: Tensor | None = None


__all__ = ["KelmMultipleChoiceOutput"]
