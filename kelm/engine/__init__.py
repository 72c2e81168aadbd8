"""What every loop shares: the accelerate runtime and run directory (:mod:`~kelm.engine.runtime`),
checkpoints with exact resume (:mod:`~kelm.engine.checkpoint`), batching
(:mod:`~kelm.engine.batching`), the optimizer step and schedule (:mod:`~kelm.engine.optim`),
progress and logs (:mod:`~kelm.engine.logs`), training curves (:mod:`~kelm.engine.curves`) and
scoring a model over examples (:mod:`~kelm.engine.predict`).

``kelm train`` (:mod:`kelm.training`) and ``kelm pretrain`` (:mod:`kelm.pretraining`) are
siblings on it; neither imports the other.
"""
