"""
Title: LeNet5 on the assignment's CIFAR10, from Python
Description: Train the starter's LeNet5 with tf_assign2's Python API, then plot its curves and first-layer filters.

The command line (`python -m tf_assign2.cifar`) makes exactly the same run; this script shows the
few calls behind it, for a notebook or your own experiments:

    python examples/lenet5_cifar.py --data ../shared/data --epochs 2
"""

import argparse

from tf_assign2 import settings, train

"""
## Settings

`settings` starts from the task's defaults (LeNet5 at batch 50, Adam 1e-3, as the starter), takes
any setting by its flag's name, checks everything as the command line does, and returns a
frozen `Config`.
"""

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--data", default="../shared/data", help="the folder holding CIFAR10/ (or CIFAR10/ itself)")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--ntrain", type=int, default=None, help="training images per class (all 1000)")
parser.add_argument("--runs-dir", default="runs")
args = parser.parse_args()

config = settings("cifar", data_dir=args.data, epochs=args.epochs, ntrain=args.ntrain, label_smoothing=0.1,
                  runs_dir=args.runs_dir)
print(f"{config.model}, {config.optimizer} {config.lr:g}, batch {config.batch_size}, "
      f"label smoothing {config.label_smoothing}")

"""
## Train

`train` reads the data (its first line says which), resolves the hardware plan once (XLA,
precision, steps per compiled call), builds the registry's model seeded with `config.seed`, trains
it on a tf.data pipeline with a validation split, and writes a run folder. The test split is scored
after each epoch for the curves; it never steers training.
"""

run = train(config)
data = run.recorded["data_info"]
print(f"{data['n_train']} train / {data['n_val']} validation / {data['n_test']} test images from {data['location']}")
print(f"test accuracy {run.test_accuracy:.4f}, status {run.status}, folder {run.path}")

"""
## Look at it

A `Run` reads its folder: settings, summary, history. Its figure methods return matplotlib
figures (in a notebook they show inline); here they are saved.
"""

run.curves().savefig("lenet5_curves.png")
run.filters().savefig("lenet5_conv1_filters.png")
print("wrote lenet5_curves.png and lenet5_conv1_filters.png")
