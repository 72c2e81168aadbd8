"""QA-GNN-style joint reasoning (Yasunaga et al. 2021, "QA-GNN: Reasoning with Language
Models and Knowledge Graphs for Question Answering"), on a Hugging Face text encoder.

Per statement (question, choice), with its retrieved subgraph:

1. **Statement vector** ``s``: the encoder's pooled representation of "question [SEP] choice".
2. **Working graph**: the subgraph plus a *context node* (node type 3) whose state starts from
   ``s`` (projected). A graph from the retrieval with ``context=True`` already has one (node id
   ``-1``); otherwise the model adds it, with edges context->question (type ``2R``),
   context->answer (``2R+1``) and their reverses (``2R+2``, ``2R+3``).
3. **Node features**: KG nodes start from the node table (projected to ``gnn_dim``); every node
   also carries a node-type embedding and a sinusoidal encoding of its relevance score
   (``node_score``), fed to every layer, and (``statement_features``, a kelm addition) its
   statement vector, projected: each layer's attention query, key and message then read the
   question, so an edge can be weighed against what is asked from the first layer on (in the
   paper only the context node carries the statement, reaching other nodes a hop per layer;
   on the knowledge-necessary task of ``scripts/bench_knowledge.py`` that left 2-hop
   questions at the "linked or not" plateau).
4. **GNN**: ``gnn_layers`` relation- and node-type-aware GAT layers
   (:class:`~kelm.modeling.gnn.TypedGATConv`) with residual connections and layer norm.
5. **Pooling**: multi-head attention over the KG nodes (the context node when there are none)
   with ``s`` as query.
6. **Score**: ``MLP([s; pooled; context node])``, plus (``residual``) the plain LM head
   ``w^T s``, the MLP's last layer starting at zero.

An empty subgraph (no nodes, or only the context node) is reasoned over as a one-node graph.
For message passing in both directions, build the graphs with inverse edges
(``Subgraph.to_data(num_relations, with_inverse=True)``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter, softmax
from transformers.modeling_outputs import MultipleChoiceModelOutput
from transformers.utils import can_return_tuple

from kelm.modeling.backbones import NUM_NODE_TYPES, KelmPreTrainedModel, NodeEmbedding, zero_init
from kelm.modeling.configuration_qagnn import QAGNNConfig
from kelm.modeling.gather import gather_rows
from kelm.modeling.gnn import TypedGATConv
from kelm.modeling.graph_inputs import with_context_nodes
from kelm.modeling.outputs import KelmMultipleChoiceOutput
from kelm.retrieval.subgraph import CONTEXT


class QAGNNForMultipleChoice(KelmPreTrainedModel):
    """QA-GNN-style multiple choice: joint LM + KG graph reasoning -> score.

    See the module docstring for the architecture.

    Args:
        config: a :class:`QAGNNConfig`.
    """

    config_class = QAGNNConfig
    config: QAGNNConfig

    def __init__(self, config: QAGNNConfig) -> None:
        super().__init__(config)
        self._build_text_encoder()
        h, d = self.statement_dim, config.gnn_dim
        self.node_embedding = NodeEmbedding(config.num_nodes, config.node_dim)
        self.node_proj = nn.Linear(config.node_dim, d)
        self.context_proj = nn.Linear(h, d)
        self.node_type_embedding = nn.Embedding(NUM_NODE_TYPES, d // 2)
        self.score_proj = nn.Linear(config.score_basis, d - d // 2)
        # every node's attention query, key and message also see its statement (the question
        # selects which edges matter: an edge type is matched against the asked relation from
        # the first layer on)
        self.statement_feature = nn.Linear(h, d) if config.statement_features else None
        feature_dim = 2 * d if config.statement_features else d
        self.gnn_layers = nn.ModuleList(
            TypedGATConv(
                d,
                d,
                num_edge_types=config.num_edge_types,
                num_node_types=NUM_NODE_TYPES,
                heads=config.gnn_heads,
                node_feature_dim=feature_dim,
                dropout=config.gnn_dropout,
            )
            for _ in range(config.gnn_layers)
        )
        self.gnn_norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(config.gnn_layers))
        self.gnn_dropout = nn.Dropout(config.gnn_dropout)
        self.input_skip = nn.Linear(d, d)
        self.output_proj = nn.Linear(d, d)
        self.pool_query = nn.Linear(h, d)
        self.pool_key = nn.Linear(d, d)
        self.pool_value = nn.Linear(d, d)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Sequential(
            nn.Linear(h + 2 * d, config.fc_dim),
            nn.GELU(),
            nn.Dropout(config.classifier_dropout),
            nn.Linear(config.fc_dim, 1),
        )
        # residual scoring: the plain LM's head; the graph MLP's last layer starts at zero
        self.text_head = nn.Linear(h, 1) if config.residual else None
        if config.residual:
            zero_init(self.classifier[-1])
        self.post_init()
        self._apply_freeze()

    # ------------------------------------------------------------------ graph preparation
    def _with_context_nodes(
        self, graphs: Batch | None, n: int, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The batch flattened with one context node per statement graph
        (:func:`~kelm.modeling.graph_inputs.with_context_nodes`), ids and edge types checked.

        Returns:
            ``(node_ids [n'], node_type [n'], node_score [n'], batch [n'], edge_index [2, e'],
            edge_type [e'], context_of_graph [N])``.
        """
        if graphs is not None:
            self._check_ids(graphs.node_ids, graphs.edge_type)
        g = with_context_nodes(graphs, n, self.config.num_relations, device)
        return (
            g.node_ids,
            g.node_type,
            g.node_score,
            g.batch,
            g.edge_index,
            g.edge_type,
            g.context_of_graph,
        )

    def _score_features(self, score: Tensor) -> Tensor:
        """Sinusoidal basis of relevance scores (QA-GNN): ``sin(1.1^k * score)``.

        Shapes: ``[n]`` -> ``[n, score_basis]``
        """
        k = torch.arange(self.config.score_basis, device=score.device, dtype=score.dtype)
        return torch.sin(torch.pow(1.1, k) * score.unsqueeze(-1))

    # ------------------------------------------------------------------ forward
    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        graphs: Batch | None = None,
        statement_vectors: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
    ) -> MultipleChoiceModelOutput:
        """Score every choice.

        Args:
            input_ids, attention_mask, token_type_ids: the tokenised statements.
            graphs: the ``B * C`` statement graphs (question-major), a ``torch_geometric``
                ``Batch`` with ``node_ids``, ``node_type``, ``node_score``, ``edge_index``,
                ``edge_type``; ``None``: empty graphs.
            statement_vectors: precomputed statement vectors of a frozen encoder (see
                :meth:`~kelm.modeling.backbones.KelmPreTrainedModel.encode_statements`).
            labels: index of the right choice (optional).
            output_attentions: also return the pooling attention over the nodes
                (:class:`~kelm.modeling.outputs.KelmMultipleChoiceOutput`'s ``node_attention``).

        Shapes:
            - input_ids, attention_mask, token_type_ids: ``[B, C, L]``
            - statement_vectors: ``[B, C, H]``
            - labels: ``[B]``
            - output: ``logits [B, C]``; ``loss`` (cross-entropy over choices) when ``labels``;
              with ``output_attentions``, ``node_attention [n_nodes]`` (nodes of ``graphs``)
        """
        statements, num_choices = self.encode_statements(
            input_ids, attention_mask, token_type_ids, statement_vectors
        )  # [N, H]
        n, device = statements.size(0), statements.device
        d, heads = self.config.gnn_dim, self.config.pool_heads
        node_ids, node_type, node_score, batch, edge_index, edge_type, context_of_graph = (
            self._with_context_nodes(graphs, n, device)
        )
        is_ctx = node_type == CONTEXT  # [n']

        # Initial states: projected node table rows; projected statement for context nodes.
        # Statement rows repeat over their graph's nodes: gather_rows (not indexing) keeps their
        # summed gradients bitwise reproducible with several CPU threads.
        kg_state = nn.functional.gelu(self.node_proj(self.node_embedding(node_ids)))  # [n', d]
        ctx_state = gather_rows(nn.functional.gelu(self.context_proj(statements)), batch)  # [n', d]
        x = self.gnn_dropout(torch.where(is_ctx.unsqueeze(-1), ctx_state, kg_state))  # [n', d]
        extra = torch.cat(
            [
                self.node_type_embedding(node_type),
                self.score_proj(self._score_features(node_score)),
            ],
            dim=-1,
        )  # [n', d]
        if self.statement_feature is not None:
            stmt = gather_rows(self.statement_feature(statements), batch)  # [n', d]
            extra = torch.cat([extra, stmt], dim=-1)  # [n', 2d]
        extra = nn.functional.gelu(extra)

        h = x
        for layer, norm in zip(self.gnn_layers, self.gnn_norms, strict=True):
            update = layer(h, edge_index, edge_type, node_type, extra)  # [n', d]
            h = norm(h + self.gnn_dropout(nn.functional.gelu(update)))  # [n', d]
        h = nn.functional.gelu(self.input_skip(x) + self.output_proj(h))  # [n', d]

        # Attention pooling over KG nodes, the statement as query (context node if none).
        pool = ~is_ctx  # [n']
        has_kg = torch.zeros(n, dtype=torch.bool, device=device)
        has_kg[batch[pool]] = True
        pool |= is_ctx & ~has_kg[batch]
        idx = pool.nonzero(as_tuple=True)[0]  # [k]
        owner = batch[idx]  # [k]
        query = gather_rows(self.pool_query(statements), owner)  # [k, d]: rows repeat, as above
        query = query.view(owner.size(0), heads, d // heads)  # [k, heads, dh]
        key = self.pool_key(h[idx]).view(-1, heads, d // heads)  # [k, heads, dh]
        value = self.pool_value(h[idx]).view(-1, heads, d // heads)  # [k, heads, dh]
        scores = (query * key).sum(-1) / math.sqrt(d // heads)  # [k, heads]
        alpha = softmax(scores, owner, num_nodes=n)  # [k, heads]
        pooled = scatter(alpha.unsqueeze(-1) * value, owner, 0, n, "sum").view(n, d)  # [N, d]

        context = h[context_of_graph]  # [N, d]
        features = torch.cat([self.dropout(statements), pooled, context], dim=-1)  # [N, H + 2d]
        scores = self.classifier(features)  # [N, 1]
        if self.text_head is not None:  # residual: the text baseline plus the graph's part
            scores = scores + self.text_head(self.dropout(statements))  # [N, 1]
        output = self.choice_output(scores, num_choices, labels)  # logits [B, C]
        if not output_attentions:
            return output
        weights = alpha.new_zeros(node_ids.size(0))  # [n']: 0 where not pooled
        weights[idx] = alpha.detach().mean(-1)
        # the graphs' own nodes come first in the flattened batch, the added context nodes after
        own = graphs.num_nodes if graphs is not None else 0
        return KelmMultipleChoiceOutput(
            loss=output.loss, logits=output.logits, node_attention=weights[:own]
        )


__all__ = ["QAGNNForMultipleChoice"]
