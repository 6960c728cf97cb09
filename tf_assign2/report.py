"""`python -m tf_assign2.report`: see `--help` (the command line lives in `tf_assign2.cli.report`)."""

import sys

from tf_assign2.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
