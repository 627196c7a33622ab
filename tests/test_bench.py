"""rnnspec bench: the analysis (ratios, targets, table) on hand-made timings, the options the
command shares with its worker, and real runs of a built-in and of an unknown framework's backend."""

import importlib.util
import io
import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from rnnspec.backends.numpy import NumpyBackend
from rnnspec.bench import report, run, worker
from rnnspec.bench.frameworks import (
    REFERENCE,
    THREAD_COUNT_ENV,
    THREAD_ENV,
    Framework,
    NumpyFramework,
    busy,
    framework_of,
    free_cores,
    thread_settings,
)
from rnnspec.bench.report import (
    EFFICIENCY,
    TIMING,
    derive,
    results_table,
    target_summary,
    targets,
)
from rnnspec.bench.run import machine, rich_table, show, worker_args
from rnnspec.bench.workloads import FLOW_CALLS, FLOW_WORKLOAD, WORKLOADS, Target, flops
from rnnspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL_FLOPS = 3 * 2 * 50 * 32 * (64 * 32 + 64 * 64 + 32 * 64)  # 3 · forward, by hand


class ForeignArray(np.ndarray):
    """NumPy's array under a type of this module: arrays of a framework the benchmark does not know."""


class ForeignBackend(NumpyBackend):
    """The NumPy backend on ForeignArray: timed with the generic fallbacks."""

    name = "foreign"

    def asarray(self, array, dtype=None):
        return super().asarray(array, dtype).view(ForeignArray)


# --- hand-made worker output ----------------------------------------------------------------------


def timed(impl: str, ms: float, workload: str = "small", dtype: str = "float32") -> dict:
    """One implementation's row as a worker reports it: three calls of ``ms`` each."""
    return {"workload": workload, "dtype": dtype, "impl": impl, "times_ms": [ms] * 3,
            "median_ms": ms, "first_call_s": 0.1, "error_ratio": 0.01, "worst_tensor": "b",
            "check_limit": 1.0}  # fmt: skip


def torch_round(closed: float, autodiff: float, nn_rnn: float) -> dict:
    return {
        "backend": "torch",
        "peak": {"float32": {"gflops": 100.0, "repeats": 7}},
        "results": [
            timed("torch closed form", closed),
            timed("torch autodiff", autodiff),
            timed("torch.nn.RNN autograd", nn_rnn),
        ],
    }


DATA = {
    "workers": [
        torch_round(closed=2.0, autodiff=4.0, nn_rnn=5.0),
        torch_round(closed=3.0, autodiff=5.0, nn_rnn=6.0),
        {"backend": "numpy", "peak": {"float32": {"gflops": 100.0, "repeats": 7}},
         "results": [timed("numpy closed form", 1.0)]},
        {"backend": "numpy", "results": [
            {"workload": "long", "dtype": "float32", "impl": "numpy closed form",
             "memory_bytes": 3000, "memory_half_T_bytes": 1000,
             "memory_growth_T_over_half_T": 3.0, "memory_per_activation": 0.5,
             "memory_method": "tracemalloc peak"}]},
    ]
}  # fmt: skip


def by_impl(rows: list[dict], workload: str = "small") -> dict[str, dict]:
    return {r["impl"]: r for r in rows if r["workload"] == workload}


def test_ratios_within_one_backend_are_per_round_medians():
    rows = by_impl(derive(DATA))
    closed = rows["torch closed form"]
    # per round 2/4 and 3/5, median 0.55; the pooled medians would give 2.5/4.5 = 0.556
    assert closed["vs_autodiff"] == pytest.approx(0.55, abs=1e-12)
    assert closed["fastest_autodiff"] == "torch autodiff"
    assert closed["vs_nn_rnn"] == pytest.approx((2 / 5 + 3 / 6) / 2, abs=1e-12)
    assert closed["calls"] == 6 and closed["median_ms"] == 2.5  # both rounds' calls pooled
    assert closed["gflops"] == pytest.approx(SMALL_FLOPS / 2.5e-3 / 1e9)
    assert closed["fraction_of_peak"] == pytest.approx(closed["gflops"] / 100.0)


def test_a_backend_without_autodiff_is_compared_with_every_other_backends_autodiff():
    rows = derive(DATA)
    numpy = by_impl(rows)["numpy closed form"]
    assert numpy["fastest_autodiff"] == "torch autodiff"  # pooled median 4.5 beats nn.RNN's 5.5
    assert numpy["vs_autodiff"] == pytest.approx(1.0 / 4.5)
    assert numpy["vs_nn_rnn"] == pytest.approx(1.0 / 5.5)
    assert numpy["fraction_of_peak"] == pytest.approx(SMALL_FLOPS / 1e-3 / 1e9 / 100.0)
    memory = by_impl(rows, "long")["numpy closed form"]
    assert memory["memory_exponent"] == pytest.approx(np.log2(3.0))
    assert "vs_autodiff" not in by_impl(rows)["torch autodiff"]  # only closed forms get ratios


