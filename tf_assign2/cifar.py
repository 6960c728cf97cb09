"""`python -m tf_assign2.cifar`: see `--help`. Thin wrapper over `cli.train_main`."""

import sys

from tf_assign2.cli import train_main


def main(argv=None):
    return train_main("cifar", argv)


if __name__ == "__main__":
    sys.exit(main())
