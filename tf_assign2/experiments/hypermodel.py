"""The keras-tuner HyperModel of ``python -m tf_assign2.tune``: what one trial builds and trains.

``experiments.tune`` declares the search (space, tuner, project folder) and imports this module when a
search starts, so that the command answers ``--help`` and bad input without loading TensorFlow.
"""

import dataclasses
import math

import keras_tuner

from tf_assign2.experiments.tune import (
    OBJECTIVE,
    custom_gradient_names,
    declare,
    describe_values,
    forget_custom_gradients,
    trial_config,
)


class SearchHyperModel(keras_tuner.HyperModel):
    """What one trial builds and trains.

    Both steps go through the shared ``Trainer`` (``build_model``/``compile``, then ``fit``), so a
    trial's model and training are exactly those of a normal run of the same settings. The trials
    see the train and validation splits only: the Trainer is given no test split.
    """

    def __init__(self, base, space, arrays, info, worker=None):
        super().__init__(name=f"{base.task}-search")
        self.base, self.space, self.info, self.worker = base, space, info, worker
        self.arrays = dataclasses.replace(arrays, test_x=arrays.test_x[:0], test_y=arrays.test_y[:0])
        self.trials_run = 0
        self.gradients_before = custom_gradient_names()
        self.total, self.done_before, self.seconds = None, 0, 0.0  # for 'trial 3/10 ... about 2 min left'

    def progress(self, seconds):
        """'trial 3/10' and the time left for the search (when its number of trials is known)."""
        self.seconds += seconds
        number = self.done_before + self.trials_run
        if not self.total:
            return f"trial {number}", ""
        left = max(self.total - number, 0) * self.seconds / self.trials_run
        return f"trial {number}/{self.total}", (f"; about {left / 60:.0f} min left" if left >= 90 else
                                                f"; about {left:.0f} s left" if left else "")

    def trainer(self, hp):
        from tf_assign2.training.trainer import Trainer

        values = {name: declare(hp, name, spec) for name, spec in self.space.items()}
        return Trainer(trial_config(self.base, values), self.arrays, self.info)

    def build(self, hp):
        trainer = self.trainer(hp)
        # keras-tuner has just cleared the Keras session; the earlier trials' graphs can go too.
        forget_custom_gradients(self.gradients_before)
        return trainer.compile(trainer.build_model())  # seeded: every trial starts alike, a fair comparison

    def fit(self, hp, model, train_x, train_y, val_x, val_y, epochs=None, initial_epoch=0, callbacks=(), verbose=2):
        """Train one trial; returns the metrics keras-tuner records (val_accuracy NaN if it diverged)."""
        from tf_assign2.training.callbacks import resident_memory_mb

        trainer = self.trainer(hp)
        result = trainer.fit(model, epochs=epochs or trainer.config.epochs, initial_epoch=initial_epoch,
                             callbacks=callbacks, train=(train_x, train_y), validation=(val_x, val_y),
                             verbose=verbose)
        losses = result.history.get("loss", [])
        diverged = result.divergence is not None
        accuracies = [v for v in result.history.get(OBJECTIVE, []) if math.isfinite(v)]
        metrics = {
            OBJECTIVE: float("nan") if diverged or not accuracies else max(accuracies),
            "epochs": float(initial_epoch + len(losses)),
            "seconds": round(result.seconds, 2),
            "rss_mb": resident_memory_mb(),
            "diverged": float(diverged),
        }
        self.trials_run += 1
        where = f" on {self.worker}" if self.worker else ""
        outcome = "diverged" if diverged else f"{OBJECTIVE} {metrics[OBJECTIVE]:.4f}"
        position, left = self.progress(result.seconds)
        print(f"{position} done{where}: {outcome} after {len(losses)} epochs in {result.seconds:.1f} s "
              f"({describe_values(hp.values)}){left}", flush=True)
        return metrics
