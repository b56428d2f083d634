"""The teacher registry as the pickers and GET /api/teachers show it: each teacher run with its checkpoint's
sha256 and whether the file still matches it (app.executors.checksums), its test accuracy as evaluated here,
its recipe in short, and where it came from (trained here, or imported from a file: app.teachers)."""

from __future__ import annotations

from typing import Any

from app.executors.checksums import checksum_problem
from app.store.models import Run
from kdcore.presets import PRESETS


def recipe_of(run: Run, epochs: bool = True) -> str:
    """The recipe in a few words: a preset it matches, else optimiser and learning rate, and its epochs (unless
    ``epochs`` is false: a picker's label says them already). An imported teacher's is what its source states
    (its origin's preset), or "not stated"."""
    if run.origin is not None:
        stated = run.origin.get("recipe")
        return f"{stated} (as its source states)" if stated else "not stated (imported)"
    config = run.config or {}
    length = f", {config.get('epochs')} epochs" if epochs else ""
    for name, preset in PRESETS.items():
        # A preset's epochs aside: a shorter run of the same recipe is still that recipe.
        if all(_same(config.get(field), value) for field, value in preset.items() if field != "epochs"):
            return name + length
    text = f"{config.get('optimizer', '?')} lr {config.get('lr', '?')}" + length
    return text + (", augmented" if config.get("augment") else "")


def _same(stored: Any, preset: Any) -> bool:
    # JSON stores the preset's tuples as lists.
    return list(stored) == list(preset) if isinstance(preset, tuple) and stored is not None else stored == preset


def origin_of(run: Run) -> str:
    if run.origin is None:
        return "trained here"
    return f"imported from {run.origin.get('file')}, {run.origin.get('format')} format"


def teacher_entry(run: Run) -> dict[str, Any]:
    """One teacher as GET /api/teachers lists it (app.teachers.responses.TeacherOut)."""
    problem = checksum_problem(run)
    return {"run_id": run.id, "status": run.status, "architecture": run.architecture, "dataset": run.dataset,
            "num_classes": run.num_classes, "sha256": run.checkpoint_sha256, "checksum_ok": problem is None,
            "problem": problem, "test_accuracy": run.final_accuracy, "recipe": recipe_of(run),
            "origin": origin_of(run), "imported": run.origin}


def registry_words(run: Run) -> list[str]:
    """What a teacher picker adds to a teacher's label: origin, recipe, short checksum, and a flag when its
    file no longer matches (such a teacher is refused)."""
    words = [origin_of(run), f"recipe: {recipe_of(run, epochs=False)}"]
    if run.checkpoint_sha256:
        words.append(f"sha256 {run.checkpoint_sha256[:12]}")
    if checksum_problem(run):
        words.append("FILE CHANGED: refused")
    return words

