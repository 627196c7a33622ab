"""What a run's numbers mean, as one model rendered twice: the workers' rows joined and compared
(:func:`derive`), the targets judged on them (:func:`targets`), then the setup lines and the tables
(:class:`Table`) that ``rnnspec bench`` prints (run.py, rich) and docs/benchmarks.md quotes
(markdown.py); each renderer marks :class:`Strong` and :class:`Bad` cells in its own way.
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from rnnspec.bench import workloads
from rnnspec.bench.frameworks import PEAK_SIZE, REFERENCE
from rnnspec.bench.worker import DTYPES, MEASUREMENT_OPTIONS, WARMUP_CALLS, summary
from rnnspec.bench.workloads import MEMORY_WORKLOAD, TARGETS, WORKLOADS, Target, flops
from rnnspec.conformance.cases import Case

# --- derived numbers ------------------------------------------------------------------------------


def is_closed_form(row: dict) -> bool:
    return row["impl"].endswith("closed form")


def derive(data: dict) -> list[dict]:
    """Join timing and memory rows; add ratios and fractions of the framework's matmul peak.

    With --rounds > 1 each row's calls are pooled over the rounds' processes. A ratio between two
    implementations of one backend is taken within each process, then the median over rounds:
    the two were timed round-robin, so machine load that differs between processes cancels."""
    rows: dict[tuple, dict] = {}
    peaks: dict[tuple, list[float]] = defaultdict(list)
    for worker in data["workers"]:
        for dtype, peak in worker.get("peak", {}).items():
            peaks[(worker["backend"], dtype)].append(peak["gflops"])
        for row in worker["results"]:
            key = (row["workload"], row["dtype"], row["impl"])
            was = rows.setdefault(key, {"backend": worker["backend"]}).get
            if "times_ms" in row:
                row = {**row, "times_ms": was("times_ms", []) + row["times_ms"],
                       "round_medians_ms": [*was("round_medians_ms", []), row["median_ms"]],
                       "first_call_s": max(was("first_call_s", 0.0), row["first_call_s"]),
                       "error_ratio": max(was("error_ratio", 0.0), row["error_ratio"])}  # fmt: skip
            if "prepared_median_ms" in row:
                row["round_prepared_ms"] = [
                    *was("round_prepared_ms", []),
                    row["prepared_median_ms"],
                ]
            rows[key].update(row)
    for row in rows.values():
        if "times_ms" in row:
            row.update(summary(row["times_ms"]))
            if not row.get("flow"):  # flops() counts the full gradient's products
                row["gflops"] = flops(WORKLOADS[row["workload"]]) / row["median_ms"] / 1e6
        peak = statistics.median(peaks[(row["backend"], row["dtype"])] or [0.0])
        if "gflops" in row and peak:
            row["peak_gflops"] = peak
            if row["gflops"] <= peak:
                row["fraction_of_peak"] = row["gflops"] / peak
            else:  # a call faster than the matmul "peak": that peak was measured under load, or
                row["peak_invalid"] = True  # with other threads; no fraction of it means anything
        if row.get("memory_growth_T_over_half_T", 0) > 0:  # 1 if linear in T, 2 if quadratic
            row["memory_exponent"] = math.log2(row["memory_growth_T_over_half_T"])
    for row in rows.values():
        if "median_ms" in row:
            _compare(row, rows)
    return list(rows.values())


def _compare(row: dict, rows: dict[tuple, dict]) -> None:
    """Add a timed row's ratios to the timed rows it is judged against: a flow row's to its
    backend's closed form (SPEC.md §10's cost against the full gradient); a closed form's to the
    fastest autodiff on its workload and dtype (its own backend's where it has any, else every
    other backend's), to torch.nn.RNN and to itself on the workload it masks."""
    workload, dtype, backend = row["workload"], row["dtype"], row["backend"]
    if row.get("flow"):
        against = {"vs_closed_form": rows.get((workload, dtype, f"{backend} closed form"))}
    elif is_closed_form(row):
        autodiffs = [r for (w, d, _), r in rows.items() if (w, d) == (workload, dtype)
                     and not is_closed_form(r) and not r.get("flow")]  # fmt: skip
        own = [r for r in autodiffs if r["backend"] == backend]
        timed = [r for r in own or autodiffs if "median_ms" in r]
        fastest = min(timed, key=lambda r: r["median_ms"], default=None)
        if fastest:
            row["fastest_autodiff"] = fastest["impl"]
        unmasked = (workloads.MASKED_OF.get(workload), dtype, row["impl"])
        against = {"vs_autodiff": fastest, "vs_nn_rnn": rows.get((workload, dtype, REFERENCE)),
                   "vs_unmasked": rows.get(unmasked)}  # fmt: skip
        tiny = rows.get((workloads.FIXED_COST_OF.get(workload), dtype, row["impl"]))
        if tiny and "median_ms" in tiny:  # the fixed cost: the tiny call's time over this one's
            row["fixed_share"] = _ratio(tiny, row)
        if "round_prepared_ms" in row:  # per round, within the process that timed both
            pairs = zip(row["round_prepared_ms"], row["round_medians_ms"])
            row["validation_share"] = statistics.median(a / b for a, b in pairs)
    else:
        return
    for key, other in against.items():
        if other and "median_ms" in other:
            row[key] = _ratio(row, other)


def _ratio(row: dict, other: dict) -> float:
    """row's time over other's: per round within one process where they share one, else pooled."""
    mine, theirs = row["round_medians_ms"], other["round_medians_ms"]
    if row["backend"] == other["backend"] and len(mine) == len(theirs):
        return statistics.median(a / b for a, b in zip(mine, theirs))
    return row["median_ms"] / other["median_ms"]


# --- targets --------------------------------------------------------------------------------------

#: how each target quantity reads, of one row (targets) or of a kind of target (describe):
#: {subject} is who is judged, {op} ≤ or ≥
WORDING = {
    "vs_autodiff": "{subject} {op} {limit:g}× {fastest_autodiff}",
    "vs_nn_rnn": "{subject} {op} {limit:g}× " + REFERENCE,
    "fraction_of_peak": "{subject} {op} {limit:.0%} of its framework's matmul peak",
    "memory_exponent": "{subject}'s memory O(T): log2(peak(T) / peak(T/2)) {op} {limit:g}",
    "vs_unmasked": "{subject} {op} {limit:g}× itself unmasked",
    "fixed_share": "{subject}'s fixed cost (its T = 1, B = 1 call) {op} {limit:.0%} of its call",
}
ANY_AUTODIFF = (
    "its framework's fastest autodiff (a backend without autodiff: any other framework's)"
)
OP = {False: "≤", True: "≥"}  # by Target.at_least


def targets(rows: list[dict], goals: tuple[Target, ...] = TARGETS) -> list[dict]:
    """Each goal (bench/workloads.py) on the float32 rows it binds: what was measured, whether met,
    and the goal itself (its fields, and the implementation it was measured on)."""
    out = []
    for goal in goals:
        peak_invalid = goal.quantity == "fraction_of_peak"  # and the row's peak no peak: not met
        bound = [r for r in rows if (r["workload"], r["dtype"]) == (goal.workload, "float32")
                 and (goal.quantity in r or (peak_invalid and r.get("peak_invalid")))
                 and (goal.of == "each implementation" or is_closed_form(r))
                 and (not goal.backends or r["backend"] in goal.backends)]  # fmt: skip
        fastest = goal.of == "the fastest closed form"
        for r in [min(bound, key=lambda r: r["median_ms"])] if fastest and bound else bound:
            measured, op = r.get(goal.quantity, math.nan), OP[goal.at_least]
            subject = f"fastest backend ({r['impl']})" if fastest else r["impl"]
            text = WORDING[goal.quantity].format(**r, subject=subject, op=op, limit=goal.limit)
            met = measured >= goal.limit if goal.at_least else measured <= goal.limit
            out.append({**goal._asdict(), "target": text, "impl": r["impl"], "measured": measured,
                        "met": met})  # fmt: skip
    return out


def describe(check: dict) -> str:
    """The kind of target a check is of, in words (WORDING): who is judged, and against what."""
    who, names = check["of"], " and ".join(check["backends"])
    if names:
        who = f"{names} closed forms" if who == "each closed form" else f"{who} of {names}"
    wording, op = WORDING[check["quantity"]], OP[check["at_least"]]
    return wording.format(**check, subject=who, op=op, fastest_autodiff=ANY_AUTODIFF)


# --- the model and its tables ---------------------------------------------------------------------


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


def _short(x: float, at_least: float, above: str, below: str) -> str:
    """x in few characters: formatted ``above`` from ``at_least`` up, ``below`` under it."""
    return format(x, above if x >= at_least else below)


_ms = lambda x: _short(x, 0.1, ".2f", ".3g")
_gflops = lambda x: _short(x, 10, ".0f", ".2g")
_mib = lambda n: _short(n / 2**20, 1, ".1f", ".2g")


def _cell(row: dict, key: str, form: Callable[[Any], str]) -> str:
    return form(row[key]) if key in row else ""


def _workload_order(name: str) -> int:
    return list(WORKLOADS).index(name) if name in WORKLOADS else len(WORKLOADS)


def _workload(data: dict, name: str) -> Case:
    """The workload as the run recorded it, else as bench/workloads.py defines it."""
    return Case(**data["workloads"][name]) if name in data["workloads"] else WORKLOADS[name]


def workload_table(data: dict) -> Table:
    """Every workload, its sizes and GFLOP per call, and whether this run timed it."""
    cells = [[w.name, *(str(getattr(w, k)) for k in "TBDHK"), f"{flops(w) / 1e9:.3g}",
              "yes" if w.name in data["workloads"] else "no"]
             for w in (_workload(data, name) for name in WORKLOADS)]  # fmt: skip
    headers = ("workload", "T", "B", "D", "H", "K", "GFLOP per call", "timed in this run")
    return Table("Workloads", headers, "lrrrrrrl", cells)


LEGEND = (
    "Bold rows are closed forms. *÷ fastest autodiff*: for a closed form, its time over its own "
    "framework's fastest autodiff (torch: the faster of its autodiff and torch.nn.RNN), per round "
    "then median; a backend without autodiff (NumPy) over the fastest autodiff of any other "
    "framework. *÷ nn.RNN*: over torch.nn.RNN + autograd. Below 1 is faster. *% of peak*: of the "
    f"same framework's {PEAK_SIZE}² matmul in the same dtype; *> peak*: faster than that matmul, "
    "which was then no peak (measured under load, or with other threads), so its targets count "
    "as missed. *first call*: the first call's "
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
            Bad("> peak") if r.get("peak_invalid") else _cell(r, "fraction_of_peak", "{:.0%}".format),
            _cell(r, "first_call_s", "{:.3f}".format),
            Bad(error) if r["error_ratio"] > r["check_limit"] else error,
        ])  # fmt: skip
    headers = ("workload", "implementation", "ms/call\n(median)", "IQR", "÷ fastest\nautodiff",
               "÷ nn.RNN", "GFLOP/s", "% of\npeak", "first call\n(s)", "error /\nbound")  # fmt: skip
    return Table(f"{', '.join(dtypes)}, ms per call", headers, "lwrrrrrrrr", cells, grouped=True)


