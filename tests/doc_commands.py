"""Every shell command shown in README.md, docs/ and the examples' READMEs, ready to run.

    python3 -m tests.doc_commands            # list them, as they will run (from the checkout)

The `docs` nox session runs each one, in order, in a fresh environment and a copy of the checkout;
tests/test_docs.py checks that every command is accounted for. Placeholders a reader replaces
(a path, a package name) are replaced by real values here; a command that needs what this machine
lacks (a GPU) runs too, and must fail with the documented one-line error.
"""

import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/*.md", "examples/*/README.md")

#: placeholder in the docs -> what the docs session puts there ({root}: the copy of the checkout)
PLACEHOLDERS = {
    "/path/to/rnnspec": "{root}",
    "mypackage.mymodule:make_backend": "rnnspec.backends.numpy:NumpyBackend",
    "mypkg.mod:factory": "rnnspec_array_api:ArrayApiBackend",
    "--backend NAME": "--backend numpy",
}

#: commands that are not run by the docs session, and where they run instead
RUN_ELSEWHERE = {
    'python3 -m pip install "nox[uv]" && python3 -m nox': "CI itself: .ci/run",
    'python3 -m pip install "nox[uv]" && python3 -m nox -s mutation': "the nox session mutation itself",
    "torchrun --standalone --nproc-per-node 2 sum_of_shards.py": (
        "the nox session distributed: tests/test_distributed.py runs docs/distributed.md's programs"
    ),
    'python3 -m pip install "nox[uv]" && python3 -m nox -s scoreboard': "the nox session scoreboard itself",
}

#: commands that need a GPU: on a machine without one (or without the framework yet) they must
#: fail with a one-line error matching this pattern, and no traceback
NEEDS_GPU = {
    "--backend torch@cuda": r"torch@cuda: .*(cannot run on device='cuda'|needs torch)",
    "--device cuda:0": r"ERROR: rnnspec: the numpy backend runs on 'cpu'; got device='cuda:0'",
}


class Command(NamedTuple):
    source: str  # "README.md:27"
    shown: str  # as the document shows it
    run: str  # with placeholders replaced; "{root}" stands for the checkout


def _blocks(text: str):
    for block in re.finditer(r"^```(bash|sh)\n(.*?)^```", text, flags=re.S | re.M):
        yield text[: block.start()].count("\n") + 2, block[2]


def commands(root: Path = ROOT) -> list[Command]:
    found = []
    for pattern in DOCUMENTS:
        for path in sorted(root.glob(pattern)):
            for first_line, body in _blocks(path.read_text()):
                lines = body.replace("\\\n", " ").splitlines()  # continuation lines joined
                for offset, line in enumerate(lines):
                    shown = re.sub(r"\s+#.*$", "", line).strip()  # a trailing comment is prose
                    shown = re.sub(r"\s+", " ", shown)
                    if not shown or shown.startswith("#"):
                        continue
                    run = shown
                    for placeholder, value in PLACEHOLDERS.items():
                        run = run.replace(placeholder, value)
                    source = f"{path.relative_to(root)}:{first_line + offset}"
                    found.append(Command(source, shown, run))
    return found


def expected_failure(command: Command) -> str | None:
    """The pattern of the one-line error a command that needs a GPU must fail with here, or None."""
    return next((why for needs, why in NEEDS_GPU.items() if needs in command.run), None)


if __name__ == "__main__":
    for command in commands():
        where = RUN_ELSEWHERE.get(command.shown)
        note = f"  [not here: {where}]" if where else ""
        failure = expected_failure(command)
        note += f"  [without a GPU: fails with {failure!r}]" if failure else ""
        sys.stdout.write(f"{command.source}: {command.run}{note}\n")
