"""`python -m tf_assign2.evaluate`: see `--help` (the command line lives in `tf_assign2.cli.evaluate`).

`tf_assign2.evaluate(...)` is the same as a Python call (`tf_assign2.api.evaluate`), also once this module is imported.
"""

from tf_assign2.cli import callable_as, end_process
from tf_assign2.cli.evaluate import main

callable_as(__name__, "evaluate")

if __name__ == "__main__":
    end_process(main())
