"""`python -m tf_assign2.tune`: see `--help` (the command line lives in `tf_assign2.cli.tune`).

`tf_assign2.tune(...)` is the same as a Python call (`tf_assign2.api.tune`), also once this module is imported.
"""

from tf_assign2.cli import callable_as, end_process
from tf_assign2.cli.tune import main

callable_as(__name__, "tune")

if __name__ == "__main__":
    end_process(main())
