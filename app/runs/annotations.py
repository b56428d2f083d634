"""Tags and a note on a run or a study: what a person adds to find a run again and to remember why it ran.

Both are given on create (``tags`` and ``note`` beside the rest of a POST body) and changed afterwards
(PATCH, or the run and study pages). A tag is a short free-text label; the page edits them as one
comma-separated line, so a tag holds no comma. A study's tags also tag its runs for filtering.

The tags are stored twice, on purpose: on the row (what pages and the API show, read with the row) and in
the tags table, one row per tag (what filters look up through an index, app.store.models.Tag). Only
``store_tags`` writes either, in the caller's transaction.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import delete, func, or_
from sqlmodel import Session, select

from app.store.errors import InputError, field_error
from app.store.models import Run, Study, Tag
from app.web.api import ApiModel

MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_NOTE_LENGTH = 4000
FIELDS = ("tags", "note")

TAGS_HELP = (f"Free-text labels, at most {MAX_TAGS} of at most {MAX_TAG_LENGTH} characters each, without commas; "
             "surrounding spaces are stripped and repeats dropped")
NOTE_HELP = f"Free text, at most {MAX_NOTE_LENGTH} characters; an empty note is none"
TagList = Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH)]],
                    Field(max_length=MAX_TAGS, description=TAGS_HELP)]
Note = Annotated[str | None, Field(max_length=MAX_NOTE_LENGTH, description=NOTE_HELP)]


class AnnotationsPatch(ApiModel):
    """The body of PATCH /api/runs/{id} and /api/studies/{id}: a field left out stays as it is."""

    tags: TagList | None = Field(None, description=f"Replaces the tags ([] removes them). {TAGS_HELP}")
    note: Note = Field(None, description=f"Replaces the note (null or \"\" removes it). {NOTE_HELP}")


def split_annotations(payload: Any) -> tuple[Any, dict[str, Any]]:
    """The payload without ``tags`` and ``note``, and those of them it gives (a payload that is not an
    object comes back as it is: its own validation says so)."""
    if not isinstance(payload, dict):
        return payload, {}
    return {k: v for k, v in payload.items() if k not in FIELDS}, {k: payload[k] for k in FIELDS if k in payload}


def clean_annotations(given: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
    """``given`` (tags and note, either may be absent) checked and tidied: tags stripped and without repeats,
    an empty note None. Returns the clean values and the field errors (then the values are not to be stored)."""
    clean: dict[str, Any] = {}
    errors: list[dict] = []
    if "tags" in given:
        clean["tags"], found = _tags(given["tags"])
        errors += found
    if "note" in given:
        clean["note"], found = _note(given["note"])
        errors += found
    return clean, errors


def _tags(raw: Any) -> tuple[list[str], list[dict]]:
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [field_error(["tags"], "Input should be a valid list of strings", "list_type")]
    tags: list[str] = []
    errors: list[dict] = []
    for index, value in enumerate(raw):
        loc = ["tags", index]
        if not isinstance(value, str):
            errors.append(field_error(loc, "Input should be a valid string", "string_type"))
            continue
        tag = value.strip()
        if not tag:
            errors.append(field_error(loc, "a tag cannot be empty", "string_too_short"))
        elif len(tag) > MAX_TAG_LENGTH:
            errors.append(field_error(loc, f"a tag has at most {MAX_TAG_LENGTH} characters; this one has {len(tag)}",
                                      "string_too_long"))
        elif "," in tag:
            errors.append(field_error(loc, "a tag cannot hold a comma (the pages list tags separated by commas)"))
        elif any(unicodedata.category(c) == "Cc" for c in tag):
            errors.append(field_error(loc, "a tag cannot hold control characters such as a line break"))
        elif tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        errors.append(field_error(["tags"], f"at most {MAX_TAGS} tags; {len(tags)} given", "too_long"))
    return tags, errors


def _note(raw: Any) -> tuple[str | None, list[dict]]:
    if raw is None:
        return None, []
    if not isinstance(raw, str):
        return None, [field_error(["note"], "Input should be a valid string", "string_type")]
    note = raw.strip()
    if len(note) > MAX_NOTE_LENGTH:
        return None, [field_error(["note"], f"a note has at most {MAX_NOTE_LENGTH} characters; this one has "
                                            f"{len(note)}", "string_too_long")]
    return note or None, []


def annotate(session: Session, row: Run | Study, payload: Any) -> Run | Study:
    """Change a run's or a study's tags and note from a PATCH body (a field left out stays as it is).
    Raises InputError naming the field, and stores nothing then. Commits."""
    rest, given = split_annotations(payload)
    annotations, errors = clean_annotations(given)
    if not isinstance(payload, dict):
        errors.append(field_error([], "expected a JSON object", "dict_type"))
    else:
        errors += [field_error([name], "Extra inputs are not permitted", "extra_forbidden") for name in rest]
    if errors:
        raise InputError(errors)
    if "tags" in annotations:
        row.tags = annotations["tags"]
        owner = {"run_id": row.id} if isinstance(row, Run) else {"study_id": row.id}
        store_tags(session, row.tags, **owner)
    if "note" in annotations:
        row.note = annotations["note"]
    session.add(row)
    session.commit()
    return row


def tags_from_text(text: str) -> list[str]:
    """A page's comma-separated line as tags: blank pieces are separators (a trailing comma), not tags."""
    return [piece for piece in (part.strip() for part in text.split(",")) if piece]


