"""`python -m tf_assign2.mnist`: train a BasicRNN, LSTM or GRU on MNIST rows; see `--help`."""

from tf_assign2.cli import end_process, train


def main(argv=None):
    return train.main("mnist", argv)


if __name__ == "__main__":
    end_process(main())
