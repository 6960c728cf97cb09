"""The learning rate of ``--schedule``, over a run's steps: constant (the starters'), cosine or onecycle.

``--warmup F`` makes the rate of the first fraction F of the steps climb linearly from lr/10 to
``--lr``: for cosine through Keras' own warm-up (``CosineDecay(warmup_target=...)``), for onecycle
as the rising half of its triangle. Schedules are functions of the optimizer's step count, which a
resumed run restores with the optimizer, so it continues on the same curve.
"""

import keras

WARMUP_START = 0.1  # warm-ups start at lr / 10


def learning_rate(config, total_steps):
    """``--lr`` as given, or the ``--schedule`` of ``config`` over a run of ``total_steps`` steps."""
    if config.schedule == "constant":
        return config.lr
    warmup = warmup_steps(config.warmup, total_steps)
    if config.schedule == "onecycle":
        return OneCycle(config.lr, total_steps, warmup)
    if not warmup:  # the cosine decay as it always was
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(config.lr * WARMUP_START, decay_steps=total_steps - warmup,
                                                  warmup_target=config.lr, warmup_steps=warmup)


def warmup_steps(fraction, total_steps):
    """The steps of a warm-up over ``fraction`` of the run, rounded down; at least one step is left to decay."""
    return max(0, min(int(fraction * total_steps), total_steps - 1))


@keras.saving.register_keras_serializable(package="tf_assign2")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle rate of fast.ai and airbench, as a triangle: linear from ``peak / 10`` at step 0
    to ``peak`` at ``warmup_steps``, then linear down to 0 at ``total_steps`` (the last step still
    trains, at ``peak / (total_steps - warmup_steps)``).

    Keras has no linear warm-up-then-decay schedule (``CosineDecay`` decays along a cosine,
    ``PolynomialDecay`` has no warm-up); the high middle of the run is what lets a short run take
    large steps safely. Registered, so a saved model.keras loads with its optimizer.
    """

    def __init__(self, peak, total_steps, warmup_steps, start=WARMUP_START):
        super().__init__()
        self.peak, self.total_steps, self.warmup_steps, self.start = float(peak), int(total_steps), int(warmup_steps), float(start)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rising = self.peak * (self.start + (1.0 - self.start) * step / max(self.warmup_steps, 1))
        falling = self.peak * (self.total_steps - step) / (self.total_steps - self.warmup_steps)
        return keras.ops.where(step < self.warmup_steps, rising, keras.ops.maximum(falling, 0.0))

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "start": self.start}