def fixed_cost_table(data: dict) -> Table:
    """Each closed form's fixed cost on each workload of FIXED_COST_OF: its tiny call's time (T = 1,
    B = 1) beside its fastest autodiff's there (the framework's own floor), and its preparation's
    (validation, targets, h(0)), each as a share of its call."""
    rows = {(r["workload"], r["dtype"], r["impl"]): r for r in data["rows"]}
    mine = sorted((r for r in data["rows"] if is_closed_form(r)
                   and r["workload"] in workloads.FIXED_COST_OF and "median_ms" in r),
                  key=lambda r: (_workload_order(r["workload"]), r["dtype"], r["impl"]))  # fmt: skip
    cells = []
    for r in mine:
        tiny_name = workloads.FIXED_COST_OF[r["workload"]]
        tiny = rows.get((tiny_name, r["dtype"], r["impl"]), {})
        # the framework's own floor: its fastest autodiff on the same tiny problem
        floor = rows.get((tiny_name, r["dtype"], r.get("fastest_autodiff")), {})
        cells.append([
            f"{r['workload']} {r['dtype'].replace('float', 'f')}", Strong(r["impl"]),
            _cell(tiny, "median_ms", _ms), _cell(floor, "median_ms", _ms),
            _cell(r, "fixed_share", "{:.1%}".format), _cell(r, "validation_share", "{:.1%}".format),
        ])  # fmt: skip
    headers = ("workload", "implementation", "T = 1, B = 1\nms/call", "its autodiff\nT = 1, B = 1",
               "fixed\nshare", "validation\nshare")  # fmt: skip
    return Table("fixed cost of a call: its T = 1, B = 1 call and its validation, as shares of it",
                 headers, "lwrrrr", cells)  # fmt: skip


