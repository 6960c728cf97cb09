"""The optimizer registry: the names ``--optimizer`` takes, each a function (lr, config) -> Keras optimizer.

Adding an optimizer is one entry here. ``clipnorm`` clips the global gradient norm (the usual
remedy for RNN gradient spikes) for every optimizer alike. Keras is imported when an optimizer
is made, so the schema reads these names without loading TensorFlow.
"""


def _clip(config):
    return {"global_clipnorm": config.clipnorm} if config.clipnorm else {}


def _adam(lr, config):
    from tf_assign2.training.fused_adam import FusedAdam

    return FusedAdam(lr, **_clip(config))


def _keras(name, **fixed):
    def make(lr, config):
        import keras

        return getattr(keras.optimizers, name)(lr, **fixed, **_clip(config))

    return make


def _momentum(lr, config):
    import keras

    return keras.optimizers.SGD(lr, momentum=config.momentum, **_clip(config))


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