def row(impl: str, workload: str, **columns) -> dict:
    backend = impl.split()[0]
    return {"impl": impl, "backend": backend, "workload": workload, "dtype": "float32", **columns}


ROWS = [
    row("numpy closed form", "small", median_ms=1.0, vs_autodiff=0.81,
        fastest_autodiff="jax autodiff", vs_nn_rnn=0.5),
    row("jax closed form", "small", median_ms=1.2, vs_autodiff=0.7,
        fastest_autodiff="jax autodiff", vs_nn_rnn=1.5),
    row("torch closed form", "wide", median_ms=100.0, vs_autodiff=0.95,
        fastest_autodiff="torch autodiff", fraction_of_peak=0.79),
    row("jax closed form", "wide", median_ms=120.0, vs_autodiff=0.9,
        fastest_autodiff="jax autodiff", fraction_of_peak=0.95),
    row("jax autodiff", "wide", median_ms=90.0, fraction_of_peak=0.99),
    row("jax autodiff", "long", memory_exponent=1.3),
    row("jax closed form", "long", memory_exponent=1.0),
    {**row("numpy closed form", "small", vs_autodiff=5.0), "dtype": "float64"},
]  # fmt: skip


def test_targets_apply_each_workloads_limit_to_the_rows_they_bind():
    checks = {(c["workload"], c["target"]): c for c in targets(ROWS)}
    miss = checks[("small", "numpy closed form ≤ 0.8× jax autodiff")]
    assert miss["measured"] == 0.81 and not miss["met"]
    assert checks[("small", "jax closed form ≤ 0.8× jax autodiff")]["met"]
    assert checks[("wide", "torch closed form ≤ 1× torch autodiff")]["met"]  # 0.95: wide's limit
    assert checks[("small", "numpy closed form ≤ 1× torch.nn.RNN autograd")]["met"]
    # the nn.RNN target binds NumPy and torch only, so JAX's 1.5 is no target
    assert ("small", "jax closed form ≤ 1× torch.nn.RNN autograd") not in checks
    # the fastest closed form on wide is torch's (100 ms), at 79 % of its peak: missed, though a
    # slower closed form and an autodiff are above 80 %
    (peak,) = [c for c in checks.values() if "matmul peak" in c["target"]]
    assert (
        peak["target"] == "fastest backend (torch closed form) ≥ 80% of its framework's matmul peak"
    )
    assert peak["measured"] == 0.79 and not peak["met"]
    memory = {
        c["target"].split("'s memory")[0]: c["met"]
        for c in checks.values()
        if "O(T)" in c["target"]
    }
    assert memory == {"jax autodiff": False, "jax closed form": True}  # every implementation's
    assert all(c["measured"] != 5.0 for c in checks.values())  # float64 rows bind no target


def test_a_call_faster_than_its_peak_flags_the_peak_and_misses_its_targets():
    """Issue 28: "% of peak" printed 127 % and 118 %: a peak measured under load or with the wrong
    thread count is no peak. A row above its framework's measured peak gets no fraction, its cell
    says so, and a fraction-of-peak target on it is missed, "peak invalid"."""
    workload = WORKLOADS["medium"]
    fast = flops(workload) / 1e6 / 40.0  # ms of a call at 40 GFLOP/s, over the peak of 30
    data = {"workers": [{"backend": "numpy", "peak": {"float32": {"gflops": 30.0, "repeats": 7}},
                         "results": [timed("numpy closed form", fast, "medium")]}]}  # fmt: skip
    (row,) = derive(data)
    assert row["gflops"] == pytest.approx(40.0) and row["peak_invalid"]
    assert "fraction_of_peak" not in row
    goal = Target("medium", "fraction_of_peak", 0.6, at_least=True, of="the fastest closed form")
    (check,) = targets([row], (goal,))
    assert not check["met"] and math.isnan(check["measured"])
    summary = target_summary([check])
    assert "numpy closed form, medium: peak invalid" in summary.rows[0][2]
    (cells,) = results_table([row], ["float32"]).rows
    assert "> peak" in cells


