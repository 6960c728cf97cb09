"""Speed benchmarks of tf_assign2 (not installed): run ``python -m benchmarks.bench`` from the repository root.

The figures are explained in docs/speed.md; dated records are kept in docs/bench/.
"""
