"""Training: the hardware plan, the optimizer registry, the loss, the loop's callbacks, the Trainer, export.

``Trainer`` (``training.trainer``) is the only place a run's recipe is written. This package's
``__init__`` imports nothing, so the settings schema can read the optimizer registry without
loading TensorFlow.
"""
