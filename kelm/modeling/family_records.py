"""kelm's own model families, one :class:`~kelm.modeling.families.ModelFamily` record each.

``lm`` (text baseline), ``kagnet`` (paths), ``qagnn`` (GNN over the subgraph), ``gsc`` (the
graph soft counter), ``ernie`` (token-entity fusion) and ``gpt`` (GPT-1 transfer format on a
causal LM). Importing
:mod:`kelm.modeling` registers them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

from kelm.errors import KelmError
from kelm.modeling.configuration_ernie import KelmErnieConfig
from kelm.modeling.configuration_gpt import KelmGPTConfig
from kelm.modeling.configuration_gsc import GSCConfig
from kelm.modeling.configuration_kagnet import KagnetConfig
from kelm.modeling.configuration_lm import KelmLMConfig
from kelm.modeling.configuration_qagnn import QAGNNConfig
from kelm.modeling.encoders import load_tokenizer, quiet_transformers, resolve_encoder
from kelm.modeling.families import BuildContext, ModelFamily, register_family
from kelm.modeling.modeling_ernie import (
    KelmErnieForMultipleChoice,
    KelmErnieForPreTraining,
    KelmErnieForSequenceClassification,
    KelmErnieModel,
)
from kelm.modeling.modeling_gpt import KelmGPTForMultipleChoice, load_gpt_tokenizer
from kelm.modeling.modeling_gsc import GSCForMultipleChoice
from kelm.modeling.modeling_kagnet import KagnetForMultipleChoice
from kelm.modeling.modeling_lm import KelmLMForMultipleChoice
from kelm.modeling.modeling_qagnn import QAGNNForMultipleChoice

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _encoder_tokenizer(name: str | None) -> Any:
    return load_tokenizer(resolve_encoder(name))


def _head_settings(settings: Any) -> dict[str, Any]:
    return {"pooling": settings.pooling, "classifier_dropout": settings.classifier_dropout}


def _graph_settings(settings: Any, context: BuildContext) -> dict[str, Any]:
    """The node-table and GNN settings shared by the subgraph families."""
    graph = context.graph
    assert graph is not None, "a subgraph family is built with its graph"
    kwargs: dict[str, Any] = {
        "num_nodes": graph.num_nodes,
        "num_relations": graph.num_relations,
        "node_dim": context.node_dim,
        "graph_checksum": graph.checksum,
        "gnn_dim": settings.gnn_dim,
        "gnn_dropout": settings.gnn_dropout,
        "fc_dim": settings.fc_dim,
        "residual": settings.residual,
        "freeze_node_embeddings": settings.freeze_node_embeddings,
    }
    if settings.gnn_layers is not None:
        kwargs["gnn_layers"] = settings.gnn_layers
    return kwargs


def build_lm(settings: Any, context: BuildContext) -> KelmLMForMultipleChoice:
    return KelmLMForMultipleChoice.from_text_encoder(context.encoder, **_head_settings(settings))


def build_kagnet(settings: Any, context: BuildContext) -> KagnetForMultipleChoice:
    kge = context.kge
    relation_dim = settings.relation_dim or (int(kge.relation.shape[1]) if kge else 100)
    model = KagnetForMultipleChoice.from_text_encoder(
        context.encoder,
        **_head_settings(settings),
        **_graph_settings(settings, context),
        relation_dim=relation_dim,
        path_dim=settings.path_dim,
        statement_paths=settings.statement_paths,
        schema_gcn=settings.schema_gcn,
        max_hops=context.max_hops,
    )
    context.init_nodes(model, model.init_node_embeddings)
    if kge is not None and kge.relation.shape[1] == model.config.relation_dim:
        model.init_relation_embeddings(kge.relation, freeze=settings.freeze_node_embeddings)
    return model


def build_qagnn(settings: Any, context: BuildContext) -> QAGNNForMultipleChoice:
    model = QAGNNForMultipleChoice.from_text_encoder(
        context.encoder,
        **_head_settings(settings),
        **_graph_settings(settings, context),
        gnn_heads=settings.gnn_heads,
        pool_heads=settings.pool_heads,
        statement_features=settings.statement_features,
    )
    context.init_nodes(model, model.init_node_embeddings)
    return model


def build_gsc(settings: Any, context: BuildContext) -> GSCForMultipleChoice:
    """GSC reads edge and node types only: no node table, so ``node_init`` does not apply."""
    graph = context.graph
    assert graph is not None, "gsc is built with its graph"
    kwargs: dict[str, Any] = {"fc_dim": settings.fc_dim}
    if settings.gnn_layers is not None:
        kwargs["gsc_layers"] = settings.gnn_layers
    return GSCForMultipleChoice.from_text_encoder(
        context.encoder,
        **_head_settings(settings),
        num_relations=graph.num_relations,
        graph_checksum=graph.checksum,
        **kwargs,
    )


def _ernie_run_config(encoder: str) -> KelmErnieConfig | None:
    """The config of ``encoder`` when it is a kelm ERNIE model folder (a ``kelm pretrain``
    ERNIE run's ``model/``), else ``None``."""
    path = Path(encoder)
    if not (path / "config.json").is_file():
        return None
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get(
            "model_type"
        )
    except (OSError, ValueError, AttributeError):
        return None
    if model_type != KelmErnieConfig.model_type:
        return None
    return KelmErnieConfig.from_pretrained(path)


def _ernie_from_pretraining(
    settings: Any, context: BuildContext, pretrained: KelmErnieConfig
) -> KelmErnieForMultipleChoice:
    """ERNIE fine-tuned from a ``kelm pretrain`` ERNIE run: the backbone, the fusion layers and
    the entity table it was pretrained with are loaded (the table is not re-initialised: the
    fusion learned to read those vectors); the scoring head starts new. The fusion's shape
    (knowledge layers, entity heads and widths) is the pretrained model's, whatever the run's
    settings say. The run's graph must be the one the pretraining linked to, as entity ids
    are node ids."""
    graph = context.graph
    assert graph is not None, "ernie is built with its graph"
    if pretrained.graph_checksum and pretrained.graph_checksum != graph.checksum:
        raise KelmError(
            f"model.encoder {context.encoder}: an ERNIE pretrained on another graph (checksum "
            f"{pretrained.graph_checksum[:12]}) than this run's ({graph.checksum[:12]}); "
            "entity ids are node ids, so fine-tune it on the graph it was pretrained with"
        )
    if pretrained.num_entities != graph.num_nodes:
        raise KelmError(
            f"model.encoder {context.encoder}: {pretrained.num_entities:,} entities, the "
            f"graph has {graph.num_nodes:,} nodes"
        )
    try:
        # the library's loading report would list the new head's weights as missing: expected
        with quiet_transformers():
            model = KelmErnieForMultipleChoice.from_pretrained(
                context.encoder,
                **_head_settings(settings),
                freeze_entity_embeddings=settings.freeze_node_embeddings,
                entity_scoring=settings.entity_scoring,
                entity_scoring_dim=settings.fc_dim,
            )
    except OSError as exc:
        raise KelmError(f"cannot load the ERNIE model in {context.encoder}: {exc}") from None
    model.config.architectures = None  # save_pretrained writes this class
    return model


def build_ernie(settings: Any, context: BuildContext) -> KelmErnieForMultipleChoice:
    graph = context.graph
    assert graph is not None, "ernie is built with its graph"
    pretrained = _ernie_run_config(context.encoder)
    if pretrained is not None:
        return _ernie_from_pretraining(settings, context, pretrained)
    model = KelmErnieForMultipleChoice.from_text_encoder(
        context.encoder,
        **_head_settings(settings),
        num_entities=graph.num_nodes,
        entity_dim=context.node_dim,
        entity_hidden_size=settings.entity_hidden_size,
        entity_attention_heads=settings.entity_heads,
        num_knowledge_layers=settings.knowledge_layers,
        graph_checksum=graph.checksum,
        freeze_entity_embeddings=settings.freeze_node_embeddings,
        entity_scoring=settings.entity_scoring,
        entity_scoring_dim=settings.fc_dim,
    )
    context.init_nodes(model, model.init_entity_embeddings)
    return model


def build_gpt(settings: Any, context: BuildContext) -> KelmGPTForMultipleChoice:
    """The GPT-1-style model on ``settings.encoder`` (a causal LM), its embeddings grown to the
    tokenizer's transfer tokens."""
    model = KelmGPTForMultipleChoice.from_causal_lm(
        settings.encoder,
        tokenizer=context.tokenizer,
        lm_loss_weight=settings.lm_loss_weight,
        classifier_dropout=settings.classifier_dropout,
    )
    window = model.max_positions
    if window is not None and context.max_length > window:
        raise KelmError(
            f"config: 'data.max_length' ({context.max_length}) exceeds the causal LM's context "
            f"window ({window} tokens)"
        )
    return model


LM = register_family(
    ModelFamily(
        name="lm",
        config_class=KelmLMConfig,
        model_class=KelmLMForMultipleChoice,
        inputs=(*TEXT_INPUTS, "statement_vectors"),
        build=build_lm,
        load_tokenizer=_encoder_tokenizer,
        description="text baseline: a pretrained encoder and a scoring head",
    )
)
KAGNET = register_family(
    ModelFamily(
        name="kagnet",
        config_class=KagnetConfig,
        model_class=KagnetForMultipleChoice,
        inputs=(
            *TEXT_INPUTS,
            "statement_vectors",
            "graphs",
            "path_nodes",
            "path_rels",
            "path_mask",
        ),
        needs=frozenset({"subgraph", "paths"}),
        build=build_kagnet,
        load_tokenizer=_encoder_tokenizer,
        description="KagNet: GCN over the subgraph, LSTM over question-answer paths",
    )
)
QAGNN = register_family(
    ModelFamily(
        name="qagnn",
        config_class=QAGNNConfig,
        model_class=QAGNNForMultipleChoice,
        inputs=(*TEXT_INPUTS, "statement_vectors", "graphs"),
        needs=frozenset({"subgraph"}),
        build=build_qagnn,
        load_tokenizer=_encoder_tokenizer,
        description="QA-GNN: relation-typed attention over the subgraph with a context node",
    )
)
GSC = register_family(
    ModelFamily(
        name="gsc",
        config_class=GSCConfig,
        model_class=GSCForMultipleChoice,
        inputs=(*TEXT_INPUTS, "statement_vectors", "graphs"),
        needs=frozenset({"subgraph"}),
        build=build_gsc,
        load_tokenizer=_encoder_tokenizer,
        node_table=False,
        description="GSC: text MLP plus a soft count of typed edges at the context node",
    )
)
ERNIE = register_family(
    ModelFamily(
        name="ernie",
        config_class=KelmErnieConfig,
        model_class=KelmErnieForMultipleChoice,
        inputs=(*TEXT_INPUTS, "entity_ids", "t_encoder_states"),
        needs=frozenset({"entities"}),
        # ERNIE fuses TransE vectors trained on the graph (Zhang et al. 2019): names of
        # made-up (and many real) nodes say nothing about their edges
        default_node_init="graph",
        build=build_ernie,
        load_tokenizer=_encoder_tokenizer,
        auto_classes=(
            (AutoModel, KelmErnieModel),
            (AutoModelForPreTraining, KelmErnieForPreTraining),
            (AutoModelForSequenceClassification, KelmErnieForSequenceClassification),
        ),
        description="ERNIE: token-entity fusion layers inside the encoder",
    )
)
GPT = register_family(
    ModelFamily(
        name="gpt",
        config_class=KelmGPTConfig,
        model_class=KelmGPTForMultipleChoice,
        inputs=("input_ids", "attention_mask", "choice_mask"),
        build=build_gpt,
        load_tokenizer=load_gpt_tokenizer,
        description="GPT-1 transfer format on a causal LM, auxiliary LM loss",
    )
)

__all__ = ["ERNIE", "GPT", "GSC", "KAGNET", "LM", "QAGNN"]
