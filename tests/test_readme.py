"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        scope: dict = {}
        exec(compile(block, str(README), "exec"), scope)
        assert scope["grads"].W.shape == scope["params"].W.shape
