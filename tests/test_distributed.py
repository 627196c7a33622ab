"""rnnspec.distributed on each framework's own engine, certified equal to one device (SPEC.md §11).

Each engine runs in processes of its own (tests/distributed_worker.py): torch as 2 and 3 gloo ranks
on 127.0.0.1, JAX with 4 host devices (XLA_FLAGS) and x64, TensorFlow with 2 logical CPU devices.
Every sharded result must meet the tolerance policy against the float64 reference, with the S − 1
additions across shards counted (§11.5), and agree with the single-device ``gradients`` on the same
inputs as two correct backends do (cross.PAIR_LIMIT); the averaging variant of each engine
(DistributedDataParallel itself, ``pmean``, ``ReduceOp.MEAN``) must fail that comparison.
"""

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnspec.conformance.cases import CASES
from rnnspec.conformance.cross import PAIR_LIMIT
from rnnspec.conformance.oracle import expected
from rnnspec.spec import tolerance
from tests.distributed_worker import DISTRIBUTED_CASES, DTYPES, TENSORS, splits

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 200  # all runs together take about a minute on 2 busy cores
SUMMED = TENSORS[:6]  # L and the parameter gradients: sums over shards; h0 and x are gathered
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


class Workers:
    """Worker processes started together (they overlap on the cores), each waited for by the
    fixture that needs its results, and every one killed at the end whatever happens."""

    def __init__(self):
        self.processes: list[tuple[subprocess.Popen, list[str]]] = []

    def start(self, *args, env: dict[str, str] | None = None) -> subprocess.Popen:
        """``python -m tests.distributed_worker ARGS``, or any command given as a list."""
        command = args[0] if isinstance(args[0], list) else _worker_command(*args)
        process = subprocess.Popen(
            command, cwd=ROOT, env=os.environ | QUIET | (env or {}), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.processes.append((process, command))
        return process

    def wait(self, processes: list[subprocess.Popen]) -> str:
        """Their output, once each has exited with 0."""
        outputs = []
        for process, command in self.processes:
            if process in processes:
                output, _ = process.communicate(timeout=TIMEOUT_S)
                assert process.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
                outputs.append(output)
        return "".join(outputs)

    def kill_all(self) -> None:
        """Each worker's whole process group: torchrun's ranks go with it."""
        for process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _worker_command(*args) -> list[str]:
    return [sys.executable, "-m", "tests.distributed_worker", *map(str, args)]


def _doc_programs() -> dict[str, str]:
    """docs/distributed.md's Python programs, by engine, in the order the page shows them."""
    blocks = re.findall(
        r"```python\n(.*?)```", (ROOT / "docs" / "distributed.md").read_text(), re.S
    )
    return dict(zip(("torch", "jax", "tensorflow"), blocks, strict=True))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _installed(framework: str) -> bool:
    return importlib.util.find_spec(framework) is not None  # not imported here: workers do


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every engine's workers, started at once: engine -> (processes, result paths)."""
    workers, started = Workers(), {}
    folder = tmp_path_factory.mktemp("distributed")
    try:
        if _installed("torch"):
            for world in (2, 3):
                port, paths = _free_port(), [folder / f"torch{world}-{r}.npz" for r in range(world)]
                ranks = [workers.start("torch", r, world, port, p) for r, p in enumerate(paths)]
                started[f"torch{world}"] = (ranks, paths)
        if _installed("jax"):
            env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_ENABLE_X64": "1"}
            path = folder / "jax.npz"
            started["jax"] = ([workers.start("jax", path, env=env)], [path])
        if _installed("tensorflow"):
            path = folder / "tensorflow.npz"
            started["tensorflow"] = ([workers.start("tensorflow", path)], [path])
        for engine, program in _doc_programs().items():
            if _installed(engine):
                path = folder / f"doc_{engine}.py"
                path.write_text(program)
                launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
                command = [sys.executable, *(launcher if engine == "torch" else []), str(path)]
                started[f"doc_{engine}"] = ([workers.start(command)], [])
        yield workers, started
    finally:
        workers.kill_all()


def _results(runs, engine: str) -> list[dict]:
    workers, started = runs
    if engine not in started:
        pytest.skip(f"{engine.rstrip('23')} is not installed")
    processes, paths = started[engine]
    workers.wait(processes)
    return [dict(np.load(path)) for path in paths]


@pytest.fixture(scope="module")
def torch_results(runs) -> dict[int, list[dict]]:
    """world size -> each rank's results."""
    return {world: _results(runs, f"torch{world}") for world in (2, 3)}


@pytest.fixture(scope="module")
def jax_results(runs) -> dict:
    return _results(runs, "jax")[0]


@pytest.fixture(scope="module")
def tensorflow_results(runs) -> dict:
    return _results(runs, "tensorflow")[0]


def _ratios(results: dict, prefix: str, name: str, dtype: str, shards: int) -> dict[str, tuple]:
    """tensor -> (error against the reference, difference from one device), each as a fraction
    of the policy's bound for S = ``shards`` (§11.5): ≤ 1 and ≤ PAIR_LIMIT pass."""
    case = CASES[name]
    want = expected(case, "gradients")
    single = f"{name}/{dtype}/single"
    ratios = {}
    for tensor, reference, kappa in zip(TENSORS, want.values, want.kappas, strict=True):
        S = shards if tensor in SUMMED else 1
        got = results[f"{prefix}/{tensor}"]
        ratios[tensor] = (
            tolerance.ratio(got, reference, dtype, case.T, kappa, shards=S),
            tolerance.ratio(got, results[f"{single}/{tensor}"], dtype, case.T, kappa, shards=S),
        )
    return ratios


def _averaging_ratio(results: dict, prefix: str, name: str, dtype: str, shards: int) -> float:
    """The averaging variant's worst parameter gradient against the reference, / the bound."""
    case, want = CASES[name], expected(CASES[name], "gradients")
    return max(
        tolerance.ratio(
            results[f"{prefix}/mean/{t}"],
            want.values[i],
            dtype,
            case.T,
            want.kappas[i],
            shards=shards,
        )
        for i, t in enumerate(TENSORS)
        if t in SUMMED[1:]
    )


def _assert_equal_to_one_device(results: dict, prefix: str, name: str, dtype: str, shards: int):
    ratios = _ratios(results, prefix, name, dtype, shards)
    bad = {t: r for t, r in ratios.items() if not (r[0] <= 1 and r[1] <= PAIR_LIMIT)}
    assert not bad, f"{prefix}: (vs reference, vs one device) / bound: {bad}"


def _assert_rejected(results: dict, prefix: str, name: str, dtype: str, shards: int):
    ratios = _ratios(results, prefix, name, dtype, shards)
    worst = max(ratios[t][1] for t in SUMMED[1:])
    assert worst > 100 * PAIR_LIMIT, f"{prefix}: an average passed: {ratios}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", DISTRIBUTED_CASES)
