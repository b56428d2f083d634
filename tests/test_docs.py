"""The documentation cannot drift from the product: the site builds with `mkdocs build --strict` (a broken link,
anchor or missing page fails), and every command block the README and the docs mark as tested runs.

A block is marked by an HTML comment on the line before its fence, invisible on the rendered page:

    <!-- tested -->                 run it; it must succeed
    <!-- tested: server wait -->    options: server, wait, fails, timeout=N
    <!-- tested-by: tests/x.py ...-->  run by a test of its own (docs/ray.md's blocks, by tests/test_docs_ray.py)
    <!-- untested: why -->          a shell block that cannot run here (pip install, docker, kd serve, ...)

Every ```bash/```sh/```console block carries one or the other, so a command is never shown untested by
oversight. A page's tested blocks run in document order in one fresh directory (later blocks use what
earlier ones wrote), with KD_DATA_DIR, KD_RUNS_DIR and KD_DB_URL inside it and this environment's `kd`,
`python` and `curl` first on PATH; ```bash blocks run under `bash -e`, ```python blocks as scripts.

- `server`: the page's own `kd serve` answers where the block says localhost:8000 or 127.0.0.1:8000 (started at
  the first block that asks, stopped after the page; with one CPU worker when a block of the page waits, else
  queued runs stay queued); `curl` runs with `-sS --fail-with-body`, so an HTTP error fails the block.
- `wait`: after the block, wait until the server has nothing queued or running and no search searching.
- `fails`: the block must exit non-zero (a page that shows an error).
- The dataset names `cifar10` and `cifar100` are rewritten to `synthetic` and `synthetic100` where they name
  the dataset (`--dataset cifar10`, `"dataset": "cifar10"`, `dataset=cifar10`): pages show CIFAR, the suite
  runs on generated data (no download). Nothing else is rewritten.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])
MARK = re.compile(r"^<!--\s*(tested|untested|tested-by)(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)")
SHELL = {"bash", "sh", "shell", "console"}
RUNNABLE = {"bash", "sh", "shell", "python"}
DATASETS = {"cifar10": "synthetic", "cifar100": "synthetic100"}
SERVER_ADDRESS = re.compile(r"(?:localhost|127\.0\.0\.1):8000\b")
PRELUDE = "set -eo pipefail\ncurl() { command curl -sS --fail-with-body \"$@\"; }\n"


@dataclass
class Block:
    page: str
    line: int
    language: str
    text: str
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.language})"


def _options(words: str) -> dict:
    options: dict = {}
    for word in words.split():
        name, _, value = word.partition("=")
        if name not in ("server", "wait", "fails", "timeout"):
            raise ValueError(f"unknown option {word!r}")
        options[name] = int(value) if name == "timeout" else True
    return options


def read_blocks(path: Path) -> tuple[list[Block], list[str]]:
    """The page's tested blocks, and its problems: a mark that no fence follows, a tested block in a language
    that cannot run, a shell block without a mark, an unknown option."""
    lines = path.read_text().splitlines()
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    blocks, problems = [], []
    index = 0
    while index < len(lines):
        mark = MARK.match(lines[index].strip())
        fence = FENCE.match(lines[index].strip())
        if mark:
            following = FENCE.match(lines[index + 1].strip()) if index + 1 < len(lines) else None
            if not following:
                problems.append(f"{name}:{index + 1}: a <!-- {mark.group(1)} --> mark not followed by a fence")
                index += 1
                continue
            ticks, language = following.groups()
            end = next((j for j in range(index + 2, len(lines)) if lines[j].strip() == ticks), len(lines))
            text = "\n".join(lines[index + 2:end]) + "\n"
            if mark.group(1) == "tested":
                if language not in RUNNABLE:
                    problems.append(f"{name}:{index + 2}: a tested block must be bash or python, not {language!r}")
                try:
                    options = _options(mark.group(2) or "")
                except ValueError as error:
                    problems.append(f"{name}:{index + 1}: {error}")
                    options = {}
                blocks.append(Block(name, index + 2, language, text, options))
            elif mark.group(1) == "tested-by":
                test_file = (mark.group(2) or "").split(",")[0].split()[:1]
                if not test_file or not (ROOT / test_file[0]).is_file():
                    problems.append(f"{name}:{index + 1}: <!-- tested-by: FILE --> names no test file of the repository")
            elif not (mark.group(2) or "").strip():
                problems.append(f"{name}:{index + 1}: an untested block says why not")
            index = end + 1
        elif fence:
            ticks, language = fence.groups()
            end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == ticks), len(lines))
            if language in SHELL:
                problems.append(f"{name}:{index + 1}: a {language} block with neither <!-- tested --> nor "
                                "<!-- untested: why -->")
            index = end + 1
        else:
            index += 1
    return blocks, problems


def on_generated_data(text: str) -> str:
    for real, generated in DATASETS.items():
        end = r"(?![\w-])"
        text = re.sub(rf"(--dataset[ =]){real}{end}", rf"\g<1>{generated}", text)
        text = re.sub(rf"(\"dataset\"\s*:\s*\"){real}\"", rf'\g<1>{generated}"', text)
        text = re.sub(rf"(\bdataset=){real}{end}", rf"\g<1>{generated}", text)
    return text


class Sandbox:
    """One page's directory, environment and (when a block asks) server."""

    def __init__(self, root: Path, *, worker: bool = False):
        self.root, self.worker = root, worker
        self.server: LiveServer | None = None
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                    "KD_DB_URL": f"sqlite:///{root / 'kd.sqlite'}", "KD_DATA_DIR": str(root / "data"),
                    "KD_RUNS_DIR": str(root / "runs"), "KD_CACHE_DIR": str(root / "cache"),
                    "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
        self.env.pop("KD_API_TOKEN", None)

    def address(self) -> str:
        if self.server is None:
            self.server = LiveServer(self.root, worker=self.worker)
        return f"127.0.0.1:{self.server.port}"

    def run(self, block: Block) -> subprocess.CompletedProcess:
        text = on_generated_data(block.text)
        if block.options.get("server"):
            text = SERVER_ADDRESS.sub(self.address(), text)
        if block.language == "python":
            script = self.root / f"block-{block.line}.py"
            script.write_text(text)
            command = [sys.executable, str(script)]
        else:
            command = ["bash", "-c", PRELUDE + text]
        return subprocess.run(command, cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=block.options.get("timeout", 120))

    def wait_idle(self, timeout: float = 300) -> None:
        assert self.server is not None, "`wait` needs a block with `server` first"
        api = self.server.api
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = sum(api.get("/api/runs", params={"status": status, "limit": 1}).json()["total"]
                       for status in ("queued", "running"))
            searching = [s for s in api.get("/api/searches").json()["items"] if s["phase"] in ("searching", "confirming")]
            if not busy and not searching:
                return
            time.sleep(0.5)
        raise AssertionError(f"the page's server still had work after {timeout:.0f} s")

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def _tested_pages() -> list[Path]:
    return [page for page in PAGES if read_blocks(page)[0]]


