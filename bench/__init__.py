"""rnnspec's benchmark: closed-form gradients against autodiff, per framework, in its own process.

``rnnspec bench`` (bench.run) starts one ``python -m bench.worker`` per framework, collects their
JSON, prints the table and writes ``--json``/``--plot``. See docs/benchmarks.md.
"""
