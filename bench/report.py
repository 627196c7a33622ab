"""What a run's numbers mean, as one model rendered twice: the workers' rows joined and compared
(:func:`derive`), the targets judged on them (:func:`targets`), then the setup lines and the tables
that ``rnnspec bench`` prints (run.py, rich) and that docs/benchmarks.md quotes (markdown.py).

A :class:`Table` holds text cells; :class:`Strong` and :class:`Bad` cells stand out, each renderer
in its own way. Markdown is the setup lines' and the legend's form, which rich prints as well.
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from rnnspec.bench.frameworks import PEAK_SIZE, REFERENCE
from rnnspec.bench.worker import DTYPES, MEASUREMENT_OPTIONS, WARMUP_CALLS, summary
from rnnspec.bench.workloads import MEMORY_WORKLOAD, TARGETS, WORKLOADS, Target, targets_for

# --- derived numbers ------------------------------------------------------------------------------


def is_closed_form(row: dict) -> bool:
    return row["impl"].endswith("closed form")


def derive(data: dict) -> list[dict]:
    """Join timing and memory rows; add ratios and fractions of the framework's matmul peak.

    With --rounds > 1 each row's calls are pooled over the rounds' processes. A ratio between two
    implementations of one backend is taken within each process, then the median over rounds:
    the two were timed round-robin, so machine load that differs between processes cancels.
    """
    rows: dict[tuple, dict] = {}
    peaks: dict[tuple, list[float]] = defaultdict(list)
    for worker in data["workers"]:
        for dtype, peak in worker.get("peak", {}).items():
            peaks[(worker["backend"], dtype)].append(peak["gflops"])
        for row in worker["results"]:
            key = (row["workload"], row["dtype"], row["impl"])
            merged = rows.setdefault(key, {"backend": worker["backend"]})
            if "times_ms" in row:
                row = {
                    **row,
                    "times_ms": merged.get("times_ms", []) + row["times_ms"],
                    "round_medians_ms": [*merged.get("round_medians_ms", []), row["median_ms"]],
                    "first_call_s": max(merged.get("first_call_s", 0.0), row["first_call_s"]),
                    "error_ratio": max(merged.get("error_ratio", 0.0), row["error_ratio"]),
                }
            merged.update(row)
    for row in rows.values():
        if "times_ms" in row:
            row.update(summary(row["times_ms"]))
            if not row.get("flow"):  # flops() counts the full gradient's products
                row["gflops"] = WORKLOADS[row["workload"]].flops() / row["median_ms"] / 1e6
        peak = statistics.median(peaks[(row["backend"], row["dtype"])] or [0.0])
        if "gflops" in row and peak:
            row["peak_gflops"] = peak
            row["fraction_of_peak"] = row["gflops"] / peak
        if row.get("memory_growth_T_over_half_T", 0) > 0:  # 1 if linear in T, 2 if quadratic
            row["memory_exponent"] = math.log2(row["memory_growth_T_over_half_T"])
    for row in rows.values():
        if is_closed_form(row) and "median_ms" in row:
            _compare(row, rows.values())
        if row.get("flow") and "median_ms" in row:  # SPEC.md §10's cost against the full gradient
            closed = rows.get((row["workload"], row["dtype"], f"{row['backend']} closed form"))
            if closed and "median_ms" in closed:
                row["vs_closed_form"] = _ratio(row, closed)
    return list(rows.values())


def _compare(closed: dict, rows: Iterable[dict]) -> None:
    """Add closed's ratios to the fastest autodiff and to torch.nn.RNN on its workload and dtype:
    to its own backend's autodiffs where it has any, else to every other backend's."""
    key = (closed["workload"], closed["dtype"])
    others = [
        r
        for r in rows
        if (r["workload"], r["dtype"]) == key and not is_closed_form(r) and not r.get("flow")
    ]
    own = [r for r in others if r["backend"] == closed["backend"]]
    autodiffs = [r for r in own or others if "median_ms" in r]
    if autodiffs:
        fastest = min(autodiffs, key=lambda r: r["median_ms"])
        closed["vs_autodiff"] = _ratio(closed, fastest)
        closed["fastest_autodiff"] = fastest["impl"]
    for r in others:
        if r["impl"] == REFERENCE and "median_ms" in r:
            closed["vs_nn_rnn"] = _ratio(closed, r)
    unmasked = WORKLOADS[closed["workload"]].masked_of
    for r in rows:
        if (r["workload"], r["dtype"], r["impl"]) == (unmasked, closed["dtype"], closed["impl"]):
            if "median_ms" in r:
                closed["vs_unmasked"] = _ratio(closed, r)


def _ratio(row: dict, other: dict) -> float:
    """row's time over other's: per round within one process where they share one, else pooled."""
    mine, theirs = row["round_medians_ms"], other["round_medians_ms"]
    if row["backend"] == other["backend"] and len(mine) == len(theirs):
        return statistics.median(a / b for a, b in zip(mine, theirs))
    return row["median_ms"] / other["median_ms"]


#: how each target quantity reads; {subject} is the implementation, {op} ≤ or ≥
WORDING = {
    "vs_autodiff": "{subject} {op} {limit:g}× {fastest_autodiff}",
    "vs_nn_rnn": "{subject} {op} {limit:g}× " + REFERENCE,
    "fraction_of_peak": "{subject} {op} {limit:.0%} of matmul peak",
    "memory_exponent": "{subject} memory O(T): log2(peak(T) / peak(T/2)) {op} {limit:g}",
    "vs_unmasked": "{subject} {op} {limit:g}× itself unmasked",
}


def targets(rows: list[dict], goals: tuple[Target, ...] = TARGETS) -> list[dict]:
    """Each goal (bench/workloads.py) on the float32 rows it binds: what was measured, whether met,
    and the goal itself (its fields, and the implementation it was measured on)."""
    out = []
    for goal in goals:
        bound = [
            r
            for r in rows
            if (r["workload"], r["dtype"]) == (goal.workload, "float32")
            and goal.quantity in r
            and (goal.of == "each implementation" or is_closed_form(r))
            and (not goal.backends or r["backend"] in goal.backends)
        ]
        fastest = goal.of == "the fastest closed form"
        if fastest and bound:
            bound = [min(bound, key=lambda r: r["median_ms"])]
        op = "≥" if goal.at_least else "≤"
        for r in bound:
            measured = r[goal.quantity]
            subject = f"fastest backend ({r['impl']})" if fastest else r["impl"]
            text = WORDING[goal.quantity].format(**r, subject=subject, op=op, limit=goal.limit)
            met = measured >= goal.limit if goal.at_least else measured <= goal.limit
            out.append({**goal._asdict(), "target": text, "impl": r["impl"], "measured": measured,
                        "met": met})  # fmt: skip
    return out


# --- the model ------------------------------------------------------------------------------------


class Strong(str):
    """A cell that stands out: a closed form."""


class Bad(Strong):
    """A cell that is a failure: a result not timed, an error above its bound, a target missed."""


class Table(NamedTuple):
    """``align`` has one letter per column: r right, l left, w left and wrapping where the terminal
    is narrow; so do a header's line breaks. ``grouped``: a rule between rows of other workloads."""

    title: str
    headers: tuple[str, ...]
    align: str
    rows: list[list[str]]
    grouped: bool = False


