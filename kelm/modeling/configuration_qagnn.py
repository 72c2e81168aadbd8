"""Configuration of :class:`~kelm.modeling.modeling_qagnn.QAGNNForMultipleChoice`."""

from huggingface_hub.dataclasses import strict

from kelm.modeling.backbones import KelmGraphConfig


@strict
class QAGNNConfig(KelmGraphConfig):
    """QA-GNN-style joint reasoning over the LM context node and the KG subgraph
    (Yasunaga et al. 2021).

    Args:
        encoder_config, encoder_name_or_path, pooling, classifier_dropout, initializer_range:
            the text encoder (see :class:`~kelm.modeling.KelmLMConfig`).
        num_nodes, num_relations, node_dim, freeze_node_embeddings, graph_checksum: the graph
            (see :class:`~kelm.modeling.backbones.KelmGraphConfig`).
        gnn_dim: width of the node states (a multiple of ``gnn_heads``).
        gnn_layers: typed GAT layers (5, as in the paper).
        gnn_dropout: dropout on node inputs, between layers and on attention.
        gnn_heads: attention heads of each GAT layer.
        pool_heads: heads of the attention pooling (statement vector as query); divides
            ``gnn_dim``.
        score_basis: sinusoidal basis functions encoding the node relevance score.
        fc_dim: hidden width of the scoring MLP.
        statement_features: every node's extra features also carry its statement vector
            (projected), so each layer's attention reads the question from the first layer on.
        residual: residual scoring: the choice logit is the plain LM's linear head on the
            statement vector plus the graph module's contribution, whose last layer starts at
            zero, so at step 0 the model is its text baseline and training adds what the graph
            gives (``False``: one MLP over text and graph features, as in the papers).
    """

    model_type = "kelm_qagnn"

    gnn_layers: int = 5
    gnn_heads: int = 4
    pool_heads: int = 2
    score_basis: int = 32
    fc_dim: int = 200
    residual: bool = True
    statement_features: bool = True

    def validate_heads(self) -> None:
        for name in ("gnn_heads", "pool_heads", "score_basis", "fc_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gnn_heads", "pool_heads"):
            if self.gnn_dim % getattr(self, name):
                raise ValueError(
                    f"gnn_dim ({self.gnn_dim}) must be a multiple of {name} ({getattr(self, name)})"
                )


__all__ = ["QAGNNConfig"]
