"""The optimizer registry: the names ``--optimizer`` takes, each a Keras optimizer class and how to call it.

Every optimizer gets ``--clipnorm`` (the global gradient norm: the usual remedy for RNN gradient
spikes) and ``--ema`` (an exponential moving average of the weights) as Keras' own keyword
arguments; an entry adds its fixed arguments and the settings it reads (``momentum`` for the
assignment's "momentum"). Classes are named as "module:Class" and imported when an optimizer is
made, so the schema reads these names without loading TensorFlow.

The registry is open: ``register_optimizer`` (also ``tf_assign2.register_optimizer``) adds one from
a notebook, e.g. ``register_optimizer("lion", keras.optimizers.Lion)``; train, sweep and tune (as a
choice of the ``optimizer`` hyperparameter) then accept it by name.
"""

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from tf_assign2.errors import UsageError
from tf_assign2.registry import check_new_name


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    make: object  # a Keras optimizer class (or any callable (learning_rate, **kwargs)), or "module:Class"
    fixed: dict = dataclasses.field(default_factory=dict)  # keyword arguments it is always given
    settings: dict = dataclasses.field(default_factory=dict)  # setting name -> the keyword argument it sets

    def factory(self):
        if isinstance(self.make, str):
            module, name = self.make.split(":")
            return getattr(importlib.import_module(module), name)
        return self.make


OPTIMIZERS = {
    # Keras' Adam with TensorFlow's fused update kernel: the same steps, faster (training/fused_adam.py).
    "adam": OptimizerSpec("tf_assign2.training.fused_adam:FusedAdam"),
    "sgd": OptimizerSpec("keras.optimizers:SGD"),
    # The assignment's "momentum": SGD with momentum (--momentum, 0.9).
    "momentum": OptimizerSpec("keras.optimizers:SGD", settings={"momentum": "momentum"}),
    "adagrad": OptimizerSpec("keras.optimizers:Adagrad"),
    "rmsprop": OptimizerSpec("keras.optimizers:RMSprop"),
    "adamw": OptimizerSpec("keras.optimizers:AdamW"),
}
BUILT_IN = frozenset(OPTIMIZERS)


def register_optimizer(name: str, optimizer: Callable, replace: bool = False, **fixed: Any) -> OptimizerSpec:
    """Make ``optimizer`` usable as ``--optimizer NAME`` / ``settings(..., optimizer=NAME)`` in this process.

    ``optimizer`` is a Keras optimizer class, or any callable taking the learning rate (a number or
    a schedule) and Keras' optimizer keyword arguments; ``fixed`` are keyword arguments it always
    gets (``register_optimizer("nesterov", keras.optimizers.SGD, momentum=0.9, nesterov=True)``).
    A second registration of a name is refused, unless ``replace=True`` replaces your own.
    """
    check_new_name("register_optimizer", "an optimizer", name, OPTIMIZERS, BUILT_IN, replace)
    if not callable(optimizer):
        raise UsageError(f"register_optimizer {name!r}: expected a Keras optimizer class, got {optimizer!r}")
    OPTIMIZERS[name] = OptimizerSpec(optimizer, fixed=dict(fixed))
    return OPTIMIZERS[name]


def common_arguments(config):
    """Keras' own optimizer keyword arguments for ``--clipnorm`` and ``--ema``.

    ``--ema`` is Keras' weight averaging (``use_ema``): after every step the optimizer updates
    ``average = ema * average + (1 - ema) * weight`` in variables of its own, which the per-epoch
    backup saves with its other state, so an averaged run resumes exactly. ``Trainer`` swaps the
    averages in for evaluation; Keras writes them into the model when ``fit`` ends.
    """
    arguments = {}
    if config.clipnorm:
        arguments["global_clipnorm"] = config.clipnorm
    if config.ema:
        arguments.update(use_ema=True, ema_momentum=config.ema)
    return arguments


def make_optimizer(config, learning_rate=None):
    """The optimizer ``config`` names, at ``learning_rate`` (a number or a schedule; default config.lr)."""
    spec = OPTIMIZERS[config.optimizer]
    arguments = {**spec.fixed, **{arg: getattr(config, name) for name, arg in spec.settings.items()},
                 **common_arguments(config)}
    return spec.factory()(config.lr if learning_rate is None else learning_rate, **arguments)