@pytest.mark.parametrize(
    "usable, load, threads, is_busy",
    [(2, (4.0, 3.0, 2.0), 1, True), (16, (3.2, 1.0, 1.0), 13, False), (4, None, 4, False),
     (2, (0.4, 0.2, 0.1), 2, False), (8, (4.6, 4.0, 4.0), 3, True)],
)  # fmt: skip
def test_worker_threads_are_the_free_cores_and_a_busy_machine_is_said(
    usable, load, threads, is_busy, monkeypatch
):
    """Issue 28: at load average 4 on 2 cores NumPy's default pool took 272 ms a call where one
    thread took 1.54 ms: the workers' pools get the cores the load leaves free, unless the user set
    a count; a run on a machine that busy says so."""
    for key in THREAD_COUNT_ENV:
        monkeypatch.delenv(key, raising=False)
    assert free_cores(usable, load) == threads
    assert busy(usable, load) == is_busy
    assert thread_settings({}, usable, load) == dict.fromkeys(THREAD_COUNT_ENV, str(threads))
    assert thread_settings({"OMP_NUM_THREADS": "2"}, usable, load) == {}  # the user's choice
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    assert thread_settings({}, usable, load) == {}


def test_the_settings_line_says_the_threads_chosen():
    data = {
        "options": {"rounds": 1, "repeats": 30, "max_seconds": 10.0, "seed": 0, "dtypes": (),
                    "env_pairs": (), "device": None},
        "seconds": 30.0, "workloads": {"small": {}}, "workers": [],
        "machine": {"load_average_before": (1.2, 1.0, 1.0)},
        "threads": {"chosen": dict.fromkeys(THREAD_COUNT_ENV, "1"), "free_cores": 1},
    }  # fmt: skip
    line = report._settings(data)
    assert "1 thread(s) per worker pool" in line and "load average 1.2" in line


def test_targets_are_data():
    at_least = Target("small", "vs_autodiff", 0.8, at_least=True)
    (check,) = [c for c in targets(ROWS, (at_least,)) if c["target"].startswith("numpy")]
    assert check["target"] == "numpy closed form ≥ 0.8× jax autodiff" and check["met"]


def test_table_shows_ratios_and_marks_an_inaccurate_result():
    wrong = {**timed("numpy closed form", 1.0, "medium"), "error_ratio": 3.5}
    del wrong["times_ms"], wrong["median_ms"]  # as a worker reports a result it did not time
    model = results_table([*derive(DATA), {"backend": "numpy", **wrong}], ["float32", "float64"])
    timing, efficiency = (rendered(rich_table(model, part)) for part in (TIMING, EFFICIENCY))
    numpy_small = next(line for line in timing if "small" in line and "numpy closed form" in line)
    assert "0.22" in numpy_small and "0.18" in numpy_small  # 1/4.5 and 1/5.5
    assert "not timed" in next(line for line in timing if "medium" in line)
    assert "3.5" in next(line for line in efficiency if "medium" in line)
    for lines in (timing, efficiency):
        order = [line.split("  ")[1].strip() for line in lines if "small f32" in line]
        assert (
            order[0] == "numpy closed form" and order[-1] == "torch.nn.RNN autograd"
        )  # fastest first


def test_the_worker_reads_back_what_bench_forwards():
    values = {"dtypes": ("float32",), "workloads": ("small", "long"), "repeats": 3,
              "max_seconds": 1.5, "device": None, "seed": 7, "cache": Path("/tmp/x")}  # fmt: skip
    args = worker_args(values)
    assert "--device" not in args
    parsed = worker.main.make_context("worker", ["numpy", *args]).params
    assert {k: parsed[k] for k in values} == values


