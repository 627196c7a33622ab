"""rnnspec's benchmark: closed-form gradients against autodiff, per backend, in its own process.

``rnnspec bench`` (run.py) starts one ``python -m rnnspec.bench.worker BACKEND`` per backend,
collects their JSON, prints the table and the targets (workloads.py) and writes ``--json``/``--plot``.
What each framework needs to be timed fairly is in frameworks.py. See docs/benchmarks.md.
"""
