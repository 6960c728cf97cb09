"""The optimizer registry: the names ``--optimizer`` takes, each a function (lr, config) -> Keras optimizer.

Adding an optimizer is one entry here. ``clipnorm`` clips the global gradient norm (the usual
remedy for RNN gradient spikes) and ``ema`` keeps an exponential moving average of the weights,
for every optimizer alike. Keras is imported when an optimizer is made, so the schema reads these
names without loading TensorFlow.
"""


def _clip(config):
    return {"global_clipnorm": config.clipnorm} if config.clipnorm else {}


def _ema(config):
    """Keras' own weight averaging (``use_ema``): after every step the optimizer updates
    ``average = ema * average + (1 - ema) * weight`` in variables of its own, which the per-epoch
    backup saves with its other state, so an averaged run resumes exactly. ``Trainer`` swaps the
    averages in for evaluation; Keras writes them into the model when ``fit`` ends."""
    return {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}


def _adam(lr, config):
    from tf_assign2.training.fused_adam import FusedAdam

    return FusedAdam(lr, **_clip(config), **_ema(config))


def _keras(name, **fixed):
    def make(lr, config):
        import keras

        return getattr(keras.optimizers, name)(lr, **fixed, **_clip(config), **_ema(config))

    return make


def _momentum(lr, config):
    import keras

    return keras.optimizers.SGD(lr, momentum=config.momentum, **_clip(config), **_ema(config))


OPTIMIZERS = {
    "adam": _adam,
    "sgd": _keras("SGD"),
    "momentum": _momentum,  # the assignment's "momentum": SGD with momentum (--momentum, 0.9)
    "adagrad": _keras("Adagrad"),
    "rmsprop": _keras("RMSprop"),
    "adamw": _keras("AdamW"),
}


def make_optimizer(config, learning_rate=None):
    """The optimizer ``config`` names, at ``learning_rate`` (a number or a schedule; default config.lr)."""
    return OPTIMIZERS[config.optimizer](config.lr if learning_rate is None else learning_rate, config)
