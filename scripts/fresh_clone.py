"""What the README's second quickstart command costs on a fresh machine, measured: clone the
checkout's HEAD into an empty folder, make a new virtual environment, and run
`python -m pip install "nox[uv]" && python -m nox` there, as CI (.ci/run) does, with pip's and uv's
caches inside the folder so that they start empty and count. Prints the wall time and the disk
each part takes, and with --readme rewrites the README's paragraph between its markers.

    python3 scripts/fresh_clone.py --readme README.md     # about 10 minutes on 2 cores
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- fresh-clone:begin (scripts/fresh_clone.py) -->", "<!-- fresh-clone:end -->"
#: what the fresh-clone issue allows the default `nox` (README.md, "Quickstart")
BUDGET_SECONDS, BUDGET_BYTES = 12 * 60, 3 * 2**30


def size(path: Path, seen: set) -> int:
    """Bytes on disk under ``path`` of files not in ``seen`` yet, as du counts a hard link once
    over its arguments: uv links its cache into the environments."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


def measure(folder: Path) -> dict:
    repo, venv = folder / "repo", folder / "venv"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_CACHE_DIR": str(folder / "pip-cache"),
           "UV_CACHE_DIR": str(folder / "uv-cache")}  # fmt: skip
    python = str(venv / "bin" / "python")
    started = time.monotonic()
    with open(folder / "nox.log", "w") as log:
        done = subprocess.run(
            f'{python} -m pip install --quiet "nox[uv]" && {python} -m nox',
            shell=True, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    seconds = time.monotonic() - started
    parts = {"environments (.nox)": repo / ".nox", "uv's cache": folder / "uv-cache",
             "pip's cache": folder / "pip-cache", "the venv with nox": venv}  # fmt: skip
    seen: set = set()  # a file uv linked from its cache into an environment counts there once
    sizes = {name: size(path, seen) for name, path in parts.items()}
    total = sum(sizes.values())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    return {"returncode": done.returncode, "seconds": seconds, "bytes": total, "parts": sizes,
            "commit": commit, "cores": os.cpu_count(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            "log_tail": (folder / "nox.log").read_text()[-2000:]}  # fmt: skip


def paragraph(m: dict) -> str:
    gib = lambda b: f"{b / 2**30:.2f} GiB"
    parts = ", ".join(f"{name} {gib(b) if b >= 2**28 else f'{b / 2**20:.0f} MiB'}"
                      for name, b in m["parts"].items())  # fmt: skip
    return (
        f"{BEGIN}\nThe second command's cost, measured from a fresh clone in a new virtual "
        f"environment with empty caches on the project's {m['cores']}-core CPU machine "
        f"({m['date']}, commit `{m['commit']}`): **{m['seconds'] / 60:.1f} minutes** and "
        f"**{gib(m['bytes'])}** on disk ({parts}; a file uv hard-linked into several "
        f"environments counted once). `python3 scripts/fresh_clone.py --readme README.md` "
        f"measures it again and rewrites this paragraph.\n{END}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, help="rewrite this file's paragraph")
    parser.add_argument("--json", type=Path, help="write the measurement here")
    parser.add_argument("--log", type=Path, default=Path("fresh-clone-nox.log"),
                        help="where nox's whole output is kept")  # fmt: skip
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rnnspec-fresh-"))
    try:
        m = measure(folder)
    finally:
        if (folder / "nox.log").exists():
            shutil.copyfile(folder / "nox.log", args.log)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({k: v for k, v in m.items() if k != "log_tail"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(m, indent=1))
    if m["returncode"]:
        print(m["log_tail"], f"\nnox's whole output: {args.log}", file=sys.stderr)
        return 1
    if args.readme:
        text = args.readme.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(text):
            raise SystemExit(f"{args.readme}: no {BEGIN} ... {END} markers")
        args.readme.write_text(pattern.sub(lambda _: paragraph(m), text))
    over = m["seconds"] > BUDGET_SECONDS or m["bytes"] > BUDGET_BYTES
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
