"""Mutation testing of the conformance suite: how many of mutmut's mutants of backends/numpy.py,
spec/reference.py and spec/reference_flow.py does `pytest --pyargs rnnspec.conformance --backend
numpy` kill?

    python scripts/mutation.py [--jobs 2] [--timeout 90] [--json build/mutation.json]
                               [--doc docs/mutation.md] [--only numpy|reference|flow] [--limit N]

mutmut (3.x) generates the mutants: its parser and mutation operators (mutmut.mutation.file_mutation
.create_mutations), the same set `mutmut run` would make, one mutant per mutation. mutmut's own
runner is not used: it copies the tree into mutants/ and imports the copy through trampolines, which
this repository's package-dir mapping (spec/ → rnnspec.spec, backends/ → rnnspec.backends) defeats.
Instead each mutant is written into a staged namespace (scripts/stage.py: links to the checkout)
where the mutated file alone is a real file, and the suite runs against it in a fresh process with
PYTHONPATH set to the stage (-x, one timeout per mutant). Nothing in the checkout is modified.

Test selection (as mutmut's own runner does it): once per run, the whole suite runs on the unmutated
files with scripts/mutation_plugin.py recording, for every test, the functions of the mutated files
it executes and its duration (this run is also the baseline, which must pass). A mutant in function
f then runs only the tests that executed f, fastest first, so that -x stops a killed mutant within
seconds; a test that never calls f cannot see a change inside f. A mutant whose function no test
executes survives without a run ("not covered"). A mutant whose function runs outside any test (at
import or collection: the backend's loading), or that the tracer's names cannot be matched to, runs
the whole suite. `--select whole-suite` runs every mutant against the whole suite, as before.

A mutant is killed when the suite fails (or errors, or times out), and survives when it passes.
Survivors judged equivalent are listed, with the reason, in scripts/mutation_equivalents.toml (file,
function, the original line and the mutated line, stripped); they leave the denominator. The score
of a file is killed / (mutants − equivalent). The doc's tables and survivors are written from the run,
with the SHA-256 of each file mutated, so that tests/test_mutation_page.py sees a page gone stale.
"""

import argparse
import datetime
import difflib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from mutation_plugin import GLOBAL, SELECTION_MISMATCH, top_level  # noqa: E402
from stage import stage  # noqa: E402

#: The files mutated, with the package their folder maps to (pyproject's package-dir).
TARGETS = {
    "numpy": ("backends/numpy.py", "backends"),
    "reference": ("spec/reference.py", "spec"),
    "flow": ("spec/reference_flow.py", "spec"),
}
OPTIONS = ("--backend", "numpy", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly")
SUITE = ("-m", "pytest", "--pyargs", "rnnspec.conformance", *OPTIONS)
EQUIVALENT = ROOT / "scripts" / "mutation_equivalents.toml"
PLUGIN = ROOT / "scripts" / "mutation_plugin.py"
SELECTION = "each mutant against the tests that execute its function, fastest first"


@dataclass
class Mutant:
    file: str
    function: str
    index: int  # 1-based within the function, as mutmut numbers them (function__mutmut_N)
    line: int
    original: str
    mutated: str
    status: str = ""  # killed, survived, timeout, equivalent (a survivor listed in the TOML)
    seconds: float = 0.0
    reason: str = ""
    scope: str = ""  # the function as the tracer names it: f, or Class.method
    selection: str = ""  # covering tests, whole suite (outside tests or unmatched), not covered
    tests: int = 0  # tests selected (0: the whole suite, or none when not covered)

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line} {self.function}__mutmut_{self.index}"


