"""Re-exports the tiny training inputs of ``tests/training/training_fixtures.py``.

A plain module (imported by the tests), not a conftest: ``tests/conftest.py`` owns that name.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from training_fixtures import (  # noqa: E402
    QUESTIONS,
    one_line_error,
    qa_record,
    tiny_config,
    train_run,
    write_qa,
)

__all__ = ["QUESTIONS", "one_line_error", "qa_record", "tiny_config", "train_run", "write_qa"]
