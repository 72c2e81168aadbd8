"""Multiple-choice models in Hugging Face style, registered with the Auto classes at import.

* ``kelm_lm``: :class:`KelmLMConfig`, :class:`KelmLMForMultipleChoice` - the text baseline;
* ``kelm_kagnet``: :class:`KagnetConfig`, :class:`KagnetForMultipleChoice` - KagNet paths;
* ``kelm_qagnn``: :class:`QAGNNConfig`, :class:`QAGNNForMultipleChoice` - QA-GNN.

``import kelm.modeling`` makes ``AutoConfig`` / ``AutoModel`` /
``AutoModelForMultipleChoice.from_pretrained`` resolve saved kelm models::

    model = KelmLMForMultipleChoice.from_text_encoder()  # offline MiniLM, new head
    model.save_pretrained("runs/lm")  # config.json + model.safetensors
    model = AutoModelForMultipleChoice.from_pretrained("runs/lm")

Graph models: ``QAGNNForMultipleChoice.from_text_encoder(num_nodes=index.num_nodes,
num_relations=index.num_relations, node_dim=d, graph_checksum=index.checksum)``, then
``model.init_node_embeddings(entity_vectors, freeze=True)`` (KG embeddings, or
:func:`embed_node_names` of ``index.names.to_list()`` with ``node_dim`` = the encoder width).
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForMultipleChoice

from kelm.modeling.backbones import (
    default_text_encoder_path,
    embed_node_names,
    embed_texts,
    load_text_encoder,
    load_tokenizer,
)
from kelm.modeling.configuration_kagnet import KagnetConfig
from kelm.modeling.configuration_lm import KelmLMConfig
from kelm.modeling.configuration_qagnn import QAGNNConfig
from kelm.modeling.modeling_kagnet import KagnetForMultipleChoice, pad_paths
from kelm.modeling.modeling_lm import KelmLMForMultipleChoice
from kelm.modeling.modeling_qagnn import QAGNNForMultipleChoice

_MODELS = (
    (KelmLMConfig, KelmLMForMultipleChoice),
    (KagnetConfig, KagnetForMultipleChoice),
    (QAGNNConfig, QAGNNForMultipleChoice),
)
for _config, _model in _MODELS:
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForMultipleChoice.register(_config, _model, exist_ok=True)

__all__ = [
    "KagnetConfig",
    "KagnetForMultipleChoice",
    "KelmLMConfig",
    "KelmLMForMultipleChoice",
    "QAGNNConfig",
    "QAGNNForMultipleChoice",
    "default_text_encoder_path",
    "embed_node_names",
    "embed_texts",
    "load_text_encoder",
    "load_tokenizer",
    "pad_paths",
]
