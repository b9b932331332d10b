"""The commands the docs give still run (docs/README.md, "Tested commands").

Every fenced ``bash``/``sh``/``python`` block of README.md and docs/*.md carries a marker on the
line before its fence: ``<!-- runnable -->`` (run here, in a temporary folder holding a small
``photo.png``) or ``<!-- needs: data, gpu, ... -->`` (not run; says what it needs). Also checked:
the README's size and line length, and that its results table quotes the pipeline's report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
NEEDS = {"data", "gpu", "s3", "prefect", "git", "long"}
MARKER = re.compile(r"^<!--\s*(runnable|needs:\s*([a-z0-9 ,-]+?))\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
BLOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown file and the marker on the line before it."""

    source: str  # "file:line" of the opening fence
    language: str  # "bash" or "python" for command blocks, else the fence's own tag
    code: str
    marker: str | None  # "runnable", "needs: ...", or None


def extract_blocks(text: str, source: str) -> list[Block]:
    """Every fenced block of the Markdown ``text``, with its marker (the HTML comment on the line
    just before the fence, if any)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, tag = m.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        before = lines[start - 1].strip() if start > 0 else ""
        marker = MARKER.match(before)
        blocks.append(Block(source=f"{source}:{start + 1}", language=COMMAND_LANGUAGES.get(tag.lower(), tag.lower()),
                            code="\n".join(body) + "\n", marker=marker.group(1) if marker else None))
    return blocks


def command_blocks(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.language in ("bash", "python")]


def marker_problem(block: Block) -> str | None:
    """Why a command block's marker is missing or malformed; None when it is fine."""
    if block.marker is None:
        return f"{block.source}: a {block.language} block with no <!-- runnable --> or <!-- needs: ... --> marker"
    if block.marker.startswith("needs:"):
        wanted = {w.strip() for w in block.marker.split(":", 1)[1].split(",")}
        if not wanted or not wanted <= NEEDS:
            return f"{block.source}: needs {sorted(wanted - NEEDS)}; known: {sorted(NEEDS)}"
    return None


def make_workdir(folder: Path) -> Path:
    """``folder`` with the files runnable blocks may use: ``photo.png``, a 128 x 128 RGB crop."""
    from PIL import Image

    from sample_images import astronaut

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(astronaut(256)[64:192, 32:160])).save(folder / "photo.png")
    return folder


def block_env(home: Path) -> dict[str, str]:
    """The environment a block runs in: this interpreter's bin folder first on PATH (so
    ``gancodec`` is the venv's), caches under ``home``, no extra weights search path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANCODEC_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["XDG_CACHE_HOME"] = str(home / "cache")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "src"), env.get("PYTHONPATH", "")] if p)
    return env


def run_block(block: Block, workdir: Path) -> subprocess.CompletedProcess:
    """Run ``block`` in ``workdir`` (bash -e -o pipefail, or this Python); never raises on failure."""
    script = workdir / ("block.sh" if block.language == "bash" else "block.py")
    script.write_text(block.code)
    cmd = ["bash", "-e", "-o", "pipefail", str(script)] if block.language == "bash" else [sys.executable, str(script)]
    return subprocess.run(cmd, cwd=workdir, env=block_env(workdir), capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S)


def failure_report(block: Block, result: subprocess.CompletedProcess) -> str:
    return (f"{block.source}: exit {result.returncode}\n--- block ---\n{block.code}"
            f"--- stdout ---\n{result.stdout[-2000:]}\n--- stderr ---\n{result.stderr[-2000:]}")


ALL_BLOCKS = [b for path in DOC_FILES for b in extract_blocks(path.read_text(), str(path.relative_to(ROOT)))]
RUNNABLE = [b for b in command_blocks(ALL_BLOCKS) if b.marker == "runnable"]


def test_every_command_block_is_marked_runnable_or_says_what_it_needs():
    problems = [p for b in command_blocks(ALL_BLOCKS) if (p := marker_problem(b))]
    assert not problems, "\n".join(problems)


def test_the_readme_and_the_usage_doc_have_runnable_blocks():
    sources = {b.source.split(":")[0] for b in RUNNABLE}
    assert {"README.md", "docs/usage.md"} <= sources


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.source for b in RUNNABLE])
def test_runnable_block_runs(block, tmp_path):
    result = run_block(block, make_workdir(tmp_path))
    assert result.returncode == 0, failure_report(block, result)


BROKEN_DOC = """# A doc with a broken command

<!-- runnable -->
```bash
gancodec --version > version.txt
gancodec no-such-command photo.png
```

<!-- runnable -->
```python
from gancodec import decompress
decompress(b"not a gcx stream")
```

```bash
gancodec info photo.gcx
```

