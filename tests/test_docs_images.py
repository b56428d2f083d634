"""The docs' screenshots stay current and small: every image the docs pages (docs/**/*.md) and README.md show
exists, is under 200 KB, and is one that docs/screenshots.py writes (its SHOTS), so that running the script
refreshes every picture; every shot the script writes is shown by some page, and docs/images/ holds nothing
else. The script itself imports without starting anything and answers --help and --list; it is never run
here (it trains a study and drives Chromium for minutes)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
IMAGES = DOCS / "images"
SCRIPT = DOCS / "screenshots.py"
MAX_BYTES = 200_000

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.M | re.S)
# ![alt](path "title"){ attrs } in Markdown, and <img src="..."> / <source srcset="..."> in HTML (the README's
# <picture> for the light and dark variants).
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
                   r"|<(?:img|source)\b[^>]*?\b(?:src|srcset)\s*=\s*[\"']([^\"']+)[\"']", re.I)


def load_script():
    if "docs_screenshots" not in sys.modules:
        spec = importlib.util.spec_from_file_location("docs_screenshots", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules["docs_screenshots"]


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]


def image_refs(page: Path) -> list[tuple[str, Path]]:
    """Each local image ``page`` shows outside code blocks: (as written, the file it names)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    refs = []
    for match in IMAGE.finditer(text):
        for written in (match.group(1) or match.group(2)).split(","):  # a srcset may list several
            written = written.strip().split()[0] if written.strip() else ""
            if not written or "://" in written or written.startswith("data:"):
                continue
            path = written.split("#", 1)[0].split("?", 1)[0]  # #only-light / #only-dark pick a scheme
            refs.append((written, (page.parent / path).resolve()))
    return refs


def problems(page_files: list[Path], shot_files: list[str], images: Path, root: Path,
             max_bytes: int = MAX_BYTES) -> list[str]:
    """What is wrong between the pages, the script's shots (file names) and the images folder."""
    found, used = [], set()
    shots = set(shot_files)
    for page in page_files:
        where = page.relative_to(root)
        for written, path in image_refs(page):
            used.add(path)
            if not path.is_file():
                found.append(f"{where}: {written} does not exist")
                continue
            if path.stat().st_size >= max_bytes:
                found.append(f"{where}: {written} is {path.stat().st_size:,} bytes, not under {max_bytes:,}")
            if path.parent != images.resolve() or path.name not in shots:
                found.append(f"{where}: {written} is not one docs/screenshots.py writes (its SHOTS), "
                             "so running it would not refresh it")
    for name in sorted(shots):
        if (images / name).resolve() not in used:
            found.append(f"{name}: docs/screenshots.py writes it but no page shows it")
    if images.is_dir():
        for file in sorted(images.iterdir()):
            if file.name not in shots and file.name != "pages.sha256":
                found.append(f"{file.relative_to(root)}: not a shot of docs/screenshots.py (left over?)")
    return found


def test_the_pages_show_the_scripts_shots_and_only_those():
    shots = [shot.file for shot in load_script().SHOTS]
    assert len(shots) == len(set(shots))
    found = problems(pages(), shots, IMAGES, ROOT)
    assert not found, "\n".join(found)


def test_each_kind_of_mistake_is_reported(tmp_path):
    images = tmp_path / "docs" / "images"
    images.mkdir(parents=True)
    (images / "small.webp").write_bytes(b"x" * 10)
    (images / "big.webp").write_bytes(b"x" * 300)
    (images / "stale.webp").write_bytes(b"x")
    (tmp_path / "elsewhere.webp").write_bytes(b"x")
    page = tmp_path / "docs" / "page.md"
    page.write_text("![a](images/small.webp#only-light) ![b](images/big.webp)\n![c](images/gone.webp)\n"
                    "![d](../elsewhere.webp)\n```md\n![e](images/in-code.webp)\n```\n"
                    "![f](https://example.org/x.png)\n")
    readme = tmp_path / "README.md"
    readme.write_text('<picture><source media="(prefers-color-scheme: dark)" srcset="docs/images/small.webp">'
                      '<img alt="x" src="docs/images/missing.webp"></picture>\n')
    shots = ["small.webp", "big.webp", "unused.webp"]
    found = problems([page, readme], shots, images, tmp_path, max_bytes=100)
    assert found == [
        "docs/page.md: images/big.webp is 300 bytes, not under 100",
        "docs/page.md: images/gone.webp does not exist",
        "docs/page.md: ../elsewhere.webp is not one docs/screenshots.py writes (its SHOTS), "
        "so running it would not refresh it",
        "README.md: docs/images/missing.webp does not exist",
        "unused.webp: docs/screenshots.py writes it but no page shows it",
        "docs/images/stale.webp: not a shot of docs/screenshots.py (left over?)",
    ]