def test_every_shell_block_is_marked_and_every_mark_is_well_formed():
    problems = [problem for page in PAGES for problem in read_blocks(page)[1]]
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", _tested_pages(), ids=lambda page: page.stem)
def test_the_page_s_tested_commands_run(page, tmp_path):
    blocks, _ = read_blocks(page)
    # A worker only where a page waits for its runs: a queued run is answer enough for the others.
    sandbox = Sandbox(tmp_path, worker=any(block.options.get("wait") for block in blocks))
    try:
        for block in blocks:
            try:
                result = sandbox.run(block)
            except subprocess.TimeoutExpired as error:
                raise AssertionError(f"{block} ran past {error.timeout} s:\n{block.text}") from None
            failed = result.returncode != 0
            assert failed == bool(block.options.get("fails")), (
                f"{block} exited {result.returncode}:\n{block.text}\n--- stdout\n{result.stdout[-3000:]}\n"
                f"--- stderr\n{result.stderr[-3000:]}")
            if block.options.get("wait"):
                sandbox.wait_idle()
    finally:
        sandbox.close()


def test_the_rewrites_touch_dataset_names_only():
    text = ('kd train --dataset cifar10 --subset 50\ncurl -d \'{"dataset": "cifar100"}\'\n'
            '/?dataset=cifar10&x=1\nkd train --dataset cifar10-jpg  # cifar10 in prose stays\n')
    assert on_generated_data(text) == ('kd train --dataset synthetic --subset 50\ncurl -d \'{"dataset": "synthetic100"}\'\n'
                                       '/?dataset=synthetic&x=1\nkd train --dataset cifar10-jpg  # cifar10 in prose stays\n')


def test_a_failing_block_fails_its_page(tmp_path):
    sandbox = Sandbox(tmp_path)
    assert sandbox.run(Block("x.md", 1, "bash", "false\necho after\n")).returncode != 0
    assert sandbox.run(Block("x.md", 1, "bash", "curl http://127.0.0.1:9/nothing\n")).returncode != 0
    assert sandbox.run(Block("x.md", 1, "python", "raise SystemExit(3)\n")).returncode == 3


def test_the_marks_are_read_as_written(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- tested: server wait timeout=30 -->\n```bash\ncurl localhost:8000/api/runs\n```\n\n"
                    "```bash\nkd serve\n```\n\n<!-- untested -->\n```sh\npip install x\n```\n"
                    "<!-- tested: bogus -->\n```bash\ntrue\n```\n<!-- tested -->\n```text\nout\n```\n")
    blocks, problems = read_blocks(page)
    assert [(b.line, b.options) for b in blocks[:1]] == [(2, {"server": True, "wait": True, "timeout": 30})]
    assert len(problems) == 4, problems
    assert "neither" in problems[0] and "says why not" in problems[1]
    assert "unknown option" in problems[2] and "bash or python" in problems[3]


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (tmp_path / "site" / "index.html").exists()


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (mkdocs' default slugify)."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[-\s]+", "-", text)


def test_the_readme_s_links_into_the_repository_reach_a_file_and_heading():
    # mkdocs --strict checks the site's links; the README is read on GitHub, outside the site.
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", readme) + re.findall(r'srcset="([^"]+)"|src="([^"]+)"', readme)
    missing = []
    for target in targets:
        target = next((t for t in target if t), "") if isinstance(target, tuple) else target
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.is_file():
            missing.append(target)
        elif anchor:
            headings = re.findall(r"^#{1,6} (.+)$", file.read_text(), re.M)
            if anchor not in {_slug(h) for h in headings}:
                missing.append(target)
    assert targets and not missing, missing