<!-- needs: a-time-machine -->
```sh
gancodec info photo.gcx
```
"""


def test_a_broken_block_fails_and_a_bad_marker_is_reported(tmp_path):
    blocks = command_blocks(extract_blocks(BROKEN_DOC, "broken.md"))
    assert [(b.language, b.marker) for b in blocks] == [
        ("bash", "runnable"), ("python", "runnable"), ("bash", None), ("bash", "needs: a-time-machine")]
    assert [b.source for b in blocks] == ["broken.md:4", "broken.md:10", "broken.md:15", "broken.md:20"]
    shell, python = blocks[0], blocks[1]
    result = run_block(shell, make_workdir(tmp_path / "shell"))
    assert result.returncode != 0 and "no-such-command" in result.stderr
    assert (tmp_path / "shell" / "version.txt").read_text().strip()  # the venv's gancodec ran first
    result = run_block(python, make_workdir(tmp_path / "python"))
    assert result.returncode != 0 and "BitstreamError" in result.stderr
    assert marker_problem(blocks[0]) is None
    assert "no <!-- runnable -->" in marker_problem(blocks[2])
    assert "a-time-machine" in marker_problem(blocks[3])


def test_indented_blocks_and_other_languages_are_read():
    doc = "- item:\n\n  <!-- runnable -->\n  ```bash\n  echo one\n  ```\n\n```yaml\na: 1\n```\n"
    blocks = extract_blocks(doc, "x.md")
    assert [(b.language, b.marker, b.code) for b in blocks] == [("bash", "runnable", "echo one\n"),
                                                                ("yaml", None, "a: 1\n")]


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 9000
    long_lines = [i + 1 for i, line in enumerate(text.splitlines()) if len(line) > 100]
    assert not long_lines, f"README.md lines over 100 characters: {long_lines}"
    first = extract_blocks(text, "README.md")[0]
    assert [line.split("#")[0].strip() for line in first.code.splitlines()] == ["make demo", "make test"]
    head = "\n".join(text.splitlines()[:80])
    assert "reports/report/rd_psnr.png" in head and "crops.png" in head


def test_the_readme_results_quote_the_pipelines_report():
    """The README's BD-rates are the report's: at equal PSNR its headline, codec by codec; at equal
    MS-SSIM the evaluation's summary (reports/eval/summary.json)."""
    import json

    report = (ROOT / "reports/report/README.md").read_text()
    headline = re.search(r"BD-rate at equal PSNR is (.*?) \(negative", report).group(1)
    psnr = {}
    for part in headline.split(";"):
        value, name = re.search(r"([+-]\d+\.\d%) against (.+)", part).groups()
        psnr[name.split(" (")[0].strip()] = value
    ms_ssim = json.loads((ROOT / "reports/eval/summary.json").read_text())["bd_rate_ms_ssim"]
    readme = (ROOT / "README.md").read_text()
    rows = {  # codec in the report's headline -> (the README row's label, its anchor in summary.json)
        "AVIF": ("BD-rate vs AVIF, PSNR", None),
        "WebP": ("BD-rate vs WebP, PSNR / MS-SSIM", "webp"),
        "JPEG 4:2:0": ("BD-rate vs JPEG 4:2:0, PSNR / MS-SSIM", "jpeg420"),
        "HEVC 4:4:4": ("BD-rate vs HEVC 4:4:4 (x265), PSNR / MS-SSIM", "hevc444"),
    }
    for codec, (label, anchor) in rows.items():
        row = re.search(rf"^\| {re.escape(label)} \| ([^|]+) \|", readme, re.M)
        assert row, f"README.md has no results row '{label}'"
        values = [v.strip() for v in row.group(1).split("/")]
        assert values[0] == psnr[codec], f"{codec}, PSNR: README {values[0]}, report {psnr[codec]}"
        if anchor:
            want = f"{ms_ssim[anchor]['gancodec']:+.1f}%"
            assert values[1] == want, f"{codec}, MS-SSIM: README {values[1]}, summary {want}"


def test_the_changelog_has_an_entry_for_every_release():
    """Every weights version of HISTORY.json, the realism decoder and each format version."""
    from gancodec.weights import history

    headings = [line[3:] for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    wanted = [v["version"] for v in history.versions()] + ["realism-v1", "format version 1", "format version 2"]
    missing = [w for w in wanted if not any(re.search(rf"(?:^|\s){re.escape(w)}(?=\s|$)", h, re.I) for h in headings)]
    assert not missing, f"CHANGELOG.md has no entry for {missing}"


def test_the_model_card_is_generated_and_links_the_changelog():
    import json

    from gancodec.weights import MODEL_CARD
    from gancodec.weights.ship import render_markdown

    card = MODEL_CARD.with_suffix(".md")
    assert card.read_text() == render_markdown(json.loads(MODEL_CARD.read_text()))
    assert "](../../../CHANGELOG.md)" in card.read_text() and (card.parent / "../../../CHANGELOG.md").resolve().exists()