@pytest.mark.parametrize("world", [2, 3])
def test_torch_gloo_ranks_sum_to_one_device(torch_results, world, name, dtype):
    ranks = torch_results[world]
    for split in splits(CASES[name].B, world):
        prefix = f"{name}/{dtype}/{split}"
        for rank in ranks[1:]:  # every rank holds the same whole-batch result
            for tensor in TENSORS:
                np.testing.assert_array_equal(
                    rank[f"{prefix}/{tensor}"], ranks[0][f"{prefix}/{tensor}"]
                )
        _assert_equal_to_one_device(ranks[0], prefix, name, dtype, world)


@pytest.mark.parametrize("world", [2, 3])
def test_torch_a_refused_shard_raises_on_every_rank(torch_results, world):
    *others, last = [str(rank["errors/refused"]) for rank in torch_results[world]]
    assert last.startswith("y: expected class indices in [0, K) = [0, 5)"), last
    assert others == [f"x: the shard of rank(s) [{world - 1}] was refused; see the error there"] * (
        world - 1
    )


def test_tensorflow_sizes_must_split_the_batch(tensorflow_results):
    assert str(tensorflow_results["errors/sizes"]) == (
        "sizes: expected 2 non-negative shard sizes (one per replica) summing to B = 16, got [1]"
    )


