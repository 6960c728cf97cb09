"""`python -m tf_assign2.report`: see `--help` (the command line lives in `tf_assign2.cli.report`).

`tf_assign2.report(...)` is the same as a Python call (`tf_assign2.api.report`), also once this module is imported.
"""

from tf_assign2.cli import callable_as, end_process
from tf_assign2.cli.report import main

callable_as(__name__, "report")

if __name__ == "__main__":
    end_process(main())
