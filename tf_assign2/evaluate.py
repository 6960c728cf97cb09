"""`python -m tf_assign2.evaluate`: see `--help` (the command line lives in `tf_assign2.cli.evaluate`)."""

from tf_assign2.cli import end_process
from tf_assign2.cli.evaluate import main

if __name__ == "__main__":
    end_process(main())