def test_the_script_imports_without_starting_anything():
    # A fresh interpreter: nothing heavy is imported, no server or browser started, no file written.
    probe = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('s', sys.argv[1]); "
             "module = sys.modules['s'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
             "print(sorted(name for name in ('app', 'kdcore', 'torch', 'httpx', 'playwright', 'PIL') "
             "if name in sys.modules))")
    before = sorted(IMAGES.iterdir()) if IMAGES.is_dir() else []
    result = subprocess.run([sys.executable, "-c", probe, str(SCRIPT)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (sorted(IMAGES.iterdir()) if IMAGES.is_dir() else []) == before


def test_help_list_and_only(capsys):
    script = load_script()
    with pytest.raises(SystemExit) as exit_:
        script.main(["--help"])
    assert exit_.value.code == 0
    assert "--only" in capsys.readouterr().out
    assert script.main(["--list"]) == 0
    assert capsys.readouterr().out.split() == [shot.file for shot in script.SHOTS]
    # A page's name takes its every shot (desk and phone, light and dark); a shot's name, that shot.
    assert script.main(["--list", "--only", "study"]) == 0
    assert capsys.readouterr().out.split() == [
        "study-desk-light.webp", "study-desk-dark.webp", "study-curves-desk-light.webp",
        "study-curves-desk-dark.webp", "study-phone-light.webp", "study-phone-dark.webp"]
    assert script.main(["--list", "--only", "leaderboard-phone", "--only", "run-desk-dark"]) == 0
    assert capsys.readouterr().out.split() == ["leaderboard-phone-light.webp", "leaderboard-phone-dark.webp",
                                               "run-desk-dark.webp"]
    with pytest.raises(SystemExit, match="unknown shot nope"):
        script.main(["--list", "--only", "nope"])


def test_every_shot_comes_in_both_schemes_and_the_key_pages_at_phone_width():
    shots = load_script().SHOTS
    families = {shot.family: {s.scheme for s in shots if s.family == shot.family} for shot in shots}
    assert all(schemes == {"light", "dark"} for schemes in families.values()), families
    phone = {shot.page for shot in shots if shot.size == "phone"}
    assert {"leaderboard", "study"} <= phone


def test_encode_keeps_a_shot_under_the_limit_or_says_so():
    pytest.importorskip("PIL")
    import io
    import random

    from PIL import Image

    script = load_script()
    flat = Image.new("RGB", (320, 200), (245, 246, 248))
    buffer = io.BytesIO()
    flat.save(buffer, "PNG")
    encoded = script.encode(buffer.getvalue())
    assert encoded[:4] == b"RIFF" and encoded[8:12] == b"WEBP" and len(encoded) < script.MAX_BYTES
    noise = Image.frombytes("RGB", (100, 100), random.Random(0).randbytes(100 * 100 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    with pytest.raises(RuntimeError, match="keep less of the page"):
        script.encode(buffer.getvalue(), limit=5_000)


def test_the_screenshots_were_taken_of_the_pages_as_they_are():
    script = load_script()
    recorded = script.FINGERPRINT.read_text().strip() if script.FINGERPRINT.is_file() else "none"
    assert recorded == script.pages_fingerprint(), (
        "templates/ or static/ changed since docs/images/ was made: run `python docs/screenshots.py` (about 4 "
        "minutes) and commit the new images with the change")


def test_the_fingerprint_follows_every_page_source(tmp_path):
    script = load_script()
    (tmp_path / "templates").mkdir()
    (tmp_path / "static" / "vendor").mkdir(parents=True)
    (tmp_path / "templates" / "home.html").write_text("<h1>Leaderboard</h1>")
    (tmp_path / "static" / "app.css").write_text("body {}")
    before = script.pages_fingerprint(tmp_path)
    (tmp_path / "static" / "vendor" / "plotly.js").write_text("vendored: not the app's own")
    assert script.pages_fingerprint(tmp_path) == before
    (tmp_path / "static" / "app.css").write_text("body { color: red }")
    assert script.pages_fingerprint(tmp_path) != before
