"""kelm: knowledge-enhanced language modeling.

The pipeline, one subpackage per stage: ``graph`` -> ``linking`` -> ``retrieval`` ->
``modeling`` -> ``training`` -> ``evaluation``.
"""

__version__ = "0.1.0"

from kelm.errors import KelmError

__all__ = ["KelmError", "__version__"]
