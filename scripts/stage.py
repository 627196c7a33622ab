"""Lay the rnnspec namespace out in a folder of symbolic links, without installing anything:

    python3 scripts/stage.py DIR      # then PYTHONPATH=DIR python3 -c "import rnnspec.backends"

The layout is read from pyproject.toml's [tool.setuptools.package-dir], the same mapping pip uses
for wheels and editable installs. For what cannot install: the offline GPU check
(scripts/gpu-check.sh) and mypy, which follows no import hooks.
"""

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stage(target: Path) -> Path:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    top = target / "rnnspec"
    top.mkdir(parents=True, exist_ok=True)
    for package, folder in sorted(mapping["package-dir"].items()):
        source = ROOT / folder
        if package == "rnnspec":  # its own modules, one link each, beside the subpackages' links
            links = [
                (top / f.name, f)
                for f in source.iterdir()
                if f.suffix == ".py" or (f / "__init__.py").is_file()  # modules and subpackages
            ]
        else:
            links = [(top / package.removeprefix("rnnspec."), source)]
        for link, to in links:
            if link.is_symlink():
                link.unlink()
            link.symlink_to(to)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(stage(Path(sys.argv[1])))
