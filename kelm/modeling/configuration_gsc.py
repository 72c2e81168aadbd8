"""Configuration of :class:`~kelm.modeling.modeling_gsc.GSCForMultipleChoice`."""

from huggingface_hub.dataclasses import strict

from kelm.modeling.backbones import KelmBaseConfig


@strict
class GSCConfig(KelmBaseConfig):
    """The graph soft counter (Wang et al., ICLR 2022, "GNN is a Counter? Revisiting GNN for
    Question Answering"): a text score plus a count of typed edges around the context node.

    Args:
        encoder_config, encoder_name_or_path, pooling, classifier_dropout, initializer_range:
            the text encoder (see :class:`~kelm.modeling.KelmLMConfig`).
        num_relations: forward relations ``R`` of the graph index (edge types: ``2R`` index
            relations and 4 context types, as for QA-GNN).
        graph_checksum: checksum of the graph index the model was built for.
        gsc_layers: counting layers ``k`` (2 in the paper).
        edge_hidden: hidden width of the edge encoder and of the score rescaling MLP.
        fc_dim: hidden width of the text scoring MLP.
    """

    model_type = "kelm_gsc"

    num_relations: int = 1
    graph_checksum: str = ""
    gsc_layers: int = 2
    edge_hidden: int = 32
    fc_dim: int = 200

    @property
    def num_edge_types(self) -> int:
        """``2R`` index relations plus the four context edge types."""
        return 2 * self.num_relations + 4

    def validate_sizes(self) -> None:
        for name in ("num_relations", "gsc_layers", "edge_hidden", "fc_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


__all__ = ["GSCConfig"]
