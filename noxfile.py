"""Test sessions: `nox` runs the default list; `nox -s NAME` one session.

Each backend session installs the project with that backend's extra alone and runs the conformance
suite against it in float32 and float64. Environments are made by uv (`pip install "nox[uv]"`):
one shared package cache, hard-linked into every environment, so nine environments cost about the
disk of one with every framework. Every session installs CPU builds (cpu_builds): versions pinned by
constraints/cpu.txt, torch's CPU build (`+cpu`) from PyTorch's CPU-only wheel index, since on Linux
the package index's torch is a CUDA build of several GB. The default sessions run two at a time
(`nox.options.parallel`; `nox -j 1` runs them one by one), each one's output printed when it ends.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import nox

nox.needs_version = ">=2026.10.20"  # parallel sessions
# Bytecode (.pyc) is written where it pays for its disk, whatever the machine's
# PYTHONDONTWRITEBYTECODE says (some machines set it): the sessions write it, into .nox/ and the
# checkout's ignored __pycache__ folders, so that their dozens of Python processes do not compile
# every module they import afresh, nor pytest rewrite the suite's asserts afresh (a suite process
# that collects nothing: 3.5 s without bytecode, 1.3 s with it, on the 2-core machine), but for the
# sessions with torch or tensorflow (without_bytecode): there a few processes import a framework
# whose bytecode is 50-110 MiB an environment, which the default run's disk target cannot hold.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def without_bytecode(session):
    """No .pyc in this session's environment (see PYTHONDONTWRITEBYTECODE above)."""
    session.env["PYTHONDONTWRITEBYTECODE"] = "1"


nox.options.default_venv_backend = "uv"
nox.options.parallel = 2
nox.options.allow_parallel = True
# the longest first, so that the two lanes end together
nox.options.sessions = [
    "jax", "numpy", "tensorflow", "torch", "mlx", "cross", "distributed", "examples", "lint",
]  # fmt: skip

#: Where torch's CPU build comes from: PyTorch's CPU wheel index, or RNNSPEC_TORCH_INDEX (empty:
#: the package index and pip's configured wheel folders alone).
TORCH_INDEX = os.environ.get("RNNSPEC_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")


@cache
def _reachable(url: str) -> bool:
    try:
        socket.create_connection((urlparse(url).hostname, 443), timeout=5).close()
    except OSError:
        return False
    return True


