"""`python -m tf_assign2.cifar`: train LeNet5 on the assignment's CIFAR10; see `--help`."""

from tf_assign2.cli import end_process, train


def main(argv=None):
    return train.main("cifar", argv)


if __name__ == "__main__":
    end_process(main())