def bench_json(tmp_path, *args) -> dict:
    report = tmp_path / "bench.json"
    result = CliRunner().invoke(
        main,
        ["bench", "--workload", "small", "--repeats", "3", "--dtype", "float32", "--no-memory",
         "--cache", str(tmp_path), "--json", str(report), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "loss + all gradients" in result.output
    progress = [line for line in result.output.splitlines() if line.startswith("round ")]
    return {**json.loads(report.read_text()), "progress": progress}


def test_bench_times_a_builtin_backend(tmp_path):
    data = bench_json(tmp_path, "--backend", "numpy", "--quick")
    # piped (not a terminal), as the test's output is: a line per workload and dtype as it starts
    # (issue 28: piped, `rnnspec bench --quick` printed nothing for 8 minutes)
    assert data["progress"] == ["round 1/1: timing numpy: small float32 (1 of 1)"]
    ((backend, framework),) = {(w["backend"], w["framework"]) for w in data["workers"]}
    assert (backend, framework) == ("numpy", "numpy")
    (closed,) = data["rows"]
    assert closed["impl"] == "numpy closed form" and closed["calls"] == 3
    assert closed["median_ms"] == statistics.median(closed["times_ms"])


#: small copies of the workloads that take other calls, as code: masked (a mask; no nn.RNN row),
#: relu (a model; torch.nn.RNN's relu) and the flow workload (the §10 methods too); the real ones
#: take minutes of float64 reference
SMALL_COPIES = {
    "masked": 'replace(WORKLOADS["masked"], T=12, B=4, D=3, H=5, K=4)',
    "relu": 'replace(WORKLOADS["relu"], T=12, B=4, D=3, H=5, K=4)',
    # T above the truncation depth k = 20 of FLOW_CALLS, so that the truncation truncates
    FLOW_WORKLOAD: f'replace(WORKLOADS["small"], name="{FLOW_WORKLOAD}", T=24, B=4, D=3, H=5, K=4)',
}


@pytest.mark.parametrize("kind", SMALL_COPIES)
@pytest.mark.parametrize("name", ["numpy", "torch", "jax", "tensorflow", "mlx"])
def test_every_framework_times_the_workloads_that_take_other_calls(name, kind, tmp_path):
    """Each framework's calls on the masked, relu and flow workloads run, each result checked
    against its float64 reference, as in a full `rnnspec bench`: in a process of its own, as the
    bench's workers (frameworks do not share a process)."""
    pytest.importorskip(name)
    code = (
        "import json, sys; from dataclasses import replace; from pathlib import Path; "
        "from rnnspec import backends; "
        "from rnnspec.bench import worker; "
        "from rnnspec.bench.frameworks import framework_of; "
        "from rnnspec.bench.workloads import WORKLOADS; "
        f"fw = framework_of(backends.load({name!r})); "
        f"rows = worker.time_workload(fw, {SMALL_COPIES[kind]}, 'float32', Path(sys.argv[1]), 1, 1); "
        "print(json.dumps([(r['impl'], r['error_ratio']) for r in rows]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ratios = dict(json.loads(done.stdout.splitlines()[-1]))
    assert f"{name} closed form" in ratios and all(r <= 1 for r in ratios.values()), ratios
    if kind == "masked":
        assert not any("nn.RNN" in i for i in ratios), ratios
    elif kind == "relu":
        assert (REFERENCE in ratios) == (name == "torch"), ratios
    else:
        assert {f"{name} {label}" for label in FLOW_CALLS} <= set(ratios), ratios


def test_bench_times_an_unknown_frameworks_backend_with_the_fallbacks(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the worker imports tests.test_bench from here
    data = bench_json(tmp_path, "--backend", "tests.test_bench:ForeignBackend")
    (worker_report,) = data["workers"]
    assert worker_report["framework"] == "generic"
    assert set(worker_report["threads"]) <= {*THREAD_ENV, "cpus"}  # no framework to ask
    (closed,) = data["rows"]
    assert closed["impl"] == "foreign closed form" and closed["calls"] == 3  # no autodiff row
    assert closed["error_ratio"] <= 1  # a fraction of its peak, or a peak measured under load:
    assert (
        0 < closed["fraction_of_peak"] <= 1
        if "fraction_of_peak" in closed
        else closed["peak_invalid"]
    )


def test_frameworks_are_told_by_their_arrays_and_the_fallback_measures_memory():
    assert type(framework_of(NumpyBackend())) is NumpyFramework
    fallback = framework_of(ForeignBackend())
    assert type(fallback) is Framework
    if not os.path.exists("/proc/self/clear_refs"):
        assert fallback.peak_memory(lambda: (np.ones(1), ())) is None
        return
    # 64 MiB, every page touched: freed before the call returns (only the high-water mark sees
    # it), then returned, which the fallback's sync copies with to_numpy: 128 MiB. The kernel's
    # RSS counters are approximate (a few hundred KiB here), so neither sits on a bound.
    temporary, _ = fallback.peak_memory(lambda: (np.ones(2**23).sum(), ()))
    returned, how = fallback.peak_memory(lambda: (np.ones(2**23), ()))
    assert abs(temporary - 2**26) < 2**23 and abs(returned - 2**27) < 2**23, (temporary, returned)
    assert "RSS" in how and "copy" in how


def test_machine_and_threads_are_reported_without_linux_calls(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "getloadavg", raising=False)
    report = machine()
    assert report["usable_cores"] == os.cpu_count() and report["load_average_before"] is None
    assert Framework(NumpyBackend()).threads()["cpus"] == os.cpu_count()


# --- what the user sees: tables that fit, and one line for what cannot run -----------------------

MiB = 2**20
#: every column filled, with the widest numbers a CPU run gives and the longest built-in names
FULL_ROWS = [
    row("tensorflow closed form", "medium", median_ms=2960.4, q1_ms=2900.1, q3_ms=3105.7,
        vs_autodiff=0.55, fastest_autodiff="tensorflow autodiff", vs_nn_rnn=12.34,
        gflops=1234.5, fraction_of_peak=0.953, first_call_s=12.345, error_ratio=0.061,
        worst_tensor="b", check_limit=1.0, memory_bytes=1234.5 * MiB, memory_half_T_bytes=617.2 * MiB,
        memory_exponent=1.0, memory_growth_T_over_half_T=2.0, memory_per_activation=123.4,
        memory_method="TensorFlow BFC allocator peak (TF_CPU_ALLOCATOR_USE_BFC=true)"),
    row("torch.nn.RNN autograd", "medium", median_ms=3010.8, q1_ms=2950.2, q3_ms=3200.9,
        gflops=1210.0, fraction_of_peak=0.9, first_call_s=0.5, error_ratio=0.02,
        worst_tensor="x", check_limit=1.0),
]  # fmt: skip


def rendered(renderable, width: int = 80) -> list[str]:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text().splitlines()


def test_the_tables_fit_80_columns_with_every_number_whole():
    data = {**results(), "rows": [{**r, "dtype": "float64"} for r in FULL_ROWS]}
    data["workloads"]["long"]["T"] = 10000  # the memory table's headers grow with T
    data["targets"] = targets(FULL_ROWS, (
        Target("medium", "memory_exponent", 1.25, of="each implementation"),
        Target("medium", "vs_nn_rnn", 1.0)))  # fmt: skip
    lines = rendered(show(data))
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    text = "\n".join(lines)
    assert "…" not in text
    for number in ("2960.40", "2900.10–3105.70", "0.55", "12.34", "1234", "95%", "12.345", "0.061",
                   "1234.5", "617.2", "3010.80", "2950.20–3200.90", "Hand-made CPU"):  # fmt: skip
        assert number in text, number
    assert "Below 1 is faster" in text  # the legend says which way the ratios go
    (target,) = [line for line in lines if "≤ 1× torch.nn.RNN" in line]
    assert "12.34" in target and "no" in target


def record_workers(monkeypatch) -> list[str]:
    """run_worker replaced: the names it was asked to time."""
    started: list[str] = []

    def run_worker(doing, name, args, env):
        started.append(name)
        return {"backend": name, "error": "not run in this test", "results": []}

    monkeypatch.setattr(run, "run_worker", run_worker)
    return started


def test_plot_without_matplotlib_fails_before_timing_naming_the_extra(monkeypatch, tmp_path):
    started = record_workers(monkeypatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    result = CliRunner().invoke(
        main, ["bench", "--backend", "numpy", "--workload", "small", "--no-memory",
               "--plot", str(tmp_path / "bench.png")],
    )  # fmt: skip
    assert result.exit_code != 0 and started == []
    assert "matplotlib" in result.output and "[bench]'" in result.output, result.output
    assert "Traceback" not in result.output


def test_a_backend_that_cannot_be_loaded_is_one_line_and_nothing_is_timed(monkeypatch):
    started = record_workers(monkeypatch)
    result = CliRunner().invoke(
        main, ["bench", "--backend", "numpy", "--backend", "no_such_backend"]
    )
    assert result.exit_code != 0 and started == []
    (line,) = [line for line in result.output.splitlines() if "no_such_backend" in line]
    assert "unknown backend 'no_such_backend'" in line
    assert "Traceback" not in result.output


def test_a_missing_framework_names_its_extra(monkeypatch):
    started = record_workers(monkeypatch)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else find_spec(name, *a),
    )
    result = CliRunner().invoke(main, ["bench", "--backend", "torch"])
    assert result.exit_code != 0 and started == []
    assert "needs torch, which is not installed" in result.output and "[torch]'" in result.output


def test_a_backend_the_worker_cannot_load_is_its_one_line(monkeypatch):
    monkeypatch.chdir(ROOT)  # the module is found here; its factory is not
    result = CliRunner().invoke(
        main, ["bench", "--backend", "tests.test_bench:NoSuchFactory", "--workload", "small"]
    )
    assert result.exit_code != 0
    assert "'tests.test_bench' has no 'NoSuchFactory'" in result.output, result.output
    assert "Traceback" not in result.output


# --- docs/benchmarks.md: every number it quotes from a run, rendered from the run's JSON ----------


def jax_round(small: tuple[float, float], long: tuple[float, float]) -> dict:
    """JAX's closed form and autodiff on small and long: (closed, autodiff) ms each."""
    return {
        "backend": "jax",
        "peak": {"float32": {"gflops": 80.0, "repeats": 7}},
        "results": [
            timed("jax closed form", small[0]),
            timed("jax autodiff", small[1]),
            timed("jax closed form", long[0], "long"),
            timed("jax autodiff", long[1], "long"),
        ],
    }


def results() -> dict:
    """What `rnnspec bench --json` writes, on DATA's hand-made workers and two of JAX's, which miss
    the 0.8× autodiff target by 0.90 (small) and 0.85 (long); NumPy's memory misses O(T)."""
    workers = [
        {**w, "version": f"{w['backend']} 1.0", "device": "cpu", "framework": w["backend"],
         "threads": {"cpus": 2}}
        for w in [*DATA["workers"], jax_round((9.0, 10.0), (8.5, 10.0))]
    ]  # fmt: skip
    data = {
        "options": run.bench.make_context("bench", ["--rounds", "2", "--repeats", "3"]).params,
        "machine": {"cpu": "Hand-made CPU", "cores": 4, "usable_cores": 2, "python": "3.11.7",
                    "system": "Linux 6.1", "load_average_before": [0.25, 0.5, 0.75],
                    "load_average_after": [1.0, 1.0, 1.0]},
        "workloads": {name: asdict(WORKLOADS[name]) for name in ("small", "long")},
        "workers": workers,
        "seconds": 125.0,
    }  # fmt: skip
    data["rows"] = derive(data)
    data["targets"] = targets(data["rows"])
    return json.loads(json.dumps(data, default=str))  # as read back from the file


def test_markdown_renders_the_tables_and_the_targets_from_the_results():
    from rnnspec.bench.markdown import render

    text = render(results())
    lines = text.splitlines()
    assert "Machine: `Hand-made CPU`, 2 usable cores of 4, Linux 6.1, Python 3.11.7" in text
    assert "2 rounds per backend" in text and "at most 3 timed calls" in text
    assert "median of 7 2048 × 2048 products" in text
    assert "torch: torch 1.0 on cpu, timed as torch: cpus 2" in text
    assert (
        "Peak 2048² matmul, GFLOP/s (median over rounds), float32: torch 100, numpy 100, jax 80"
        in text
    )
    # torch closed form: 2 ms in one round's process, 3 in the other's
    assert "up to 1.50× (torch closed form, small float32: 2.00 ms in one round, 3.00 ms" in text
    assert "The run took 2 minutes." in text
    assert (
        "**Not a full run** (workloads tiny, medium, wide, masked, relu, deep, bidirectional not "
        "timed; "
        "at most 3 timed calls, not 30)" in text
    )
    options = run.bench.make_context("bench", []).params
    full = {
        **results(),
        "options": options,
        "workloads": {w: asdict(WORKLOADS[w]) for w in WORKLOADS},
    }
    assert "Not a full run" not in render(full)
    table = lines[lines.index("### float32, ms per call") : lines.index("## Targets (float32)")]
    small = [line for line in table if line.startswith("| small |")]
    # fastest first, closed forms bold; NumPy over the fastest autodiff of any framework: 1/4.5
    assert small[0] == (
        f"| small | **numpy closed form** | 1.00 | 1.00–1.00 | 0.22 | 0.18 | "
        f"{SMALL_FLOPS / 1e-3 / 1e9:.0f} | {SMALL_FLOPS / 1e-3 / 1e9 / 100:.0%} | 0.100 | 0.01 |"
    )
    assert [line.split(" | ")[1] for line in small] == [
        "**numpy closed form**", "**torch closed form**", "torch autodiff",
        "torch.nn.RNN autograd", "**jax closed form**", "jax autodiff",
    ]  # fmt: skip
    assert "| small | **torch closed form** | 2.50 | 2.00–3.00 | 0.55 | 0.45 |" in text
    assert "### float64" not in text  # no float64 row: no float64 table
    assert (
        "| float32 | numpy closed form | 0.0029 | 0.00095 | 3.00 | 0.5 | tracemalloc peak |" in text
    )
    summary = {
        line.split(" | ")[0]: line.split(" | ")[1:]
        for line in lines[lines.index("## Targets (float32)") :]
        if line.startswith("| each") or line.startswith("| numpy and torch")
    }
    autodiff = next(v for k, v in summary.items() if "fastest autodiff" in k)
    assert autodiff[0] == "2 of 4"  # torch and numpy on small met; jax on small and long missed
    assert (
        autodiff[1] == "jax closed form, small: 0.90; jax closed form, long: 0.85 |"
    )  # worst first
    nn_rnn = next(v for k, v in summary.items() if "torch.nn.RNN" in k)
    assert nn_rnn == ["2 of 2", "none (closest: torch closed form, small: 0.45) |"]
    memory = next(v for k, v in summary.items() if "memory O(T)" in k)
    assert memory == ["0 of 1", "numpy closed form, long: 1.58 |"]
    every = lines[lines.index("Every target with its measured value:") :]
    assert "| long | jax closed form ≤ 0.8× jax autodiff | 0.85 | **no** |" in every
    assert "| small | torch closed form ≤ 0.8× torch autodiff | 0.55 | yes |" in every
    assert len([line for line in every if line.startswith(("| small", "| long"))]) == 7  # 4 + 2 + 1


def test_markdown_marks_a_result_that_was_not_timed():
    from rnnspec.bench.markdown import render

    data = results()
    wrong = {**timed("numpy closed form", 1.0, "medium", "float64"), "error_ratio": 3.5}
    del wrong["times_ms"], wrong["median_ms"]  # as a worker reports a result it did not time
    data["rows"].append({"backend": "numpy", **wrong})
    text = render(data)
    assert (
        "| medium | **numpy closed form** | **not timed** |  |  |  |  |  | 0.100 | **3.5** |"
        in (text)
    )
    assert "### float64, ms per call" in text
    assert (
        "Worst error / bound of any result: 3.5 (numpy closed form, medium float64, tensor b)"
        in text
    )


DOC = (
    "# A page\r\n\nHand-written, kept byte for byte: ‖g‖ 1.70×  \n\n"
    "<!-- generated by python -m rnnspec.bench.markdown from old.json: do not edit -->\n"
    "| stale | table |\n"
    "<!-- end of generated -->\n\n## After\n\ntrailing spaces   \n"
)


def render_into(tmp_path, doc: str) -> tuple[subprocess.CompletedProcess, Path]:
    (tmp_path / "r.bench.json").write_text(json.dumps(results()))
    (tmp_path / "doc.md").write_bytes(doc.encode())
    done = subprocess.run(
        [sys.executable, "-m", "rnnspec.bench.markdown", "r.bench.json", "doc.md"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    return done, tmp_path / "doc.md"


def test_markdown_writes_between_the_markers_and_leaves_the_rest_as_it_was(tmp_path):
    from rnnspec.bench.markdown import render

    done, doc = render_into(tmp_path, DOC)
    assert done.returncode == 0, done.stderr
    new = doc.read_bytes().decode()
    before, after = DOC.split("<!-- generated")[0], DOC.split("<!-- end of generated -->")[1]
    assert new.startswith(before) and new.endswith("<!-- end of generated -->" + after)
    assert "stale" not in new and render(results()) in new
    assert "from r.bench.json: do not edit -->\n" in new  # the marker names the JSON it came from
    again, _ = render_into(tmp_path, new)  # a second run changes nothing
    assert again.returncode == 0 and doc.read_bytes().decode() == new


@pytest.mark.parametrize(
    "doc",
    [
        DOC.replace("<!-- end of generated -->\n", ""),
        DOC.split("<!-- generated")[0],
        DOC.replace("from old.json", "from old.json (edited)").replace("do not edit", "edit me"),
        DOC + DOC.split("\n\n## After")[0],  # the markers twice
        "<!-- end of generated -->\n" + DOC.split("<!-- end of generated -->")[0],  # END first
    ],
    ids=["no end", "no markers", "begin reworded", "twice", "end first"],
)
def test_markdown_refuses_a_doc_without_its_markers(tmp_path, doc):
    done, path = render_into(tmp_path, doc)
    assert done.returncode == 1 and path.read_bytes().decode() == doc  # nothing written
    assert "doc.md" in done.stderr and "<!-- end of generated -->" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("page", ["benchmarks.md", "benchmarks-gpu.md"])
def test_benchmarks_doc_has_the_markers(page):
    from rnnspec.bench.markdown import render, splice

    doc = (ROOT / "docs" / page).read_text()
    new = splice(doc, render(results()), "bench-results/cpu.bench.json")  # raises without them
    assert "<!-- generated by python -m rnnspec.bench.markdown from " in doc
    assert "Hand-made CPU" in new and "Hand-made CPU" not in doc


def test_a_gpu_run_is_judged_by_the_gpu_targets():
    from rnnspec.bench.markdown import render
    from rnnspec.bench.workloads import GPU_TARGETS, TARGETS, targets_for

    assert targets_for(None) is TARGETS and targets_for("CPU:0") is TARGETS
    assert targets_for("cuda") is GPU_TARGETS and targets_for("gpu:1") is GPU_TARGETS
    data = results()
    data["options"]["device"] = "cuda"
    data["targets"] = targets(data["rows"], GPU_TARGETS)
    text = render(data)
    assert "A GPU run (" in text and "`nox -s bench` rewrites" not in text
    # JAX's rows there (small 0.90, long 0.85 of its autodiff) meet ≤ 1×, which the CPU's 0.8× misses
    assert "| small | jax closed form ≤ 1× jax autodiff | 0.90 | yes |" in text
    assert "0.8× " not in text.split("## Targets")[1]


def test_gradient_flow_rows_are_costed_in_full_gradients_and_are_no_autodiff():
    """A flow row (bench/workloads.FLOW_CALLS) gets its time over its backend's closed form, no
    GFLOP/s (the workload's flops count the full gradient), and is never a closed form's
    "fastest autodiff"."""
    flow = {**timed("torch tbptt_gradients k1=k2=50", 1.0), "flow": True}
    data = {"workers": [{**torch_round(closed=2.0, autodiff=4.0, nn_rnn=5.0)}]}
    data["workers"][0]["results"].append(flow)
    rows = by_impl(derive(data))
    assert rows["torch tbptt_gradients k1=k2=50"]["vs_closed_form"] == pytest.approx(0.5)
    assert "gflops" not in rows["torch tbptt_gradients k1=k2=50"]
    assert rows["torch closed form"]["fastest_autodiff"] == "torch autodiff"
    timing = rendered(rich_table(results_table([*rows.values()], ["float32"]), TIMING))
    assert "= 0.50× closed form" in " ".join(" ".join(timing).split())


def test_the_fixed_cost_is_the_tiny_calls_share_and_validation_its_preparations():
    """Per round within one process, then the median: the tiny call's time over the small call's,
    and the preparation's (validation, targets, h(0)) over the small call's."""

    def one_round(tiny: float, small: float, prepared: float) -> dict:
        return {"backend": "jax", "results": [
            timed("jax closed form", tiny, "tiny"),
            {**timed("jax closed form", small), "prepared_median_ms": prepared},
            timed("jax autodiff", small),
            timed("jax autodiff", 2 * tiny, "tiny"),
        ]}  # fmt: skip

    rows = derive({"workers": [one_round(1.0, 4.0, 0.2), one_round(3.0, 5.0, 1.0)]})
    closed = by_impl(rows)["jax closed form"]
    assert closed["fixed_share"] == pytest.approx((1 / 4 + 3 / 5) / 2)
    assert closed["validation_share"] == pytest.approx((0.2 / 4 + 1 / 5) / 2)
    assert "fixed_share" not in by_impl(rows, "tiny")["jax closed form"]
    assert "fixed_share" not in by_impl(rows)["jax autodiff"]  # the closed form's fixed cost only
    table = report.fixed_cost_table({"rows": rows})
    assert table.rows == [["small f32", "jax closed form", "2.00", "4.00", "42.5%", "12.5%"]]
    (check,) = [c for c in targets(rows) if c["quantity"] == "fixed_share"]
    assert not check["met"] and check["measured"] == closed["fixed_share"]
    assert (
        check["target"] == "jax closed form's fixed cost (its T = 1, B = 1 call) ≤ 10% of its call"
    )


def test_the_worker_times_a_builtin_backends_preparation_and_no_other(monkeypatch, tmp_path):
    numpy_fw = framework_of(NumpyBackend())
    w = WORKLOADS["tiny"]
    inputs = w.native(numpy_fw.backend, "float64")
    weights, h0 = worker._preparation(numpy_fw, *inputs, None, None)()
    assert weights.shape == (w.T, w.B, w.K) and h0.shape == (w.B, w.H)
    prepared, original = [], NumpyBackend._prepared
    monkeypatch.setattr(NumpyBackend, "_prepared", lambda self, *args, **keywords: (
        prepared.append(args[0]) or original(self, *args, **keywords)))  # fmt: skip
    (row,) = worker.time_workload(numpy_fw, w, "float64", tmp_path, repeats=5, max_seconds=1)
    # gradients prepares once a call (the first, the warm-ups, the timed ones); the rounds once more
    assert len(prepared) == 1 + worker.WARMUP_CALLS + 2 * row["calls"] and row["calls"] == 5
    assert len({id(params) for params in prepared}) == 1  # the timed call's very inputs
    assert np.array_equal(prepared[0].W, inputs[0].W) and row["prepared_median_ms"] > 0

    class Foreign:  # a backend that is not a built-in one: its preparation is not known
        name, capabilities = "foreign", NumpyBackend().capabilities

    assert worker._preparation(Framework(Foreign()), *inputs, None, None) is None
