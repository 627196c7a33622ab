"""Docs that cannot go stale: every error message SPEC.md §7 quotes is one `validate` gives."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from rnnspec.conformance.cases import CASES
from rnnspec.conformance.test_errors import _bad_inputs
from rnnspec.spec import SpecError, validate
from rnnspec.spec.validation import validate_length

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
    for bad, (edit, _) in _bad_inputs("float64").items():
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


def _doc_commands():
    sys.path.insert(0, str(ROOT / "scripts"))
    import doc_commands

    return doc_commands


def test_every_documented_command_is_accounted_for():
    """The docs session (noxfile.py) runs each one; none keeps a placeholder a reader must fill."""
    doc_commands = _doc_commands()
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
