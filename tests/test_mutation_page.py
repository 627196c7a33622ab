"""docs/mutation.md publishes a mutation score measured on certain files: it must say which files,
as which bytes (their SHA-256, written by scripts/mutation.py), and those must be today's files.
A change to a mutated file makes this fail until the page is measured again (nox -s mutation)."""

import hashlib
import re
from pathlib import Path

from tests.conftest import ROOT

PAGE = ROOT / "docs" / "mutation.md"
#: a row of the page's "files mutated" table: | `path` | `sha256` |
DIGEST_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| `(?P<digest>[0-9a-f]{64})` \|$", re.MULTILINE)
#: a row of the page's results table: | `path` | mutants run | ...
RESULT_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| \d+ \|", re.MULTILINE)


def published_digests(page: str) -> dict[str, str]:
    return {m["path"]: m["digest"] for m in DIGEST_ROW.finditer(page)}


def stale_files(page: str, root: Path = ROOT) -> list[str]:
    """The files the page's score was measured on whose bytes are not those measured, and the
    files it scores without saying which bytes it measured."""
    digests = published_digests(page)
    scored = {m["path"] for m in RESULT_ROW.finditer(page)}
    changed = [
        path
        for path, digest in digests.items()
        if not (root / path).is_file()
        or hashlib.sha256((root / path).read_bytes()).hexdigest() != digest
    ]
    return changed + sorted(scored - digests.keys())


def test_the_page_names_the_bytes_it_measured():
    page = PAGE.read_text()
    assert published_digests(page), "docs/mutation.md records no SHA-256 of the files it measured"
    assert {m["path"] for m in RESULT_ROW.finditer(page)}, "docs/mutation.md scores no file"


def test_the_published_score_is_of_todays_files():
    stale = stale_files(PAGE.read_text())
    assert not stale, (
        f"docs/mutation.md was measured on other versions of {', '.join(stale)}: run "
        "`python3 -m nox -s mutation` (scripts/mutation.py) and commit the page"
    )


def test_a_changed_file_makes_the_page_stale(tmp_path):
    page = PAGE.read_text()
    path = next(iter(published_digests(page)))
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes((ROOT / path).read_bytes() + b"\n")
    assert path in stale_files(page, tmp_path)