def save_form(save, reload, tags: str, note: str) -> tuple[Any, dict]:
    """A page's form (tags as one comma-separated line, the note) saved by ``save(body)``: the row saved and
    nothing refused, or when refused the row as it is (``reload()``) with what the form shows again, its
    input and an error per field."""
    listed = tags_from_text(tags)
    try:
        return save({"tags": listed, "note": note}), {}
    except InputError as exc:
        return reload(), {"values": {"tags": tags, "note": note}, "errors": form_errors(exc.errors, listed)}


def form_errors(errors: list[dict], tags: list[str]) -> dict[str, str]:
    """Field errors as a page shows them beside its two fields (``tags``: what the form's line gave)."""
    found: dict[str, list[str]] = {}
    for error in errors:
        loc = error["loc"]
        field = loc[0] if loc and loc[0] in FIELDS else "general"
        where = f"“{tags[loc[1]]}”: " if field == "tags" and len(loc) > 1 and loc[1] < len(tags) else ""
        found.setdefault(field, []).append(where + error["msg"])
    return {field: "; ".join(messages) for field, messages in found.items()}


def store_tags(session: Session, tags: list[str], *, run_id: int | None = None, study_id: int | None = None) -> None:
    """Index ``tags`` of one run or study in the tags table, replacing what it held (the caller sets the
    row's own copy and commits)."""
    owner = Tag.run_id == run_id if run_id is not None else Tag.study_id == study_id
    session.execute(delete(Tag).where(owner))
    session.add_all(Tag(tag=tag, run_id=run_id, study_id=study_id) for tag in tags)


def tagged(tag: str):
    """The runs ``tag`` labels: tagged themselves, or members of a study tagged so (a condition on Run)."""
    return or_(Run.id.in_(select(Tag.run_id).where(Tag.tag == tag, Tag.run_id.is_not(None))),
               Run.study_id.in_(select(Tag.study_id).where(Tag.tag == tag, Tag.study_id.is_not(None))))


def study_tags_of(session: Session, run: Run) -> list[str]:
    """The tags a run has from its study (they tag it for filtering too)."""
    study = session.get(Study, run.study_id) if run.study_id is not None else None
    return tags_of(study) if study is not None else []


def tags_version(session: Session) -> tuple:
    """A key that changes with every tag edit (tag ids are never given twice): for caches of filtered lists."""
    return tuple(session.exec(select(func.count(), func.max(Tag.id))).one())


def known_tags(session: Session, limit: int = 500) -> list[str]:
    """Every tag in use, alphabetically (the board's tag filter offers them)."""
    return list(session.exec(select(Tag.tag).distinct().order_by(Tag.tag).limit(limit)).all())


def tags_of(row) -> list[str]:
    """A run's or a study's tags as stored (NULL, from before tags existed, is none)."""
    return list(row.tags or [])
