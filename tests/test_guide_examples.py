"""Every code block of the docs pages runs, or says it won't.

A page's Python blocks run in order as one script (like a notebook), in a
fresh process inside a temporary directory; its `bash` blocks run after
them. A block whose first line starts with `# Illustrative` is shown but
not run (it needs your own data, a TPU, a long run...). `text` blocks show
output and are not run. Any other language is refused, so a new block cannot
slip past the tests unmarked.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))
               + glob.glob(os.path.join(ROOT, "docs", "guides", "*.md")))
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
MARK = "# Illustrative"
RUNNABLE = ("python", "bash")
OUTPUT = "text"


def code_blocks(path):
    """Returns `[(language, source)]` for each fenced block of a page."""
    with open(path, encoding="utf-8") as f:
        return [(m.group(1), m.group(2)) for m in FENCE.finditer(f.read())]


def runnable_blocks(path):
    return [(lang, src) for lang, src in code_blocks(path)
            if not src.lstrip().startswith(MARK) and lang != OUTPUT]


def _name(path):
    return os.path.relpath(path, ROOT)


def test_readme_tour_is_the_tested_getting_started_tour():
    # The README's set-up commands are shell for a reader's machine; its
    # Python tour must be one the getting-started page runs.
    readme = [src for lang, src in code_blocks(os.path.join(ROOT, "README.md"))
              if lang == "python"]
    started = os.path.join(ROOT, "docs", "getting_started.md")
    tested = [src for lang, src in runnable_blocks(started)
              if lang == "python"]
    assert readme and all(src in tested for src in readme)


def test_fence_parser_on_a_known_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```python\nx = 1\n```\n\n```bash\n# Illustrative\n"
                    "rm -rf /\n```\n```text\nout\n```\n")
    assert code_blocks(str(page)) == [("python", "x = 1\n"),
                                      ("bash", "# Illustrative\nrm -rf /\n"),
                                      ("text", "out\n")]
    assert runnable_blocks(str(page)) == [("python", "x = 1\n")]


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_every_block_runs_or_is_marked_illustrative(path):
    unmarked = [lang for lang, _ in runnable_blocks(path)
                if lang not in RUNNABLE]
    assert not unmarked, (
        f"{_name(path)}: blocks in {unmarked} can neither run nor are "
        f"marked; start them with `{MARK}` or use one of {RUNNABLE}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [p for p in PAGES if runnable_blocks(p)], ids=_name)
def test_page_examples_run(path, tmp_path):
    blocks = runnable_blocks(path)
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg",
               TF_CPP_MIN_LOG_LEVEL="3")
    python = "\n\n".join(src for lang, src in blocks if lang == "python")
    if python:
        script = tmp_path / "page.py"
        script.write_text(python)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                              env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stderr[-4000:]
    for lang, src in blocks:
        if lang == "bash":
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", src],
                                  cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-4000:]