def memory_table(data: dict) -> Table:
    w = _workload(data, MEMORY_WORKLOAD)
    mine = sorted((r for r in data["rows"] if "memory_bytes" in r),
                  key=lambda r: (r["dtype"], r["memory_bytes"]))  # fmt: skip
    cells = [[r["dtype"], r["impl"], _mib(r["memory_bytes"]), _mib(r["memory_half_T_bytes"]),
              f"{r['memory_growth_T_over_half_T']:.2f}", f"{r['memory_per_activation']:.1f}",
              r["memory_method"]] for r in mine]  # fmt: skip
    headers = ("dtype", "implementation", f"peak MiB at\nT = {w.T}", f"at T =\n{w.T // 2}",
               "ratio", "÷ one T·B·H\narray", "measured with")  # fmt: skip
    title = f"peak memory, {MEMORY_WORKLOAD} workload (T = {w.T}, B = {w.B}, H = {w.H})"
    return Table(title, headers, "lwrrrrw", cells)


def _measured(check: dict) -> str:
    measured = check["measured"]
    if math.isnan(measured):
        return "peak invalid"  # PEAK_INVALID says why
    if check["quantity"] == "fixed_share":
        return f"{measured:.1%}"
    return f"{measured:.0%}" if check["quantity"] == "fraction_of_peak" else f"{measured:.2f}"


