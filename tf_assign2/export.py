"""`python -m tf_assign2.export`: see `--help` (the command line lives in `tf_assign2.cli.export`)."""

from tf_assign2.cli import end_process
from tf_assign2.cli.export import main

if __name__ == "__main__":
    end_process(main())