def _ms(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"


def _mib(n: float) -> str:
    x = n / 2**20
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def _gflops(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def _cell(row: dict, key: str, form: Callable[[Any], str]) -> str:
    return form(row[key]) if key in row else ""


def _workload_order(name: str) -> int:
    return list(WORKLOADS).index(name) if name in WORKLOADS else len(WORKLOADS)


def workload_table(data: dict) -> Table:
    """Every workload of bench/workloads.py, its sizes and GFLOP per call, and whether this run
    timed it (its sizes as the run recorded them)."""
    timed = data.get("workloads", {})
    cells = []
    for name, w in WORKLOADS.items():
        sizes = {**w._asdict(), **timed.get(name, {})}
        flops = w._replace(**{k: sizes[k] for k in "TBDHK"}).flops()
        timed_here = "yes" if name in timed else "no"
        cells.append([name, *(str(sizes[k]) for k in "TBDHK"), f"{flops / 1e9:.3g}", timed_here])
    headers = ("workload", "T", "B", "D", "H", "K", "GFLOP per call", "timed in this run")
    return Table("Workloads", headers, "lrrrrrrl", cells)


LEGEND = (
    "Bold rows are closed forms. *÷ fastest autodiff*: for a closed form, its time over its own "
    "framework's fastest autodiff (torch: the faster of its autodiff and torch.nn.RNN), per round "
    "then median; a backend without autodiff (NumPy) over the fastest autodiff of any other "
    "framework. *÷ nn.RNN*: over torch.nn.RNN + autograd. Below 1 is faster. *% of peak*: of the "
    f"same framework's {PEAK_SIZE}² matmul in the same dtype. *first call*: the first call's "
    "seconds, compilation included, not in the median. *error / bound*: the worst tensor's "
    "‖g − r‖/‖r‖ over the tolerance bound."
)
#: results_table's columns: how long a call takes, and how fast and how accurate it is
TIMING, EFFICIENCY = (0, 1, 2, 3, 4, 5), (0, 1, 6, 7, 8, 9)


def results_table(rows: list[dict], dtypes: Iterable[str]) -> Table:
    """The rows in ``dtypes`` that a timing worker reported (timed or not), by workload, fastest
    first; a workload is named with its dtype where there are several."""
    dtypes = list(dtypes)
    mine = [r for r in rows if r["dtype"] in dtypes and "error_ratio" in r]
    mine.sort(key=lambda r: (_workload_order(r["workload"]), r["dtype"],
                             r.get("median_ms", math.inf)))  # fmt: skip
    cells = []
    for r in mine:
        timed = "median_ms" in r
        impl = r["impl"] + _cell(r, "vs_closed_form", " = {:.2f}× closed form".format)
        error = f"{r['error_ratio']:.2g}"
        cells.append([
            r["workload"] + f" {r['dtype'].replace('float', 'f')}" * (len(dtypes) > 1),
            Strong(impl) if is_closed_form(r) else impl,
            _ms(r["median_ms"]) if timed else Bad("not timed"),
            f"{_ms(r['q1_ms'])}–{_ms(r['q3_ms'])}" if timed else "",
            _cell(r, "vs_autodiff", "{:.2f}".format),
            _cell(r, "vs_nn_rnn", "{:.2f}".format),
            _cell(r, "gflops", _gflops),
            _cell(r, "fraction_of_peak", "{:.0%}".format),
            _cell(r, "first_call_s", "{:.3f}".format),
            Bad(error) if r["error_ratio"] > r.get("check_limit", 1) else error,
        ])  # fmt: skip
    headers = ("workload", "implementation", "ms/call\n(median)", "IQR", "÷ fastest\nautodiff",
               "÷ nn.RNN", "GFLOP/s", "% of\npeak", "first call\n(s)", "error /\nbound")  # fmt: skip
    return Table(f"{', '.join(dtypes)}, ms per call", headers, "lwrrrrrrrr", cells, grouped=True)


def memory_table(data: dict) -> Table:
    w = {**WORKLOADS[MEMORY_WORKLOAD]._asdict(),
         **data.get("workloads", {}).get(MEMORY_WORKLOAD, {})}  # fmt: skip
    title = f"peak memory, {MEMORY_WORKLOAD} workload (T = {w['T']}, B = {w['B']}, H = {w['H']})"
    mine = sorted((r for r in data["rows"] if "memory_bytes" in r),
                  key=lambda r: (r["dtype"], r["memory_bytes"]))  # fmt: skip
    cells = [
        [
            r["dtype"],
            r["impl"],
            _mib(r["memory_bytes"]),
            _mib(r["memory_half_T_bytes"]),
            f"{r['memory_growth_T_over_half_T']:.2f}",
            _cell(r, "memory_per_activation", "{:.1f}".format),
            r.get("memory_method", ""),
        ]
        for r in mine
    ]
    headers = ("dtype", "implementation", f"peak MiB at\nT = {w['T']}", f"at T =\n{w['T'] // 2}",
               "ratio", "÷ one T·B·H\narray", "measured with")  # fmt: skip
    return Table(title, headers, "lwrrrrw", cells)


# --- the setup ------------------------------------------------------------------------------------


def _settings(data: dict) -> str:
    options = data.get("options", {})
    workloads = ", ".join(data.get("workloads", {})) or "none"
    dtypes = ", ".join(options.get("dtypes") or ()) or "float32, float64"
    peaks = [p for w in data["workers"] for p in w.get("peak", {}).values()]
    repeats = {p["repeats"] for p in peaks if "repeats" in p}
    of = f"median of {repeats.pop()} " if len(repeats) == 1 else "median of "
    rounds = options.get("rounds", 1)
    parts = [f"{rounds} round{'s' * (rounds != 1)} per backend (`--rounds`)"]
    if "repeats" in options and "max_seconds" in options:
        parts.append(
            f"{WARMUP_CALLS} warm-up calls, then at most {options['repeats']} timed calls per "
            f"implementation (`--repeats`) and {options['max_seconds']:g} s per workload and dtype "
            "(`--max-seconds`)"
        )
    seed = f"; seed {options['seed']}" if "seed" in options else ""
    parts += [f"workloads {workloads}; dtypes {dtypes}{seed}",
              f"peak matmul: {of}{PEAK_SIZE} × {PEAK_SIZE} products"]  # fmt: skip
    if options.get("env_pairs"):
        parts.append("worker environment " + ", ".join(f"`{e}`" for e in options["env_pairs"]))
    if options.get("device"):
        parts.append(f"device {options['device']}")
    seconds = data.get("seconds")
    if seconds is not None:
        took = f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds:.0f} s"
        return "- Settings: " + "; ".join(parts) + f". The run took {took}."
    return "- Settings: " + "; ".join(parts) + "."


def _partial(data: dict) -> str | None:
    """What a run left out that a full one (``nox -s bench``) does, in words; None if nothing."""
    options = data.get("options", {})
    (repeats,) = [o.default for o in MEASUREMENT_OPTIONS if o.name == "repeats"]
    missing = [w for w in WORKLOADS if w not in data.get("workloads", {})]
    dtypes = options.get("dtypes") or DTYPES
    short = [
        *([f"workloads {', '.join(missing)} not timed"] if missing else []),
        *([f"only {', '.join(dtypes)}"] if set(dtypes) != set(DTYPES) else []),
        *([f"at most {options['repeats']} timed calls, not {repeats}"]
          if options.get("repeats", repeats) < repeats else []),
        *(["no memory measured"] if not options.get("memory", True) else []),
        *([f"backends {', '.join(options['names'])} only"] if options.get("names") else []),
    ]  # fmt: skip
    if not short:
        return None
    if targets_for(options.get("device")) is not TARGETS:
        return f"- A GPU run ({'; '.join(short)}), as `scripts/gpu-bench.sh` makes one."
    return f"- **Not a full run** ({'; '.join(short)}): `nox -s bench` rewrites this page from one."


def _threads(threads: dict[str, Any]) -> str:
    def one(value: Any) -> str:
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    return "; ".join(f"{key} {one(value)}" for key, value in threads.items())


def setup(data: dict, page: bool = True) -> list[str]:
    """The machine, the settings, each framework with its threads, the peaks, the spread, the worst
    error: a Markdown list, one line per item; on a ``page``, what the run left out."""
    m = data["machine"]
    load = (m.get("load_average_before"), m.get("load_average_after"))
    load_text = " and ".join(
        f"{when} the run {', '.join(f'{x:.2f}' for x in value)}"
        for when, value in zip(("before", "after"), load)
        if value
    )
    system = f", {m['system']}" if m.get("system") else ""
    lines = [
        f"- Machine: `{m['cpu']}`, {m['usable_cores']} usable cores of {m['cores']}{system}, "
        f"Python {m['python']}" + (f"; load average (1, 5, 15 min) {load_text}." if load else "."),
        *(line for line in [_partial(data)] if page and line),
        _settings(data),
        "- Frameworks and threads, as the workers reported them:",
    ]
    shown = set()
    for worker in data["workers"]:
        if "error" in worker:
            why = (worker["error"].strip().splitlines() or ["no message"])[-1]
            lines.append(f"  - {worker['backend']}: **failed**: {why}")
        elif worker["backend"] not in shown:
            shown.add(worker["backend"])
            lines.append(
                f"  - {worker['backend']}: {worker['version']} on {worker['device']}, timed as "
                f"{worker['framework']}: {_threads(worker['threads'])}"
            )
    peaks: dict[str, dict[str, float]] = defaultdict(dict)
    for r in data["rows"]:
        if "peak_gflops" in r:
            peaks[r["backend"]][r["dtype"]] = r["peak_gflops"]
    dtypes = sorted({d for by_dtype in peaks.values() for d in by_dtype})
    if peaks:
        each = ", ".join(
            f"{backend} " + " / ".join(_gflops(by[d]) if d in by else "–" for d in dtypes)
            for backend, by in peaks.items()
        )
        lines.append(
            f"- Peak {PEAK_SIZE}² matmul, GFLOP/s (median over rounds), {' / '.join(dtypes)}: "
            f"{each}."
        )
    return [*lines, _spread(data["rows"]), _worst_error(data["rows"])]


def _spread(rows: list[dict]) -> str:
    """How far one implementation's median moved between the rounds' processes."""
    spread = [
        (max(r["round_medians_ms"]) / min(r["round_medians_ms"]), r)
        for r in rows
        if len(r.get("round_medians_ms", ())) > 1 and min(r["round_medians_ms"]) > 0
    ]
    if not spread:
        return "- One round per backend: how much processes differ was not measured in this run."
    ratio, r = max(spread, key=lambda s: s[0])
    medians = r["round_medians_ms"]
    return (
        f"- Between processes one implementation's median moved by up to {ratio:.2f}× "
        f"({r['impl']}, {r['workload']} {r['dtype']}: {_ms(min(medians))} ms in one round, "
        f"{_ms(max(medians))} ms in another)."
    )


def _worst_error(rows: list[dict]) -> str:
    checked = [r for r in rows if "error_ratio" in r]
    if not checked:
        return "- No result was checked against the reference."
    r = max(checked, key=lambda r: r["error_ratio"])
    tensor = f", tensor {r['worst_tensor']}" if "worst_tensor" in r else ""
    return (
        f"- Worst error / bound of any result: {r['error_ratio']:.2g} ({r['impl']}, "
        f"{r['workload']} {r['dtype']}{tensor}); above {r.get('check_limit', 1):g} a result is "
        "not timed."
    )


# --- targets --------------------------------------------------------------------------------------


def describe(kind: tuple, workloads: list[str]) -> str:
    """One kind of target in words: who, what, on which workloads."""
    quantity, limit, at_least, of, backends = kind
    op = "≥" if at_least else "≤"
    who = of
    if backends:
        names = " and ".join(backends)
        who = f"{names} closed forms" if of == "each closed form" else f"{of} of {names}"
    what = {
        "vs_autodiff": f"{op} {limit:g}× its framework's fastest autodiff (a backend without "
        "autodiff: any other framework's)",
        "vs_nn_rnn": f"{op} {limit:g}× {REFERENCE}",
        "fraction_of_peak": f"{op} {limit:.0%} of its framework's matmul peak",
        "memory_exponent": f": memory O(T): log2(peak(T) / peak(T/2)) {op} {limit:g}",
        "vs_unmasked": f"{op} {limit:g}× itself unmasked",
    }[quantity]
    return f"{who}{'' if what.startswith(':') else ' '}{what}, on {', '.join(workloads)}"


def _miss(check: dict) -> str:
    measured = check["measured"]
    value = f"{measured:.0%}" if check["quantity"] == "fraction_of_peak" else f"{measured:.2f}"
    return f"{check['impl']}, {check['workload']}: {value}"


def target_summary(checks: list[dict]) -> Table:
    """Per kind of target: how many were met, and the misses with their measured values, worst
    first; where none missed, the closest."""
    kinds: dict[tuple, list[dict]] = {}
    for c in checks:
        kinds.setdefault((c["quantity"], c["limit"], c["at_least"], c["of"], tuple(c["backends"])),
                         []).append(c)  # fmt: skip
    cells = []
    for kind, group in kinds.items():
        worst_first = sorted(group, key=lambda c: c["measured"], reverse=not kind[2])
        missed = [c for c in worst_first if not c["met"]]
        misses = "; ".join(map(_miss, missed)) or f"none (closest: {_miss(worst_first[0])})"
        workloads = sorted({c["workload"] for c in group}, key=_workload_order)
        met = sum(c["met"] for c in group)
        cells.append([describe(kind, workloads), f"{met} of {len(group)}", misses])
    return Table("Targets (float32)", ("target", "met", "misses, worst first"), "wrw", cells)


def untimed_targets(goals: tuple[Target, ...], timed_workloads: Iterable[str]) -> str | None:
    """The goals on workloads the run did not time, in words; None if there are none."""
    untimed = sorted({g.workload for g in goals} - set(timed_workloads), key=_workload_order)
    if not untimed:
        return None
    names = " and ".join([", ".join(untimed[:-1]), untimed[-1]] if untimed[:-1] else untimed)
    return f"Not measured in this run: the targets on {names} (not timed)."


def target_table(checks: list[dict]) -> Table:
    cells = [
        [c["workload"], c["target"], f"{c['measured']:.2f}", "yes" if c["met"] else Bad("no")]
        for c in checks
    ]
    return Table("Every target with its measured value", ("workload", "target", "measured", "met"),
                 "lwrl", cells)  # fmt: skip
