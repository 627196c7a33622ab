"""Docs that cannot go stale: every error message SPEC.md §7 quotes is one `validate` gives."""

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from rnnspec.conformance.bad_inputs import bad_inputs
from rnnspec.conformance.cases import CASES
from rnnspec.spec import SpecError, validate
from rnnspec.spec.validation import validate_length
from tests import doc_commands

ROOT = Path(__file__).resolve().parent.parent


def _message(*args, **kwargs) -> str:
    try:
        validate(*args, **kwargs)
    except SpecError as error:
        return str(error)
    raise AssertionError(f"validate accepted {args}")


def _messages_given() -> set[str]:
    """What validate says to every bad input of the suite's catalogue, on the basic case."""
    given = set()
    for bad, (edit, _) in bad_inputs("float64").items():
        params, x, y, h0, t = edit(*CASES["basic"].arrays("float64"), 1)
        given.add(_message(params, x, y, h0, t if bad.startswith("t ") else None))
    params, x, y, h0 = CASES["basic"].arrays("float64")
    given.add(_message(params, x.tolist(), y, h0))
    given.add(_message(params, x, y, h0, is_native=lambda a: a is not x))  # x is foreign
    for arg, value, minimum, bound in (("k", 0, 1, ""), ("max_lag", 0, 1, ""), ("k1", 0, 1, ""),
                                       ("k2", 2, 3, "k1 = 3")):  # fmt: skip
        try:
            validate_length(arg, value, minimum, bound)
        except SpecError as error:
            given.add(str(error))
    mask = np.ones(y.shape, bool)  # §9: a mask's own messages, and targets at unmasked steps
    for bad_mask in (mask[:-1], mask.T.copy(), mask.astype(np.int64)):
        given.add(_message(params, x, y, h0, mask=bad_mask))
    out_of_range = y.copy()
    out_of_range[0, 0] = CASES["basic"].K
    given.add(_message(params, x, out_of_range, h0, mask=mask))
    return given


def test_spec_section_7_quotes_messages_validate_gives():
    spec = (ROOT / "spec" / "SPEC.md").read_text()
    section = spec[spec.index("## 7. Error behaviour") : spec.index("## 8. The interface")]
    quoted = re.findall(r"^\| [^|]+ \| `(.+)` \|$", section, flags=re.M)
    assert len(quoted) >= 20, quoted
    given = _messages_given()
    missing = [message for message in quoted if message not in given]
    assert not missing, missing


def test_every_documented_command_is_accounted_for():
    """The docs session (noxfile.py) runs each one; none keeps a placeholder a reader must fill."""
    found = doc_commands.commands()
    assert len(found) >= 25, found
    leftovers = re.compile(r"/path/to|mypkg|mypackage|\bNAME\b|\bDIR\b")
    assert not [c for c in found if leftovers.search(c.run)], found
    shown = {c.shown for c in found}
    assert set(doc_commands.RUN_ELSEWHERE) <= shown, "a RUN_ELSEWHERE entry no document shows"
    for needs in doc_commands.NEEDS_GPU:
        assert any(needs in c.run for c in found), needs
    assert "python3 -m pip install . && rnnspec conform" in shown  # the README's quickstart


def test_the_documented_help_lists_every_option():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "rnnspec"), "bench", "--help"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for option in ("--backend", "--dtype", "--workload", "--repeats", "--env", "--quick", "--plot"):
        assert option in done.stdout, option


def _missing_names(folder: Path) -> list[str]:
    """What the Python files of ``folder`` import from rnnspec that is not there; a module that
    needs a framework not installed here is passed over."""
    missing = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnspec")):
                continue
            try:
                module = importlib.import_module(node.module)
            except ModuleNotFoundError as error:
                if (error.name or "").startswith("rnnspec"):
                    missing.append(f"{path.name}: {node.module}")
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                package = hasattr(module, "__path__")
                if not hasattr(module, alias.name) and not (
                    package and importlib.util.find_spec(submodule)
                ):
                    missing.append(f"{path.name}: {submodule}")
    return missing


def test_what_the_documented_tools_import_is_there():
    """scripts/' tools (README.md's table) need a GPU, torchrun or minutes, so the default sessions
    do not run them: what they import from rnnspec must still exist when rnnspec changes."""
    assert not _missing_names(ROOT / "scripts")


def test_the_readme_says_what_the_second_quickstart_command_costs():
    """Issue 28: the README gave no cost for `python3 -m pip install "nox[uv]" && python3 -m nox`.
    The paragraph is scripts/fresh_clone.py's measurement, within the fresh-clone issue's budget."""
    fresh = importlib.import_module("scripts.fresh_clone")
    readme = (ROOT / "README.md").read_text()
    begin, end = readme.index(fresh.BEGIN), readme.index(fresh.END)
    said = readme[begin:end]
    minutes = float(re.search(r"\*\*([\d.]+) minutes\*\*", said)[1])
    gib = float(re.search(r"\*\*([\d.]+) GiB\*\* on disk", said)[1])
    assert re.search(r"\(\d{4}-\d\d-\d\d, commit `[0-9a-f]{7,}`\)", said), said
    assert minutes * 60 <= fresh.BUDGET_SECONDS and gib * 2**30 <= fresh.BUDGET_BYTES, said
