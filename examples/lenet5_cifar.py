"""
Title: LeNet5 on the assignment's CIFAR10, from Python
Description: Train the starter's LeNet5 with the public API of tf_assign2, then plot its filters.

The command line (`python -m tf_assign2.cifar`) does the same and more (run folders, resume,
export); this script shows the few objects behind it, for a notebook or your own experiments:

    python examples/lenet5_cifar.py --data ../shared/data/CIFAR10 --epochs 2
"""

import argparse

from tf_assign2 import MODELS, Config, Trainer, load_arrays, plot_filters, validate

"""
## Settings

`Config` holds every setting with the starter's defaults: LeNet5 at batch 50, Adam 1e-3.
`validate` checks them (the same checks as the command line) and returns a new, frozen `Config`.
"""

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--data", default="../shared/data/CIFAR10", help="the CIFAR10 folder (Train/ and Test/)")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--ntrain", type=int, default=None, help="training images per class (all 1000)")
args = parser.parse_args()

config = validate(Config(data_dir=args.data, epochs=args.epochs, ntrain=args.ntrain, label_smoothing=0.1))
print(f"{MODELS[config.model].title(config)}, {config.optimizer} {config.lr:g}, "
      f"batch {config.batch_size}, label smoothing {config.label_smoothing}")

"""
## Data

Images come in as uint8 arrays (N, 28, 28, 1) with a stratified validation split carved from train.
"""

arrays, info = load_arrays(config)
print(f"{info.n_train} train / {info.n_val} validation / {info.n_test} test images from {info.location}")

"""
## Train

The `Trainer` resolves the hardware plan once (XLA, precision, steps per compiled call), builds
the registry's model seeded with `config.seed`, compiles it and fits it on a tf.data pipeline.
"""

trainer = Trainer(config, arrays, info)
print(f"plan: {trainer.plan}")
model = trainer.compile(trainer.build_model())
result = trainer.fit(model, verbose=2)
assert result.divergence is None, result.divergence

"""
## Evaluate and look at the first layer

`test_metrics` scores the test split once, after training; it never steers training.
"""

test_loss, test_accuracy = trainer.test_metrics(model)
print(f"test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")

kernel = model.get_layer("conv1").get_weights()[0]
plot_filters(kernel, "lenet5_conv1_filters.png", title="conv1 filters after training")
print("wrote lenet5_conv1_filters.png")