def mutants_of(path: str) -> list[tuple[Mutant, str]]:
    """Every mutant mutmut makes of the file, each with the whole mutated source."""
    import libcst as cst
    from mutmut.mutation.file_mutation import create_mutations, deep_replace

    source = (ROOT / path).read_text()
    module, mutations, _, ignored_functions = create_mutations(path, source)
    scopes = {}  # mutmut's top-level function nodes, named as the tracer names their code
    for statement in module.body:
        if isinstance(statement, cst.FunctionDef):
            scopes[statement] = statement.name.value
        elif isinstance(statement, cst.ClassDef) and isinstance(statement.body, cst.IndentedBlock):
            for method in statement.body.body:
                if isinstance(method, cst.FunctionDef):
                    scopes[method] = f"{statement.name.value}.{method.name.value}"
    compiled = compiled_functions(source, path)
    counts: dict[str, int] = {}
    out = []
    for mutation in mutations:
        func = mutation.contained_by_top_level_function
        if not isinstance(func, cst.FunctionDef) or func.name.value in ignored_functions:
            continue  # mutmut only mutates inside functions (its trampolines)
        name = func.name.value
        counts[name] = counts.get(name, 0) + 1
        mutated_module = deep_replace(module, mutation.original_node, mutation.mutated_node)
        code = cast(cst.Module, mutated_module).code
        if code == source:
            continue
        old, new = source.splitlines(), code.splitlines()
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        (_, i1, i2, j1, j2) = next(op for op in matcher.get_opcodes() if op[0] != "equal")
        original = " / ".join(s.strip() for s in old[i1:i2])
        mutated = " / ".join(s.strip() for s in new[j1:j2])
        scope = scopes.get(func, "")
        scope = scope if scope in compiled else ""  # a name the tracer cannot see: whole suite
        out.append((Mutant(path, name, counts[name], i1 + 1, original, mutated, scope=scope), code))
    return out


def compiled_functions(source: str, path: str) -> set[str]:
    """The functions the tracer can name in this file: its code objects' qualified names."""
    names, todo = set(), [compile(source, path, "exec")]
    while todo:
        code = todo.pop()
        names.add(top_level(code.co_qualname))
        todo += [c for c in code.co_consts if hasattr(c, "co_qualname")]
    return names


def make_stage(base: Path, package_folder: str) -> Path:
    """A staged namespace whose `package_folder` package is a real folder of links, so that one of
    its files can be replaced by a mutant."""
    stage(base)
    (base / PLUGIN.name).symlink_to(PLUGIN)
    if not package_folder:
        return base
    link = base / "rnnspec" / package_folder
    link.unlink()
    link.mkdir()
    for entry in (ROOT / package_folder).iterdir():
        if entry.name != "__pycache__":
            (link / entry.name).symlink_to(entry)
    return base


