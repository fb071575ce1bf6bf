"""Training engine: config, optimizer / schedule / EMA, the trainer, checkpoints, DDP helpers.

Modules (import what you need; nothing here is imported eagerly so that ``posedistill.engine.config`` stays light):

- :mod:`~posedistill.engine.config`: YAML -> typed dataclasses, ``--set`` overrides, one ``base:`` level.
- :mod:`~posedistill.engine.optim`: AdamW / Adam / SGD with the no-decay split for norms and biases.
- :mod:`~posedistill.engine.schedule`: per-iteration warm-up + constant / cosine / step learning rate.
- :mod:`~posedistill.engine.ema`: mmengine's ``ExpMomentumEMA``.
- :mod:`~posedistill.engine.trainer`: the loop (AMP, grad clipping, aug switch, validation, exact resume, DDP).
- :mod:`~posedistill.engine.checkpoint`: ``weights.safetensors`` + ``meta.json`` (+ ``state.pt``) folders;
  ``load_model_from_checkpoint``.
- :mod:`~posedistill.engine.evaluation`: predict a dataset, map to image pixels, score.
- :mod:`~posedistill.engine.builders`: config -> method, datasets.
- :mod:`~posedistill.engine.distributed`: torchrun process-group helpers.
- :mod:`~posedistill.engine.metrics_log`: ``metrics.jsonl`` (+ TensorBoard when installed).
"""
