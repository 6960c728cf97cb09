"""`python -m tf_assign2.sweep`: see `--help` (the command line lives in `tf_assign2.cli.sweep`)."""

import sys

from tf_assign2.cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