def pip_find_links() -> list[str]:
    """The wheel folders pip is configured with (pip.conf, PIP_FIND_LINKS), which uv does not read:
    where a machine keeps its CPU build of torch when PyTorch's index is out of reach."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    found = re.findall(r"^\S*\.find-links='(.*)'$", listed, flags=re.M)
    found.append(os.environ.get("PIP_FIND_LINKS", ""))
    return list(dict.fromkeys(link for entry in found for link in entry.split()))


@cache
def cpu_builds() -> tuple[str, ...]:
    """uv pip options for CPU builds: the pins (torch's `+cpu` build on Linux), and PyTorch's CPU
    index where it can be reached; where it cannot, pip's configured wheel folders (a machine with
    no way there, such as this project's, keeps its CPU build there), and it says so once. With
    neither, the install fails at once on the `+cpu` pin instead of fetching a CUDA build."""
    options: tuple[str, ...] = ("-c", "constraints/cpu.txt")
    if TORCH_INDEX and _reachable(TORCH_INDEX):
        # best match across both indexes, as pip does: uv's default takes every package that the
        # first index has (numpy included) from it
        return (*options, "--extra-index-url", TORCH_INDEX, "--index-strategy", "unsafe-best-match")
    links = pip_find_links()
    for link in links:
        options += ("--find-links", link)
    if TORCH_INDEX:
        print(f"nox: {TORCH_INDEX} is out of reach: torch from pip's wheel folders {links}")
    return options


def share_reference(session):
    """The reference's answers kept in nox's cache folder for every later process of every session
    (conformance/oracle.py keys them by their sources): computing them is most of a NumPy run."""
    # absolute: sessions and tests run the suite from other directories too (examples, layers)
    session.env["RNNSPEC_REFERENCE_CACHE"] = str(Path(session.cache_dir).resolve() / "reference")


def conform(session, backend):
    """The suite as a third party runs it: the installed plugin, the installed package's checks."""
    session.run("pytest", "--pyargs", "rnnspec.conformance", "--backend", backend, *session.posargs)


def bench_calls(session, framework):
    """The benchmark's calls for this framework on small copies of the masked, relu and flow
    workloads (a full `rnnspec bench` takes minutes per framework)."""
    session.run(
        "pytest", "tests/test_bench.py", "-k", f"take_other_calls and {framework}",
        *session.posargs,
    )  # fmt: skip


def certify_from_empty(session, names, verdicts_only: bool = False) -> Path:
    """`rnnspec conform --backend NAME --json NAME.json` for each name, from an empty directory
    (installed as a user installs them, nothing of the checkout on the path), each in a process of
    its own; each verdict logged. A backend that is not certified fails the session, unless
    ``verdicts_only`` (the witnesses: a disagreement is a finding to report, not a crash).
    Returns the directory of the certificates."""
    empty = (Path(session.create_tmp()) / "empty").resolve()  # reports land here after chdir
    empty.mkdir(exist_ok=True)
    session.chdir(empty)
    for name in names:
        report = empty / f"{name}.json"
        codes = [0, 1] if verdicts_only else [0]
        session.run("rnnspec", "conform", "--backend", name, "--json", str(report),
                    env={"TF_CPP_MIN_LOG_LEVEL": "2"}, success_codes=codes)  # fmt: skip
        certificate = json.loads(report.read_text())
        (backend,) = certificate["backends"]
        if "error" in backend:  # not loaded: the suite ran nothing
            session.error(f"{name}: {backend['error']}")
        verdict = "certified" if backend["certified"] else "NOT certified"
        session.log(
            f"{verdict}: {backend['backend']} ({backend['framework_version']}), "
            f"{' + '.join(backend['dtypes'])}: {backend['summary']}"
        )
    return empty


#: the witnesses of compiled paths that take a minute or less (examples/framework-layers, README.md
#: "Results"), certified in their framework's default session; the others in `nox -s witnesses`
FAST_WITNESSES = {"torch": ("torch_func",), "mlx": ("mlx_compile",)}


@nox.session
def lint(session):
    session.install(*cpu_builds(), "-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    staged = session.create_tmp()  # mypy follows no import hooks: the namespace as links
    session.run("python", "scripts/stage.py", staged, silent=True)
    session.run("mypy", env={"MYPYPATH": staged})


@nox.session
def numpy(session):
    """The NumPy backend, and the suite's own tests (wrong backends rejected, helpers, CLI)."""
    # pip too: tests/test_packaging.py builds the wheel with pip, as a user does
    session.install(*cpu_builds(), "-e", ".[numpy,test]", "pip")
    share_reference(session)
    conform(session, "numpy")
    session.run("pytest", "tests", *session.posargs)


@nox.session(name="torch")
def torch_session(session):
    without_bytecode(session)
    session.install(*cpu_builds(), "-e", ".[torch,test]")
    share_reference(session)
    conform(session, "torch")
    # SPEC.md §12–§13 against torch.nn.RNN's own stacks, directions and packed sequences
    session.run("pytest", "tests/test_stack_conventions.py", *session.posargs)
    bench_calls(session, "torch")
    session.install(*cpu_builds(), "./examples/framework-layers")
    session.run("pytest", "tests/test_torch_nn_rnn_devices.py", *session.posargs)
    certify_from_empty(session, FAST_WITNESSES["torch"])


@nox.session(name="jax")
def jax_session(session):
    session.install(*cpu_builds(), "-e", ".[jax,test]")
    share_reference(session)
    conform(session, "jax")  # the suite enables x64 in its own process for float64
    session.run("pytest", "tests/test_jax_x64.py", *session.posargs)
    bench_calls(session, "jax")


@nox.session(name="tensorflow")
def tensorflow_session(session):
    without_bytecode(session)
    session.install(*cpu_builds(), "-e", ".[tensorflow-cpu,test]")
    share_reference(session)
    conform(session, "tensorflow")
    bench_calls(session, "tensorflow")


@nox.session(name="mlx")
def mlx_session(session):
    """MLX's CPU build (mlx[cpu]; on Linux the only one), the MLX state check's own test, the
    benchmark's MLX calls and the mx.compile witness."""
    session.install(*cpu_builds(), "-e", ".[mlx,test]")
    share_reference(session)
    conform(session, "mlx")
    session.run(
        "pytest", "tests/test_suite_rejects_stateful_backends.py", "-k", "mlx", *session.posargs
    )
    bench_calls(session, "mlx")
    session.install(*cpu_builds(), "./examples/framework-layers")
    certify_from_empty(session, FAST_WITNESSES["mlx"])


@nox.session
def cross(session):
    """Every framework in one environment; every backend compared with every other; a third φ
    added to every backend by one line each (tests/test_third_nonlinearity.py)."""
    without_bytecode(session)
    session.install(*cpu_builds(), "-e", ".[torch,jax,tensorflow-cpu,mlx,test]")
    share_reference(session)
    session.run("pytest", "tests/test_cross.py", "tests/test_devices.py",
                "tests/test_third_nonlinearity.py", "-v", *session.posargs,
                env={"JAX_ENABLE_X64": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip


@nox.session
def distributed(session):
    """rnnspec.distributed on each framework's own engine (docs/distributed.md): torch with 2 and 3
    gloo ranks on 127.0.0.1, JAX on 4 host devices, TensorFlow on 2 logical CPUs, each certified
    equal to one device and the averaging variants rejected; about a minute on 2 CPU cores."""
    without_bytecode(session)
    session.install(*cpu_builds(), "-e", ".[test,torch,jax,tensorflow-cpu]")
    share_reference(session)
    session.run("pytest", "tests/test_distributed.py", *session.posargs,
                env={"TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip


@nox.session
def examples(session):
    """The worked third-party backend in examples/array-api-backend, installed as a user installs it
    (rnnspec and the example from their folders, not editable) and certified from an empty
    directory by `rnnspec conform` through its entry point (the whole suite), after plain pytest
    through the plugin, module:factory, has run a part of it (the protocol and golden checks: that
    way of naming a backend works; the checks are the same). The example must import nothing of
    rnnspec but rnnspec.spec."""
    session.install(*cpu_builds(), ".")
    session.install(*cpu_builds(), "./examples/array-api-backend")
    share_reference(session)
    empty = (Path(session.create_tmp()) / "empty").resolve()  # the reports land here after chdir
    empty.mkdir(exist_ok=True)
    session.chdir(empty)
    session.run(
        "python", "-c",
        "import sys, rnnspec_array_api; "
        "used = sorted(m for m in sys.modules if m.startswith('rnnspec.')); "
        "assert used == ['rnnspec.spec'] + [m for m in used if m.startswith('rnnspec.spec.')], used",
    )  # fmt: skip
    session.run(
        "pytest", "--pyargs", "rnnspec.conformance", "--backend", "rnnspec_array_api:ArrayApiBackend",
        "-q", "-p", "no:cacheprovider", "-k", "protocol or golden",
    )  # fmt: skip
    report = empty / "report.json"
    session.run("rnnspec", "conform", "--backend", "array_api_strict", "--json", str(report))
    certificate = json.loads(report.read_text())  # the exit code said pass; this says what passed
    (backend,) = certificate["backends"]
    session.log(
        f"certified: {backend['backend']} ({backend['framework_version']}) passes conformance "
        f"suite {certificate['suite_version']}, protocol {certificate['protocol_version']}: "
        f"{backend['summary']}"
    )


@nox.session
def bench(session):
    """`rnnspec bench` over every framework: the table, bench-results/cpu.bench.json and
    bench-results/cpu.png, then docs/benchmarks.md's tables regenerated from that JSON
    (rnnspec.bench.markdown) and the plot copied to docs/bench-cpu.png. Not in the default list:
    48 minutes on 2 CPU cores with every framework and workload (MLX's worker alone about 15
    minutes a round: its CPU matmul runs at a few GFLOP/s), and it wants a quiet machine. Extra
    options go to rnnspec bench (`nox -s bench -- --quick`); a run with extra options leaves the
    docs as they are."""
    session.install(*cpu_builds(), "-e", ".[torch,jax,tensorflow-cpu,mlx,bench]")
    results, plot = "bench-results/cpu.bench.json", "bench-results/cpu.png"
    session.run(
        "rnnspec", "bench", "--rounds", "2", "--json", results, "--plot", plot,
        *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    if session.posargs:
        session.log(
            f"options given ({' '.join(session.posargs)}): docs/benchmarks.md and "
            f"docs/bench-cpu.png left as they are; only a full run (no options) rewrites them"
        )
        return
    session.run("python", "-m", "rnnspec.bench.markdown", results, "docs/benchmarks.md")
    shutil.copyfile(plot, "docs/bench-cpu.png")
    session.log(f"copied {plot} to docs/bench-cpu.png")


@nox.session(venv_backend="venv")  # the reader's pip, configured as below, not uv
def docs(session):
    """Every shell command shown in README.md, docs/ and the examples' READMEs, in order, as a
    reader runs them: a fresh environment, a copy of the checkout (tests/doc_commands.py lists
    them and the placeholders it fills in). A command that needs a GPU must fail here with its
    one-line error. Not in the default list: the benchmark commands alone take about half an hour."""
    import runpy  # the listing's functions, without putting tests/ on nox's sys.path

    listing = runpy.run_path("tests/doc_commands.py")
    RUN_ELSEWHERE, commands, expected_failure = (
        listing[name] for name in ("RUN_ELSEWHERE", "commands", "expected_failure")
    )

    copy = Path(session.create_tmp()).resolve() / "rnnspec"
    shutil.rmtree(copy, ignore_errors=True)
    ignored = (".git", ".nox", "*.egg-info", "build", "__pycache__", "bench-results")
    shutil.copytree(Path.cwd(), copy, ignore=shutil.ignore_patterns(*ignored))
    session.chdir(copy)
    # the reader's pip, told what the sessions tell uv (pip reads its own wheel folders itself)
    env = {"PIP_CONSTRAINT": str(copy / "constraints/cpu.txt"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if "--extra-index-url" in cpu_builds():
        env["PIP_EXTRA_INDEX_URL"] = TORCH_INDEX
    ran = set()
    for command in commands(copy):
        if command.shown in RUN_ELSEWHERE or command.run in ran:
            continue
        ran.add(command.run)
        text = command.run.replace("{root}", str(copy))
        session.log(f"{command.source}: {text}")
        failure = expected_failure(command)
        if failure is None:
            session.run("bash", "-c", text, env=env, external=True)
            continue
        output = session.run(
            "bash", "-c", f"{text} 2>&1", env=env, external=True, silent=True, success_codes=[1, 4]
        )
        if not re.search(failure, output or "") or "Traceback" in (output or ""):
            session.error(f"{command.source}: expected a one-line {failure!r}, got:\n{output}")


@nox.session
def mutation(session):
    """Mutation testing of the conformance suite (docs/mutation.md): every mutant mutmut makes of
    backends/numpy.py, spec/reference.py and spec/reference_flow.py, each run against the suite's
    tests that execute its function (recorded once by a traced unmutated run), fastest first, with
    --backend numpy (-x, a timeout per mutant); the score per file goes to build/mutation.json and
    docs/mutation.md. Survivors judged equivalent are listed in scripts/mutation_equivalents.toml.
    Not in the default list: about 75 minutes on two cores (22 mutants a minute, measured
    on backends/numpy.py's 643). Extra
    options go to scripts/mutation.py (`nox -s mutation -- --only numpy`, `-- --jobs 4`)."""
    session.install(*cpu_builds(), "-e", ".[numpy,test]", "mutmut==3.8.1")  # its internal API
    session.run(
        "python", "scripts/mutation.py", "--json", "build/mutation.json", "--doc", "docs/mutation.md",
        *session.posargs,
    )  # fmt: skip


#: the wrappers of examples/framework-layers, by their entry-point names
LAYER_BACKENDS = ("torch_nn_rnn", "keras_jax", "keras_torch", "keras_tensorflow", "flax_linen")


@nox.session
def layers(session):
    """The frameworks' own RNN layers wrapped as backends (examples/framework-layers): torch.nn.RNN,
    keras.layers.SimpleRNN on each Keras backend, flax.linen nn.RNN(SimpleCell), installed as a
    user installs them and certified one by one from an empty directory, each in a process of its
    own (Keras picks its backend once per process). Keras and flax at the versions the README's
    results were measured with. Not in the default list: the five runs take about 5 minutes on 2
    CPU cores, after the install."""
    session.install(*cpu_builds(), ".[torch,jax,tensorflow-cpu]", "keras==3.15.1", "flax==0.12.8")
    session.install(*cpu_builds(), "./examples/framework-layers")
    share_reference(session)
    empty = (Path(session.create_tmp()) / "empty").resolve()  # reports land here after chdir
    empty.mkdir(exist_ok=True)
    session.chdir(empty)
    session.run(
        "python", "-c",
        "import sys, rnnspec_layers.torch_rnn, rnnspec_layers.keras_rnn, rnnspec_layers.flax_rnn; "
        "used = sorted(m for m in sys.modules if m.startswith('rnnspec.')); "
        "assert used == ['rnnspec.spec'] + [m for m in used if m.startswith('rnnspec.spec.')], used",
    )  # fmt: skip
    certify_from_empty(session, LAYER_BACKENDS)
    session.run("python", "-m", "rnnspec.scoreboard", str(empty), *LAYER_BACKENDS)  # README tables


#: the witnesses of the frameworks' compilers and loop primitives (examples/framework-layers)
WITNESS_BACKENDS = (
    "torch_func", "torch_scan_closed_over", "torch_scan_carried", "torch_compile_loop",
    "torch_compile_nn_rnn", "tf_xla_scan", "keras_tensorflow_xla", "jax_scan_checkpoint",
    "jax_scan_unroll", "mlx_compile",
)  # fmt: skip


@nox.session
def witnesses(session):
    """The frameworks' compilers and loop primitives as witnesses (examples/framework-layers,
    "Compiled paths"): torch.func, torch's scan with the weights closed over and carried,
    torch.compile of a loop and of nn.RNN, XLA over tf.scan and over Keras' SimpleRNN,
    jax.checkpoint and unroll in lax.scan, mx.compile; installed as a user installs them and
    certified one by one from an empty directory, each in a process of its own. Not in the default
    list: compilers compile once per shape, and the suite has many shapes (durations: README.md
    of the example)."""
    session.install(
        *cpu_builds(), ".[torch,jax,tensorflow-cpu,mlx]", "keras==3.15.1", "flax==0.12.8"
    )
    session.install(*cpu_builds(), "./examples/framework-layers")
    share_reference(session)
    names = session.posargs or WITNESS_BACKENDS  # `nox -s witnesses -- mlx_compile`: one of them
    empty = certify_from_empty(session, names, verdicts_only=True)
    session.run("python", "-m", "rnnspec.scoreboard", str(empty), *names)  # README tables


@nox.session(name="scoreboard")
def scoreboard_session(session):
    """The conformance scoreboard, docs/scoreboard/ (index.html and its Markdown twin) and its
    screenshot docs/scoreboard.png: every backend installed here, the built-in ones, the worked
    third-party backend (examples/array-api-backend) and the framework layers
    (examples/framework-layers), certified one by one by `rnnspec conform`, each in a process of
    its own, then `rnnspec scoreboard` over their certificates. A backend that fails is on the
    board as failing. Not in the default list: about 20 minutes on 2 CPU cores after the install,
    and the screenshot needs Chromium (Debian: apt-get install chromium)."""
    session.install(
        *cpu_builds(), "-e", ".[torch,jax,tensorflow-cpu,mlx]", "keras==3.15.1", "flax==0.12.8"
    )
    session.install(*cpu_builds(), "./examples/array-api-backend", "./examples/framework-layers")
    share_reference(session)
    certificates = Path(session.create_tmp()).resolve() / "certificates"
    shutil.rmtree(certificates, ignore_errors=True)
    certificates.mkdir()
    names = session.run(
        "python", "-c", "from rnnspec import backends; print(*backends.available())", silent=True
    )
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in (names or "").split():
        report = certificates / f"{name}.json"
        session.run("rnnspec", "conform", "--backend", name, "--json", str(report), env=env,
                    success_codes=[0, 1])  # fmt: skip
    session.run(
        "rnnspec", "scoreboard", str(certificates), "--into", "docs/scoreboard",
        "--screenshot", "docs/scoreboard.png",
    )  # fmt: skip