def _miss(check: dict) -> str:
    value = _measured(check)
    return f"{check['impl']}, {check['workload']}: {value}"


def target_summary(checks: list[dict]) -> Table:
    """Per kind of target: how many were met, and the misses with their measured values, worst
    first; where none missed, the closest."""
    kinds: dict[str, list[dict]] = defaultdict(list)
    for c in checks:
        kinds[describe(c)].append(c)
    cells = []
    for kind, group in kinds.items():
        sign = 1 if group[0]["at_least"] else -1  # the worst first: the least of "at least" goals
        worst_first = sorted(  # a measurement that is none (peak invalid) before any
            group, key=lambda c: (not math.isnan(c["measured"]), sign * c["measured"])
        )
        missed = [c for c in worst_first if not c["met"]]
        misses = "; ".join(map(_miss, missed)) or f"none (closest: {_miss(worst_first[0])})"
        on = ", ".join(sorted({c["workload"] for c in group}, key=_workload_order))
        cells.append([f"{kind}, on {on}", f"{len(group) - len(missed)} of {len(group)}", misses])
    return Table("Targets (float32)", ("target", "met", "misses, worst first"), "wrw", cells)


def target_table(checks: list[dict]) -> Table:
    cells = [[c["workload"], c["target"], _measured(c), "yes" if c["met"] else Bad("no")]
             for c in checks]  # fmt: skip
    headers = ("workload", "target", "measured", "met")
    return Table("Every target with its measured value", headers, "lwrl", cells)


# --- the setup ------------------------------------------------------------------------------------


def setup(data: dict, page: bool = True) -> list[str]:
    """The machine, the settings, each framework with its threads, the peaks, the spread, the worst
    error: a Markdown list, one line per item; on a ``page``, what the run left out."""
    m = data["machine"]
    loads = [(when, m[f"load_average_{when}"]) for when in ("before", "after")]
    load = " and ".join(f"{when} the run " + ", ".join(f"{x:.2f}" for x in value)
                        for when, value in loads if value)  # fmt: skip
    lines = [
        f"- Machine: `{m['cpu']}`, {m['usable_cores']} usable cores of {m['cores']}, "
        f"{m['system']}, Python {m['python']}"
        + (f"; load average (1, 5, 15 min) {load}." if load else "."),
        *(line for line in [_partial(data)] if page and line),
        _settings(data),
        "- Frameworks and threads, as the workers reported them:",
    ]
    shown = set()
    for w in data["workers"]:
        if "error" in w:
            why = (w["error"].strip().splitlines() or ["no message"])[-1]
            lines.append(f"  - {w['backend']}: **failed**: {why}")
        elif w["backend"] not in shown:
            shown.add(w["backend"])
            threads = "; ".join(f"{key} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                                for key, v in w["threads"].items())  # fmt: skip
            lines.append(f"  - {w['backend']}: {w['version']} on {w['device']}, timed as "
                         f"{w['framework']}: {threads}")  # fmt: skip
    rows = data["rows"]
    peaks = {(r["backend"], r["dtype"]): r["peak_gflops"] for r in rows if "peak_gflops" in r}
    dtypes = sorted({d for _, d in peaks})
    each = [f"{b} " + " / ".join(_gflops(peaks[b, d]) if (b, d) in peaks else "–" for d in dtypes)
            for b in dict.fromkeys(b for b, _ in peaks)]  # fmt: skip
    if peaks:
        lines.append(f"- Peak {PEAK_SIZE}² matmul, GFLOP/s (median over rounds), "
                     f"{' / '.join(dtypes)}: {', '.join(each)}.")  # fmt: skip
    return [*lines, _spread(rows), _worst_error(rows)]


def _settings(data: dict) -> str:
    o, seconds = data["options"], data["seconds"]
    repeats = {p["repeats"] for w in data["workers"] for p in w.get("peak", {}).values()}
    of = f"median of {repeats.pop()} " if len(repeats) == 1 else "median of "
    env = ", ".join(f"`{pair}`" for pair in o["env_pairs"])
    parts = [
        f"{o['rounds']} round{'s' * (o['rounds'] != 1)} per backend (`--rounds`)",
        f"{WARMUP_CALLS} warm-up calls, then at most {o['repeats']} timed calls per implementation "
        f"(`--repeats`) and {o['max_seconds']:g} s per workload and dtype (`--max-seconds`)",
        f"workloads {', '.join(data['workloads']) or 'none'}; "
        f"dtypes {', '.join(o['dtypes'] or DTYPES)}; seed {o['seed']}",
        f"peak matmul: {of}{PEAK_SIZE} × {PEAK_SIZE} products",
        *([f"worker environment {env}"] if env else []),
        *_threads(data),
        *([f"device {o['device']}"] if o["device"] else []),
    ]
    took = f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds:.0f} s"
    return "- Settings: " + "; ".join(parts) + f". The run took {took}."


