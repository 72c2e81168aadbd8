"""Configuration of :class:`~kelm.modeling.modeling_kagnet.KagnetForMultipleChoice`."""

from huggingface_hub.dataclasses import strict

from kelm.modeling.backbones import KelmGraphConfig


@strict
class KagnetConfig(KelmGraphConfig):
    """KagNet-style path reasoning (Lin et al. 2019).

    Args:
        encoder_config, encoder_name_or_path, pooling, classifier_dropout, initializer_range:
            the text encoder (see :class:`~kelm.modeling.KelmLMConfig`).
        num_nodes, num_relations, node_dim, freeze_node_embeddings, graph_checksum: the graph
            (see :class:`~kelm.modeling.backbones.KelmGraphConfig`).
        gnn_dim: width of the concept vectors (node table projection and the schema-graph
            GCN states).
        gnn_layers: relational GCN layers over the statement's schema graph (0 is not allowed;
            pass no ``graphs`` to skip the GCN).
        gnn_dropout: dropout in the GCN, the path encoder and on the concept vectors.
        relation_dim: width of the relation embeddings (``2R`` rows: forward then inverse).
        freeze_relation_embeddings: keep the relation table fixed in training.
        num_bases: basis decomposition of the GCN relation weights (``None``: full matrices).
        path_dim: hidden size of the path LSTM (and of the attention spaces).
        max_hops: ``K``, the longest path (path tensors are ``[*, K + 1]`` nodes, ``[*, K]``
            relations).
        fc_dim: hidden width of the scoring MLP.
        statement_paths: the path LSTM starts from a state computed from the statement vector
            (``False``: from zeros, as in the paper).
        schema_gcn: contextualise the concepts of the statement's subgraph with the relational
            GCN (``False``: every path concept is its projected node table vector and the
            ``graphs`` are not read; on CommonsenseQA the GCN's per-statement states overfit:
            see ``configs/csqa-kagnet.yaml``).
        residual: residual scoring: the choice logit is the plain LM's linear head on the
            statement vector plus the graph module's contribution, whose last layer starts at
            zero, so at step 0 the model is its text baseline and training adds what the graph
            gives (``False``: one MLP over text and graph features, as in the papers).
    """

    model_type = "kelm_kagnet"

    relation_dim: int = 100
    freeze_relation_embeddings: bool = False
    num_bases: int | None = None
    path_dim: int = 128
    max_hops: int = 3
    fc_dim: int = 200
    residual: bool = True
    statement_paths: bool = True
    schema_gcn: bool = True

    def validate_paths(self) -> None:
        for name in ("relation_dim", "path_dim", "max_hops", "fc_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


__all__ = ["KagnetConfig"]