def run_suite(
    stage_dir: Path, cwd: Path, timeout: float, tests: list[str] | None = None, **env_extra: str
) -> tuple[str, float]:
    """The suite, or only these tests (ids as scripts/mutation_plugin.py names them) in this
    order, collected from their modules alone."""
    env = dict(os.environ, PYTHONPATH=str(stage_dir), PYTHONDONTWRITEBYTECODE="1", **env_extra)
    # no reference cache: a mutant of the reference would key a new folder's worth of answers
    env.pop("RNNSPEC_REFERENCE_CACHE", None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    modules = ["rnnspec.conformance"]
    if tests is not None:
        (selection := cwd / "selection.txt").write_text("\n".join(tests) + "\n")
        env["RNNSPEC_MUTATION_SELECT"] = str(selection)
        modules = list(dict.fromkeys(t.split("::", 1)[0] for t in tests))
    command = [sys.executable, "-m", "pytest", "--pyargs", *modules, *OPTIONS]
    command += ["-p", "mutation_plugin"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=env, timeout=timeout, capture_output=True)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    if done.returncode == SELECTION_MISMATCH:
        raise RuntimeError(f"the selection does not match the collection: {done.stdout[-500:]!r}")
    return ("survived" if done.returncode == 0 else "killed"), time.perf_counter() - start


def record_coverage(base: Path, cwd: Path, paths: list[str], timeout: float) -> dict:
    """The unmutated suite, traced: {test id: (seconds, {file: {function}})} and the functions
    run outside any test; None if the suite fails."""
    out = cwd / "coverage.json"
    files = os.pathsep.join(str((ROOT / p).resolve()) for p in paths)
    status, seconds = run_suite(
        base, cwd, timeout, RNNSPEC_MUTATION_RECORD=str(out), RNNSPEC_MUTATION_FILES=files
    )
    if status != "survived":
        raise SystemExit(f"baseline: the suite fails ({status}) on the unmutated files")
    raw = json.loads(out.read_text())
    of_real = {str((ROOT / p).resolve()): p for p in paths}

    def split(keys):
        by_file: dict[str, set[str]] = {}
        for key in keys:
            real, function = key.rsplit("::", 1)
            by_file.setdefault(of_real[real], set()).add(function)
        return by_file

    return {
        "seconds": seconds,
        "outside": split(raw[GLOBAL]),
        "tests": {name: (t["seconds"], split(t["functions"])) for name, t in raw["tests"].items()},
    }


def select(mutant: Mutant, coverage: dict | None) -> list[str] | None:
    """The tests to run against a mutant, fastest first; None: the whole suite."""
    if coverage is None or not mutant.scope:
        return None
    if mutant.scope in coverage["outside"].get(mutant.file, ()):
        return None
    order = list(coverage["tests"])
    covering = [n for n in order if mutant.scope in coverage["tests"][n][1].get(mutant.file, ())]
    return sorted(covering, key=lambda n: coverage["tests"][n][0])  # stable: suite order on ties


def equivalents() -> list[dict]:
    if not EQUIVALENT.exists():
        return []
    return tomllib.loads(EQUIVALENT.read_text()).get("mutant", [])


def listed(m: Mutant, entries: list[dict]) -> dict | None:
    for e in entries:
        if (e["file"], e["function"], e["original"], e["mutated"]) == (
            m.file, m.function, m.original, m.mutated,
        ):  # fmt: skip
            return e
    return None


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per mutant")
    parser.add_argument("--json", default="build/mutation.json")
    parser.add_argument("--doc", default=None, help="write the results into this markdown file")
    parser.add_argument("--only", choices=sorted(TARGETS), action="append")
    parser.add_argument("--limit", type=int, default=0, help="first N mutants per file (trial)")
    parser.add_argument("--min-score", type=float, default=0.0, help="fail below this (percent)")
    parser.add_argument(
        "--rerun-survivors", metavar="JSON",
        help="run again only the mutants that survived or timed out, unlisted, in this earlier "
        "run (its JSON, or progress files as for --resume), after a check was added; every other "
        "mutant keeps its recorded result",
    )  # fmt: skip
    parser.add_argument(
        "--resume", metavar="JSONL",
        help="reuse every result recorded in these progress files (the --json path + 'l', "
        "written as the run goes; comma-separated) for the same mutant; run only the others",
    )  # fmt: skip
    parser.add_argument(
        "--deadline", type=float, default=0.0, metavar="SECONDS",
        help="start no mutant after this many seconds; those left are reported as not run",
    )  # fmt: skip
    parser.add_argument(
        "--stride", type=int, default=1, metavar="K",
        help="run every K-th mutant of each file only (a sample spread over the file); the others "
        "are reported as not run",
    )  # fmt: skip
    parser.add_argument(
        "--select", choices=("coverage", "whole-suite"), default="coverage",
        help="run each mutant against the tests that execute its function, fastest first "
        "(default), or against the whole suite",
    )  # fmt: skip
    args = parser.parse_args()
    previous = load_results(args.rerun_survivors or args.resume)
    progress = Path(args.json + "l")
    progress.parent.mkdir(parents=True, exist_ok=True)
    progress.write_text("")

    import mutmut

    version = getattr(mutmut, "__version__", None) or _dist_version("mutmut")
    started = time.time()
    entries = equivalents()
    results: dict[str, list[Mutant]] = {}
    digests: dict[str, str] = {}
    keys = args.only or list(TARGETS)
    coverage = None
    with tempfile.TemporaryDirectory(prefix="rnnspec-mutation-") as tmp:
        if args.select == "coverage":
            (cwd := Path(tmp) / "record-cwd").mkdir()
            base = make_stage(Path(tmp) / "record", "")
            coverage = record_coverage(base, cwd, [TARGETS[k][0] for k in keys], args.timeout * 10)
            print(f"coverage: {len(coverage['tests'])} tests recorded, baseline "
                  f"{coverage['seconds']:.1f} s", flush=True)  # fmt: skip
        for key in keys:
            path, folder = TARGETS[key]
            digests[path] = sha256_of(path)  # the file as its mutants were made from it
            todo = mutants_of(path)
            kept: list[Mutant] = []
            if previous is not None:
                before = {(m["function"], m["index"], m["original"], m["mutated"]): m
                          for m in previous["mutants"].get(path, [])}  # fmt: skip
                rerun = []
                for mutant, code in todo:
                    old = before.get(
                        (mutant.function, mutant.index, mutant.original, mutant.mutated)
                    )
                    if args.rerun_survivors:  # only what survived and is not listed as equivalent
                        if old is None:
                            mutant.status = "not run"
                            kept.append(mutant)
                        elif old["status"] in ("survived", "timeout") and not listed(
                            Mutant(**old), entries
                        ):  # a timeout again too: under load a slow kill or a slow survivor
                            rerun.append((mutant, code))
                        else:
                            kept.append(Mutant(**old))
                    elif old is None or old["status"] == "not run":  # --resume: what is left
                        rerun.append((mutant, code))
                    else:
                        kept.append(Mutant(**old))
                todo = rerun
            if args.limit:
                todo = todo[: args.limit]
            for i, (mutant, _) in enumerate(todo):
                if i % args.stride:
                    mutant.status = "not run"
            slots = []
            for j in range(args.jobs):
                base = make_stage(Path(tmp) / f"{key}-{j}", folder)
                (cwd := Path(tmp) / f"{key}-{j}-cwd").mkdir()
                slots.append((base, cwd, base / "rnnspec" / folder / Path(path).name))
            if coverage is None and any(m.status != "not run" for m, _ in todo):  # a suite to run
                status, seconds = run_suite(slots[0][0], slots[0][1], args.timeout * 3)
                if status != "survived":
                    print(f"baseline: the suite fails on the unmutated {path}", file=sys.stderr)
                    return 2
                print(f"{path}: {len(todo)} mutants, baseline {seconds:.1f} s", flush=True)
            free = list(range(args.jobs))
            with progress.open("a") as log:
                for m in kept:
                    log.write(json.dumps(asdict(m), ensure_ascii=False) + "\n")

            def one(item, free=free, slots=slots):
                mutant, code = item
                late = args.deadline and time.time() - started > args.deadline
                if mutant.status == "not run" or late:
                    mutant.status = "not run"
                    return mutant
                tests = select(mutant, coverage)
                mutant.tests = len(tests or ())
                mutant.selection = (
                    "whole suite" if tests is None else "covering tests" if tests else "not covered"
                )
                if tests == []:  # no test executes its function: it survives without a run
                    mutant.status, mutant.seconds = "survived", 0.0
                else:
                    slot = free.pop()
                    base, cwd, target = slots[slot]
                    try:
                        target.unlink(missing_ok=True)  # a link into the checkout: never write
                        target.write_text(code)
                        mutant.status, mutant.seconds = run_suite(base, cwd, args.timeout, tests)
                    finally:
                        free.append(slot)
                if mutant.status == "survived" and (entry := listed(mutant, entries)):
                    mutant.status, mutant.reason = "equivalent", entry["reason"]
                with progress.open("a") as log:
                    log.write(json.dumps(asdict(mutant), ensure_ascii=False) + "\n")
                print(f"  {mutant.status:10} {mutant.seconds:5.1f}s {mutant.tests:4} tests "
                      f"{mutant.name}: "
                      f"{mutant.original!r} -> {mutant.mutated!r}", flush=True)  # fmt: skip
                return mutant

            with ThreadPoolExecutor(args.jobs) as pool:
                results[path] = sorted(
                    kept + list(pool.map(one, todo)), key=lambda m: (m.line, m.function, m.index)
                )
    elapsed = time.time() - started

    summary = {}
    for mutants in results.values():  # the equivalents list as it stands now, for kept results too
        for m in mutants:
            if m.status in ("survived", "equivalent", "timeout"):  # a listed timeout: too slow
                entry = listed(m, entries)  # a machine, not a hang (the TOML says which)
                if entry:
                    m.status, m.reason = "equivalent", entry["reason"]
                elif m.status == "equivalent":
                    m.status, m.reason = "survived", ""
    for path, mutants in results.items():
        n = len(mutants)
        not_run = sum(m.status == "not run" for m in mutants)
        n -= not_run
        killed = sum(m.status in ("killed", "timeout") for m in mutants)
        timeouts = sum(m.status == "timeout" for m in mutants)
        equivalent = sum(m.status == "equivalent" for m in mutants)
        survived = n - killed - equivalent
        score = 100.0 * killed / (n - equivalent) if n > equivalent else None  # none run: none
        summary[path] = dict(mutants=n, killed=killed, equivalent=equivalent, survived=survived,
                             score=None if score is None else round(score, 1), not_run=not_run,
                             timeouts=timeouts)  # fmt: skip
        print(f"{path}: {killed}/{n - equivalent} killed ({percent(score)}), {equivalent} "
              f"equivalent, {survived} surviving, {not_run} not run, {timeouts} timed out")  # fmt: skip
    record = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "backends", "spec", "conformance")),
        "sha256": digests,
        "tool": f"mutmut {version}",
        "python": sys.version.split()[0],
        "command": " ".join(["python", "scripts/mutation.py", *sys.argv[1:]]),
        "suite": " ".join(["python", *SUITE]),
        "selection": SELECTION if coverage else "each mutant against the whole suite",
        "coverage": coverage
        and {
            "tests": len(coverage["tests"]),
            "pairs": sum(len(fs) for _, by in coverage["tests"].values() for fs in by.values()),
            "functions": len(
                {
                    (f, fn)
                    for _, by in coverage["tests"].values()
                    for f, fs in by.items()
                    for fn in fs
                }
            ),
            "outside_tests": sum(len(fs) for fs in coverage["outside"].values()),
            "record_s": round(coverage["seconds"]),
        },
        "timeout_s": args.timeout,
        "jobs": args.jobs,
        "mode": "rerun-survivors" if args.rerun_survivors else "resume" if args.resume else "full",
        "elapsed_s": round(elapsed),
        "suite_seconds_total": round(sum(m.seconds for ms in results.values() for m in ms)),
        "rerun_of": previous and {k: previous[k] for k in ("date", "commit", "elapsed_s")},
        "summary": summary,
        "mutants": {p: [asdict(m) for m in ms] for p, ms in results.items()},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1))
    print(f"{args.json} written; {elapsed:.0f} s")
    if args.doc:
        write_doc(Path(args.doc), record)
        print(f"{args.doc} written")
    unlisted = [e for e in entries if not any(
        listed(Mutant(**{k: v for k, v in m.items() if k in Mutant.__annotations__}), [e])
        for ms in record["mutants"].values() for m in ms)]  # fmt: skip
    if unlisted and not args.limit and not args.only:
        print(f"warning: {len(unlisted)} entries of {EQUIVALENT.name} match no mutant (stale?)")
    worst = min((s["score"] for s in summary.values() if s["score"] is not None), default=100.0)
    return 1 if worst < args.min_score else 0