def test_tensorflow_refuses_a_second_strategy(tensorflow_results):
    """The default strategy after an explicit one would abort the process's collectives."""
    cpus = ", ".join(f"/job:localhost/replica:0/task:0/device:CPU:{i}" for i in (0, 1))
    strategy = re.escape(f"MirroredStrategy over ({cpus}) at ") + "(0x[0-9a-f]+)"
    message = re.fullmatch(
        re.escape("strategy: expected the strategy this process's calls already use, ")
        + strategy
        + re.escape(" (a second one in one process aborts tf.distribute's collectives); got ")
        + re.escape("another, ")
        + strategy
        + re.escape(": pass the first one to every call, or strategy=None to every call for ")
        + re.escape("the default"),
        str(tensorflow_results["errors/strategy"]),
    )
    assert message, str(tensorflow_results["errors/strategy"])
    assert message[1] != message[2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", DISTRIBUTED_CASES)
@pytest.mark.parametrize("world", [2, 3])
def test_torch_ddp_averages_and_is_rejected(torch_results, world, name, dtype):
    """DistributedDataParallel around the closed form gives the sum divided by the world size."""
    results = torch_results[world][0]
    for split in splits(CASES[name].B, world):
        prefix = f"{name}/{dtype}/{split}"
        ddp = {t: results[f"{prefix}/{t}"] for t in ("L", "h0", "x")}  # DDP reduces .grad only
        ddp |= {t: results[f"{prefix}/mean/{t}"] for t in SUMMED[1:]}
        times_world = {t: v * world if t in SUMMED[1:] else v for t, v in ddp.items()}
        view = results | {f"ddp/{t}": v for t, v in ddp.items()}
        view |= {f"ddp_times_world/{t}": v for t, v in times_world.items()}
        _assert_rejected(view, "ddp", name, dtype, world)
        _assert_equal_to_one_device(view, "ddp_times_world", name, dtype, world)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", DISTRIBUTED_CASES)
def test_jax_shard_map_sums_to_one_device(jax_results, name, dtype):
    for devices in (4, 3):
        prefix = f"{name}/{dtype}/{devices}"
        _assert_equal_to_one_device(jax_results, prefix, name, dtype, devices)
    _assert_rejected(jax_results, f"{name}/{dtype}/3/mean", name, dtype, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", DISTRIBUTED_CASES)
def test_tensorflow_mirrored_strategy_sums_to_one_device(tensorflow_results, name, dtype):
    for split in splits(CASES[name].B, 2):
        prefix = f"{name}/{dtype}/{split}"
        _assert_equal_to_one_device(tensorflow_results, prefix, name, dtype, 2)
        _assert_rejected(tensorflow_results, f"{prefix}/mean", name, dtype, 2)


def test_worst_ratios_table(torch_results, jax_results, tensorflow_results, capsys):
    """SPEC.md §11.5's table: the worst ratio per engine and dtype, over every case and split, and
    the averaging variant's error against the reference where it is smallest (§11.3)."""
    runs = {  # engine -> (results, [(prefix suffix, S)] per case)
        "torch, 2 gloo ranks": (torch_results[2][0], lambda B: [(s, 2) for s in splits(B, 2)]),
        "torch, 3 gloo ranks": (torch_results[3][0], lambda B: [(s, 3) for s in splits(B, 3)]),
        "jax, 4 and 3 devices": (jax_results, lambda B: [("4", 4), ("3", 3)]),
        "tensorflow, 2 replicas": (tensorflow_results, lambda B: [(s, 2) for s in splits(B, 2)]),
    }
    lines = [
        "| engine | dtype | vs reference (≤ 1) | vs one device (≤ 2) | averaging variant |",
        "|---|---|---|---|---|",
    ]
    for engine, (results, split_list) in runs.items():
        for dtype in DTYPES:
            ratios, averaging = [], []
            for name in DISTRIBUTED_CASES:
                for split, S in split_list(CASES[name].B):
                    prefix = f"{name}/{dtype}/{split}"
                    ratios += _ratios(results, prefix, name, dtype, S).values()
                    if f"{prefix}/mean/U" in results:
                        averaging.append(_averaging_ratio(results, prefix, name, dtype, S))
            worst = [max(r[i] for r in ratios) for i in (0, 1)]
            lines.append(
                f"| {engine} | {dtype} | {worst[0]:.3f} | {worst[1]:.3f} | {min(averaging):.2g} |"
            )
    with capsys.disabled():
        print("\n" + "\n".join(lines))


@pytest.mark.parametrize("engine", ["torch", "jax", "tensorflow"])
def test_the_docs_programs_run_as_written(runs, engine):
    workers, started = runs
    if f"doc_{engine}" not in started:
        pytest.skip(f"{engine} is not installed")
    (process,), _ = started[f"doc_{engine}"]
    output = workers.wait([process])
    said = re.findall(r"= one device: (\w+)", output)
    assert said == ["True"] * (2 if engine == "torch" else 1), output[-3000:]
