"""rnnspec's benchmark: closed-form gradients against autodiff, per backend, in its own process.

``rnnspec bench`` (run.py) starts one ``python -m rnnspec.bench.worker BACKEND`` per backend,
collects their JSON, prints report.py's tables and the targets (workloads.py) and writes
``--json``/``--plot``; markdown.py writes the same tables into docs/benchmarks.md. What each
framework needs to be timed fairly is in frameworks.py. See docs/benchmarks.md.
"""
