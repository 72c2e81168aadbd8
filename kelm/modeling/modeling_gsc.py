"""The graph soft counter (Wang et al., ICLR 2022, "GNN is a Counter? Revisiting GNN for
Question Answering"), on a Hugging Face text encoder.

Per statement (question, choice), with its retrieved subgraph and a context node
(:func:`~kelm.modeling.graph_inputs.with_context_nodes`):

1. **Edge values**: every edge ``j -> i`` gets one scalar from a two-layer MLP over
   ``[one-hot edge type; one-hot type of j; one-hot type of i]``. Nothing else about the graph
   is read: no node embeddings, no text, so GSC is blind to the question by design.
2. **Counting**: node values start at 0; each of ``gsc_layers`` layers sets
   ``x_i = sum_{j -> i} (x_j + e_ji)``, a soft count of the typed paths that end at ``i``.
3. **Score**: ``MLP(statement vector) + g(x_context)`` where ``g`` is a small rescaling MLP.
   ``g``'s output layer starts at zero, so a new GSC scores exactly as its text head: training
   can only add what the graph gives.

With the default sizes and CN-100K's 34 relations the graph part has about 2.7k parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from transformers.modeling_outputs import MultipleChoiceModelOutput
from transformers.utils import can_return_tuple

from kelm.errors import KelmError
from kelm.modeling.backbones import NUM_NODE_TYPES, KelmPreTrainedModel
from kelm.modeling.configuration_gsc import GSCConfig
from kelm.modeling.graph_inputs import with_context_nodes


class GSCForMultipleChoice(KelmPreTrainedModel):
    """Text MLP score plus the graph soft counter's context-node count.

    Args:
        config: a :class:`GSCConfig`.
    """

    config_class = GSCConfig
    config: GSCConfig

    def __init__(self, config: GSCConfig) -> None:
        super().__init__(config)
        self._build_text_encoder()
        width = config.edge_hidden
        self.edge_encoder = nn.Sequential(
            nn.Linear(config.num_edge_types + 2 * NUM_NODE_TYPES, width),
            nn.GELU(),
            nn.Linear(width, 1),
        )
        self.graph_scale = nn.Sequential(nn.Linear(1, width), nn.GELU(), nn.Linear(width, 1))
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.text_head = nn.Sequential(
            nn.Linear(self.statement_dim, config.fc_dim),
            nn.GELU(),
            nn.Dropout(config.classifier_dropout),
            nn.Linear(config.fc_dim, 1),
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is getattr(self, "graph_scale", [None])[-1]:
            # the graph's contribution starts at zero: at step 0 GSC is its text head
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def edge_values(self, edge_type: Tensor, source_type: Tensor, target_type: Tensor) -> Tensor:
        """The scalar of each edge.

        Shapes:
            edge_type, source_type, target_type: ``[E]`` -> ``[E]``
        """
        features = torch.cat(
            [
                nn.functional.one_hot(edge_type, self.config.num_edge_types),
                nn.functional.one_hot(source_type, NUM_NODE_TYPES),
                nn.functional.one_hot(target_type, NUM_NODE_TYPES),
            ],
            dim=-1,
        ).float()  # [E, T + 2 * node types]
        return self.edge_encoder(features).squeeze(-1)  # [E]

    def count(self, num_nodes: int, edge_index: Tensor, edge_values: Tensor) -> Tensor:
        """``gsc_layers`` rounds of ``x_i = sum_{j -> i} (x_j + e_ji)`` from ``x = 0``.

        Shapes:
            edge_index: ``[2, E]``; edge_values: ``[E]`` -> ``[num_nodes]``
        """
        source, target = edge_index
        x = edge_values.new_zeros(num_nodes)  # [n]
        for _ in range(self.config.gsc_layers):
            x = edge_values.new_zeros(num_nodes).index_add(0, target, x[source] + edge_values)
        return x

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        graphs: Batch | None = None,
        statement_vectors: Tensor | None = None,
        labels: Tensor | None = None,
        **kwargs: Any,
    ) -> MultipleChoiceModelOutput:
        """Score every choice.

        Args:
            input_ids, attention_mask, token_type_ids: the tokenised statements.
            graphs: the ``B * C`` statement graphs (question-major) with ``node_type``,
                ``edge_index``, ``edge_type`` (node ids are not read); ``None``: empty graphs.
            statement_vectors: precomputed statement vectors of a frozen encoder (see
                :meth:`~kelm.modeling.backbones.KelmPreTrainedModel.encode_statements`).
            labels: index of the right choice (optional).

        Shapes:
            - input_ids, attention_mask, token_type_ids: ``[B, C, L]``
            - statement_vectors: ``[B, C, H]``
            - labels: ``[B]``
            - output: ``logits [B, C]``; ``loss`` (cross-entropy over choices) when ``labels``
        """
        if kwargs:
            raise TypeError(f"unexpected inputs: {', '.join(sorted(kwargs))}")
        statements, num_choices = self.encode_statements(
            input_ids, attention_mask, token_type_ids, statement_vectors
        )  # [N, H]
        n = statements.size(0)
        flat = with_context_nodes(graphs, n, self.config.num_relations, statements.device)
        if flat.edge_type.numel() and int(flat.edge_type.max()) >= self.config.num_edge_types:
            raise KelmError(
                f"edge type {int(flat.edge_type.max())} out of range: the model knows "
                f"{self.config.num_edge_types} edge types (2 * num_relations + 4)"
            )
        source, target = flat.edge_index
        values = self.edge_values(
            flat.edge_type, flat.node_type[source], flat.node_type[target]
        )  # [E]
        counts = self.count(flat.node_type.size(0), flat.edge_index, values)  # [n']
        graph_score = self.graph_scale(counts[flat.context_of_graph].unsqueeze(-1))  # [N, 1]
        text_score = self.text_head(self.dropout(statements))  # [N, 1]
        return self.choice_output(text_score + graph_score, num_choices, labels)  # logits [B, C]


__all__ = ["GSCForMultipleChoice"]