def _threads(data: dict) -> list[str]:
    """The thread counts the run chose from the free cores (bench.frameworks.thread_settings)."""
    threads = data.get("threads")  # runs from before the choice record none
    if not threads:
        return []
    if not threads["chosen"]:
        return ["thread counts as the user set them"]
    load = data["machine"]["load_average_before"]
    why = f"less the load average {load[0]:.1f} before the run" if load else "(no load average)"
    return [
        f"{threads['free_cores']} thread(s) per worker pool (OMP, MKL, OpenBLAS, TensorFlow's "
        f"intra-op): the usable cores {why}"
    ]


def _partial(data: dict) -> str | None:
    """What a run left out that a full one (``nox -s bench``) does, in words; None if nothing."""
    o = data["options"]
    (repeats,) = [option.default for option in MEASUREMENT_OPTIONS if option.name == "repeats"]
    missing = [w for w in WORKLOADS if w not in data["workloads"]]
    dtypes = o["dtypes"] or DTYPES
    short = [text for left_out, text in (
        (missing, f"workloads {', '.join(missing)} not timed"),
        (set(dtypes) != set(DTYPES), f"only {', '.join(dtypes)}"),
        (o["repeats"] < repeats, f"at most {o['repeats']} timed calls, not {repeats}"),
        (not o["memory"], "no memory measured"),
        (o["names"], f"backends {', '.join(o['names'])} only"),
    ) if left_out]  # fmt: skip
    if not short:
        return None
    if workloads.targets_for(o["device"]) is not TARGETS:
        return f"- A GPU run ({'; '.join(short)}), as `scripts/gpu-bench.sh` makes one."
    return f"- **Not a full run** ({'; '.join(short)}): `nox -s bench` rewrites this page from one."


def _spread(rows: list[dict]) -> str:
    """How far one implementation's median moved between the rounds' processes."""
    spread = [(max(ms) / min(ms), r) for r in rows
              if len(ms := r.get("round_medians_ms", ())) > 1 and min(ms) > 0]  # fmt: skip
    if not spread:
        return "- One round per backend: how much processes differ was not measured in this run."
    ratio, r = max(spread, key=lambda s: s[0])
    fastest, slowest = (_ms(f(r["round_medians_ms"])) for f in (min, max))
    return (f"- Between processes one implementation's median moved by up to {ratio:.2f}× "
            f"({r['impl']}, {r['workload']} {r['dtype']}: {fastest} ms in one round, "
            f"{slowest} ms in another).")  # fmt: skip


def _worst_error(rows: list[dict]) -> str:
    checked = [r for r in rows if "error_ratio" in r]
    if not checked:
        return "- No result was checked against the reference."
    r = max(checked, key=lambda r: r["error_ratio"])
    return (f"- Worst error / bound of any result: {r['error_ratio']:.2g} ({r['impl']}, "
            f"{r['workload']} {r['dtype']}, tensor {r['worst_tensor']}); above "
            f"{r['check_limit']:g} a result is not timed.")  # fmt: skip
