"""The accelerate setup of a run: mixed precision that the CPU does not have is said."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from kelm.engine.runtime import make_accelerator


@pytest.fixture
def fresh_accelerate() -> Iterator[None]:
    """accelerate keeps one process-wide state, fixed by the first Accelerator: start and
    leave a clean one so that other tests' runs can choose their precision."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        yield
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize(("precision", "warned"), [("fp16", True), ("bf16", False), ("no", False)])
def test_fp16_on_the_cpu_is_said_to_run_in_float32(
    fresh_accelerate: None, caplog: pytest.LogCaptureFixture, precision: str, warned: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="kelm.engine.runtime"):
        accelerator = make_accelerator(cpu=True, mixed_precision=precision)
    assert accelerator.device.type == "cpu"
    assert ("fp16 has no effect on the CPU: this run computes in float32" in caplog.text) is warned
