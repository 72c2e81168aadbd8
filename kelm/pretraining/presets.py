"""Model-size presets of the plain model families, for ``model.from_scratch`` runs.

``objective_options.preset: bert-base`` sets the architecture sizes of the model an objective
builds from a config; ``model.config_overrides`` still win over the preset (so
``preset: bert-base`` with ``config_overrides: {num_hidden_layers: 6}`` is a 6-layer BERT-base).
Sizes are given in BERT's vocabulary (``hidden_size``, ``num_hidden_layers``,
``num_attention_heads``, ``intermediate_size``, ``max_position_embeddings``, ALBERT/ELECTRA's
``embedding_size``) and translated to each family's config names (GPT-2's ``n_embd``...) by
:func:`apply_preset`. The vocabulary size always comes from the tokenizer.

Sources: BERT-base/large (Devlin et al. 2019, Sec. 3); the small BERTs (Turc et al. 2019,
"Well-Read Students Learn Better", the 24 released sizes: tiny L2/H128, mini L4/H256, small
L4/H512, medium L8/H512); ALBERT (Lan et al. 2020, Table 1: E=128 for every size); ELECTRA
(Clark et al. 2020, Table 6 in Appendix A: Small L12/H256/A4/E128, Base L12/H768, Large
L24/H1024, and the generator size as a fraction of the discriminator's hidden size, FFN size
and heads: 1/4 Small, 1/3 Base, 1/4 Large); GPT-1 (Radford et al. 2018: 12 layers, 768 wide,
12 heads, 512 positions); GPT-2 (Radford et al. 2019, Table 2); GPT-3 (Brown et al. 2020,
Table 2.1, the three smallest); TinyBERT (Jiao et al. 2020: TinyBERT-4 L4/H312/A12/FFN 1200,
TinyBERT-6 L6/H768). The ``*-tiny`` presets are kelm's test and benchmark sizes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kelm.errors import KelmError

_ARCH_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "embedding_size",
)


def _enc(layers: int, hidden: int, heads: int, ffn: int, **extra: Any) -> dict[str, Any]:
    return {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        **extra,
    }


PRESETS: dict[str, dict[str, Any]] = {
    # BERT (mlm, distill / tinybert teachers and students)
    "bert-tiny": _enc(2, 128, 2, 512, family="bert"),
    "bert-mini": _enc(4, 256, 4, 1024, family="bert"),
    "bert-small": _enc(4, 512, 8, 2048, family="bert"),
    "bert-medium": _enc(8, 512, 8, 2048, family="bert"),
    "bert-base": _enc(12, 768, 12, 3072, family="bert", max_position_embeddings=512),
    "bert-large": _enc(24, 1024, 16, 4096, family="bert", max_position_embeddings=512),
    # ALBERT (sop): factorised embedding of width E
    "albert-tiny": _enc(2, 128, 2, 512, family="albert", embedding_size=32),
    "albert-base": _enc(12, 768, 12, 3072, family="albert", embedding_size=128),
    "albert-large": _enc(24, 1024, 16, 4096, family="albert", embedding_size=128),
    "albert-xlarge": _enc(24, 2048, 16, 8192, family="albert", embedding_size=128),
    "albert-xxlarge": _enc(12, 4096, 64, 16384, family="albert", embedding_size=128),
    # ELECTRA (rtd): the discriminator's sizes and the generator fraction
    "electra-tiny": _enc(
        2, 128, 4, 512, family="electra", embedding_size=64, generator_fraction=0.25
    ),
    "electra-small": _enc(
        12, 256, 4, 1024, family="electra", embedding_size=128, generator_fraction=0.25
    ),
    "electra-base": _enc(
        12, 768, 12, 3072, family="electra", embedding_size=768, generator_fraction=1 / 3
    ),
    "electra-large": _enc(
        24, 1024, 16, 4096, family="electra", embedding_size=1024, generator_fraction=0.25
    ),
    # GPT (clm)
    "gpt-tiny": _enc(2, 128, 2, 512, family="gpt", max_position_embeddings=128),
    "gpt1": _enc(12, 768, 12, 3072, family="gpt", max_position_embeddings=512),
    "gpt2-small": _enc(12, 768, 12, 3072, family="gpt", max_position_embeddings=1024),
    "gpt2-medium": _enc(24, 1024, 16, 4096, family="gpt", max_position_embeddings=1024),
    "gpt2-large": _enc(36, 1280, 20, 5120, family="gpt", max_position_embeddings=1024),
    "gpt3-small": _enc(12, 768, 12, 3072, family="gpt", max_position_embeddings=2048),
    "gpt3-medium": _enc(24, 1024, 16, 4096, family="gpt", max_position_embeddings=2048),
    "gpt3-large": _enc(24, 1536, 16, 6144, family="gpt", max_position_embeddings=2048),
    # TinyBERT students (tinybert)
    "tinybert-4": _enc(4, 312, 12, 1200, family="bert"),
    "tinybert-6": _enc(6, 768, 12, 3072, family="bert"),
}
"""Preset name -> sizes (``family`` says which objective they are meant for)."""


def preset_names(family: str | None = None) -> list[str]:
    """The preset names (of one ``family``: bert, albert, electra, gpt), sorted."""
    return sorted(k for k, v in PRESETS.items() if family is None or v["family"] == family)


def get_preset(name: str) -> dict[str, Any]:
    """The sizes of preset ``name`` (a copy).

    Raises:
        KelmError: unknown name (the message lists the valid ones).
    """
    if name not in PRESETS:
        raise KelmError(
            f"config: objective_options.preset: unknown preset {name!r}; valid presets: "
            f"{', '.join(preset_names())}"
        )
    return dict(PRESETS[name])


# GPT configs name some sizes differently; GPT2Config maps hidden_size/num_hidden_layers/
# num_attention_heads/max_position_embeddings itself (attribute_map), not the FFN width
_FFN_NAME = {"gpt2": "n_inner", "openai-gpt": None}


def apply_preset(config: Any, name: str | None, *, keep: Iterable[str] = ()) -> Any:
    """Set the architecture sizes of preset ``name`` on a transformers config, in place.

    Args:
        config: a ``PretrainedConfig`` (BERT, ALBERT, ELECTRA, GPT-2, GPT-1...).
        name: the preset (``None``: nothing changes).
        keep: keys not to change (the run's ``model.config_overrides``, which win).

    Returns:
        ``config``.
    """
    if not name:
        return config
    sizes = get_preset(name)
    kept = set(keep)
    for key in _ARCH_KEYS:
        if key not in sizes or key in kept:
            continue
        value = sizes[key]
        if key == "intermediate_size" and config.model_type in _FFN_NAME:
            target = _FFN_NAME[config.model_type]
            if target is not None:
                setattr(config, target, value)
            continue
        if key == "embedding_size" and not hasattr(config, "embedding_size"):
            continue
        setattr(config, key, value)
    return config


def count_parameters(model: Any) -> int:
    """Distinct trainable-or-not parameters of a module (a tensor shared by several modules,
    e.g. ALBERT's shared layers or a tied output embedding, counts once)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["PRESETS", "apply_preset", "count_parameters", "get_preset", "preset_names"]
