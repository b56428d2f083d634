"""A plugin package installed into a temporary folder on sys.path, written from source strings: what
``pip install`` leaves (the package and its ``.dist-info`` with entry points), without pip's seconds, so
a test can give kdcore a broken or edited plugin in-process."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path


def install_plugin(site: Path, package: str, files: dict[str, str], entry_points: dict[str, dict[str, str]],
                   version: str = "0.1.0") -> Path:
    """Write ``package`` (``files``: module name -> source) and its metadata under ``site``; returns the
    package's folder. ``entry_points``: group -> {name: "module:attribute"}. Put ``site`` on sys.path."""
    folder = site / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    for module, source in files.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{package}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
        for group, points in entry_points.items()))
    importlib.invalidate_caches()
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]  # an earlier test's copy must not answer for this one
    return folder
