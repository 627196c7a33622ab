"""The two tables of examples/framework-layers/README.md ("Certification results"), printed as
Markdown from the certificates that `rnnspec conform --backend NAME --json NAME.json` wrote for the
five wrappers: the verdict and counts per wrapper, then the worst error as a fraction of its
tolerance per check group and dtype. `nox -s layers` prints them at its end.

    python scripts/layers_tables.py FOLDER NAME...    # FOLDER holds NAME.json for each NAME
"""

import json
import sys
from pathlib import Path

#: the check groups that measure an error, with the README's column names
GROUPS = {
    "forward & loss": "forward & loss",
    "form A (per step)": "form A",
    "form B (BPTT)": "form B",
    "autodiff": "autodiff",
    "golden vectors": "golden",
    "errata": "errata",
    "edge cases": "edge cases",
    "properties": "properties",
    "masks": "masks",
}


def tables(folder: Path, names: list[str]) -> str:
    verdicts = [
        "| backend | dtypes | checks | passed | failed | n/a | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = [
        "| backend | dtype | " + " | ".join(GROUPS.values()) + " |",
        "|---|---|" + "---|" * len(GROUPS),
    ]
    for name in names:
        (report,) = json.loads((folder / f"{name}.json").read_text())["backends"]
        counts = report["outcomes"]
        verdict = "certified" if report["certified"] else "not certified"
        verdicts.append(
            f"| `{name}` | {' + '.join(report['dtypes'])} | {sum(counts.values())} | "
            f"{counts.get('passed', 0)} | {counts.get('failed', 0)} | {counts.get('n/a', 0)} | "
            f"{verdict} |"
        )
        for dtype in report["dtypes"]:
            worst: dict[str, float] = {}
            for check in report["tests"]:
                ratio = check.get("worst_ratio")
                if check["dtype"] == dtype and ratio is not None:
                    worst[check["group"]] = max(worst.get(check["group"], 0.0), ratio)
            cells = [f"{worst[g]:.2g}" if g in worst else "–" for g in GROUPS]
            ratios.append(f"| `{name}` | {dtype} | " + " | ".join(cells) + " |")
    return "\n".join(verdicts) + "\n\n" + "\n".join(ratios)


if __name__ == "__main__":
    print(tables(Path(sys.argv[1]), sys.argv[2:]))
