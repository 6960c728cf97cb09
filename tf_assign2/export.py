"""`python -m tf_assign2.export`: see `--help` (the command line lives in `tf_assign2.cli.export`)."""

import sys

from tf_assign2.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
