"""Multiple-choice models in Hugging Face style, registered with the Auto classes at import.

* ``kelm_lm``: :class:`KelmLMConfig`, :class:`KelmLMForMultipleChoice` - the text baseline;
* ``kelm_kagnet``: :class:`KagnetConfig`, :class:`KagnetForMultipleChoice` - KagNet paths;
* ``kelm_qagnn``: :class:`QAGNNConfig`, :class:`QAGNNForMultipleChoice` - QA-GNN;
* ``kelm_ernie``: :class:`KelmErnieConfig`, :class:`KelmErnieModel` (``AutoModel``),
  :class:`KelmErnieForPreTraining` (``AutoModelForPreTraining``),
  :class:`KelmErnieForSequenceClassification`, :class:`KelmErnieForMultipleChoice` - the
  ERNIE-style knowledgeable encoder (token-entity fusion layers);
* ``kelm_gsc``: :class:`GSCConfig`, :class:`GSCForMultipleChoice` - the graph soft counter;
* ``kelm_gpt``: :class:`KelmGPTConfig`, :class:`KelmGPTForMultipleChoice` - GPT-1-style
  multiple choice on any causal LM (transfer format, extract-token head, auxiliary LM loss).

:func:`halve_encoder` builds a DistilBERT-style student (every other teacher layer).

Each family is one record of the registry :mod:`kelm.modeling.families` (classes, the inputs
its examples need, its builder; kelm's own in :mod:`kelm.modeling.family_records`).
``import kelm.modeling`` registers them, which makes ``AutoConfig`` / ``AutoModel`` /
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

from kelm.modeling.configuration_ernie import KelmErnieConfig
from kelm.modeling.configuration_gpt import KelmGPTConfig
from kelm.modeling.configuration_gsc import GSCConfig
from kelm.modeling.configuration_kagnet import KagnetConfig
from kelm.modeling.configuration_lm import KelmLMConfig
from kelm.modeling.configuration_qagnn import QAGNNConfig
from kelm.modeling.encoders import (
    default_text_encoder_path,
    embed_node_names,
    embed_texts,
    halve_encoder,
    load_text_encoder,
    load_tokenizer,
    resolve_encoder,
)
from kelm.modeling.families import (
    BuildContext,
    ModelFamily,
    family_names,
    family_of,
    get_family,
    register_family,
)
from kelm.modeling.family_records import ERNIE, GPT, GSC, KAGNET, LM, QAGNN  # registers them
from kelm.modeling.modeling_ernie import (
    KelmErnieForMultipleChoice,
    KelmErnieForPreTraining,
    KelmErnieForSequenceClassification,
    KelmErnieModel,
)
from kelm.modeling.modeling_gpt import KelmGPTForMultipleChoice
from kelm.modeling.modeling_gsc import GSCForMultipleChoice
from kelm.modeling.modeling_kagnet import KagnetForMultipleChoice, pad_paths
from kelm.modeling.modeling_lm import KelmLMForMultipleChoice
from kelm.modeling.modeling_qagnn import QAGNNForMultipleChoice

__all__ = [
    "ERNIE",
    "GPT",
    "GSC",
    "GSCConfig",
    "GSCForMultipleChoice",
    "KAGNET",
    "LM",
    "QAGNN",
    "BuildContext",
    "ModelFamily",
    "family_names",
    "family_of",
    "get_family",
    "register_family",
    "KagnetConfig",
    "KagnetForMultipleChoice",
    "KelmErnieConfig",
    "KelmErnieForMultipleChoice",
    "KelmErnieForPreTraining",
    "KelmErnieForSequenceClassification",
    "KelmErnieModel",
    "KelmGPTConfig",
    "KelmGPTForMultipleChoice",
    "KelmLMConfig",
    "KelmLMForMultipleChoice",
    "QAGNNConfig",
    "QAGNNForMultipleChoice",
    "default_text_encoder_path",
    "embed_node_names",
    "embed_texts",
    "halve_encoder",
    "load_text_encoder",
    "load_tokenizer",
    "pad_paths",
    "resolve_encoder",
]
