"""`python -m tf_assign2.sweep`: see `--help` (the command line lives in `tf_assign2.cli.sweep`).

`tf_assign2.sweep(...)` is the same as a Python call (`tf_assign2.api.sweep`), also once this module is imported.
"""

from tf_assign2.cli import callable_as, end_process
from tf_assign2.cli.sweep import main

callable_as(__name__, "sweep")

if __name__ == "__main__":
    end_process(main())