def load_results(path: str | None) -> dict | None:
    """An earlier run's results: its JSON record, or one or more progress files (JSONL, one
    mutant a line, comma-separated paths), as a record."""
    if not path:
        return None
    if path.endswith(".json"):
        return json.loads(Path(path).read_text())
    mutants: dict[str, list] = {}
    for part in path.split(","):
        for line in Path(part).read_text().splitlines():
            if line:
                m = json.loads(line)
                mutants.setdefault(m["file"], []).append(m)
    return {"mutants": mutants, "date": f"progress files {path}", "commit": "", "elapsed_s": 0}


def percent(score: float | None) -> str:
    return "not measured" if score is None else f"{score:.1f} %"


def sha256_of(path: str) -> str:
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


BEGIN, END = "<!-- mutation:begin (written by scripts/mutation.py) -->", "<!-- mutation:end -->"


def write_doc(doc: Path, record: dict) -> None:
    """Replace the part of the doc between the markers with this run's numbers and survivors."""
    lines = [
        BEGIN,
        "",
        f"Run of {record['date']}, commit `{record['commit']}`"
        + (
            " (with uncommitted changes to backends/, spec/ or conformance/)"
            if record["dirty"]
            else ""
        )
        + f", {record['tool']}, Python {record['python']}, {record['jobs']} jobs, "
        f"{record['timeout_s']:.0f} s per mutant, {record['elapsed_s']} s in all:",
        "",
        f"    {record['command']}",
        "",
        *(
            [
                f"This invocation took the results recorded in {record['rerun_of']['date']} and "
                + (
                    "ran again their unlisted survivors and timeouts."
                    if record["mode"] == "rerun-survivors"
                    else "ran the mutants not run there."
                )
                + f" The suite "
                f"ran {record['suite_seconds_total']} s in all, summed over mutants (wall time "
                f"per mutant, {record['jobs']} at a time at most).",
                "",
            ]
            if record.get("rerun_of")
            else []
        ),
        "Each mutant: `"
        + record["suite"]
        + "`"
        + (
            ", restricted to "
            + record["selection"].removeprefix("each mutant against ")
            + f" (-p mutation_plugin). The coverage map: {c['tests']} tests, "
            f"{c['functions']} functions of the files mutated, {c['pairs']} (test, function) "
            f"pairs, recorded in {c['record_s']} s by the unmutated suite run traced; "
            f"{c['outside_tests']} functions run outside any test, whose mutants run the whole "
            "suite; a mutant whose function no test executes survives, not covered, unrun."
            if (c := record.get("coverage"))
            else "."
        ),
        "",
        "The files mutated, as they were measured:",
        "",
        "| file | SHA-256 |",
        "|---|---|",
        *(f"| `{path}` | `{digest}` |" for path, digest in record["sha256"].items()),
        "",
        "| file | mutants run | killed (timed out) | equivalent | surviving "
        "| score (killed / non-equivalent) | not run (deadline or stride) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path, s in record["summary"].items():
        lines.append(f"| `{path}` | {s['mutants']} | {s['killed']} ({s['timeouts']}) | {s['equivalent']} | "
                     f"{s['survived']} | {percent(s['score'])} | {s['not_run']} |")  # fmt: skip
    for title, wanted in (
        ("Surviving mutants", "survived"),
        ("Equivalent mutants (surviving, or timed out, and listed in "
         "scripts/mutation_equivalents.toml)",
         "equivalent"),
        ("Timed out, counted as killed", "timeout"),
    ):  # fmt: skip
        rows = [m for ms in record["mutants"].values() for m in ms if m["status"] == wanted]
        lines += ["", f"### {title} ({len(rows)})", ""]
        if not rows:
            lines.append("None.")
            continue
        lines += ["| file:line | mutant | original → mutated | why |", "|---|---|---|---|"]
        for m in rows:
            m = {k: v.replace("|", "\\|") if isinstance(v, str) else v for k, v in m.items()}
            why = m["reason"] or (
                f"{m['seconds']:.0f} s"
                if wanted != "survived"
                else "not covered: no test executes it"
                if m.get("selection") == "not covered"
                else "not triaged"
            )
            lines.append(f"| `{m['file']}:{m['line']}` | `{m['function']}__mutmut_{m['index']}` "
                         f"| `{m['original']}` → `{m['mutated']}` | {why} |")  # fmt: skip
    lines += ["", END]
    text = doc.read_text() if doc.exists() else f"# Mutation testing\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    sys.exit(main())
