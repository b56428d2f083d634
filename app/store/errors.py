"""Service-layer errors; the REST API maps them to HTTP status codes, the HTML pages to messages."""

from __future__ import annotations

from collections.abc import Container

# The most field errors one answer lists. A body of 500,000 unknown keys once got a 45 MB answer, and the
# server built it in 954 MB: past this many, one last error says how many more there were.
MAX_REPORTED_ERRORS = 50
# Of those, unknown fields (unknown_fields): fewer, so that the other problems of the body still show.
MAX_UNKNOWN_LISTED = 20


class ServiceError(Exception):
    status_code = 400


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    """The request is valid but the run's current state forbids it (e.g. deleting a running run)."""

    status_code = 409


class QueueFull(ServiceError):
    status_code = 429


class InputError(ServiceError):
    """Invalid input. ``errors`` holds one ``{"loc": [field, ...], "msg": str, "type": str}`` per problem."""

    status_code = 422

    def __init__(self, errors: list[dict]):
        self.errors = bounded(errors)
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in self.errors))


def field_error(loc: list | tuple, msg: str, type_: str = "value_error") -> dict:
    return {"loc": list(loc), "msg": msg, "type": type_}


def bounded(errors: list[dict]) -> list[dict]:
    """The first MAX_REPORTED_ERRORS errors, and one more that counts those left out."""
    if len(errors) <= MAX_REPORTED_ERRORS:
        return errors
    left_out = len(errors) - MAX_REPORTED_ERRORS
    return [*errors[:MAX_REPORTED_ERRORS],
            field_error([], f"{left_out:,} more problems not listed (of {len(errors):,})", "too_many_errors")]


def unknown_fields(given: dict, known: Container[str], prefix: tuple = ()) -> list[dict]:
    """An error for each key of ``given`` that is not ``known``, in pydantic's words, at most
    MAX_UNKNOWN_LISTED of them and one that counts the rest. For checking before pydantic does: it
    would build an error for each of a body's many thousands of unknown keys, seconds of work."""
    unknown = [key for key in given if key not in known]
    errors = [field_error([*prefix, key], "Extra inputs are not permitted", "extra_forbidden")
              for key in unknown[:MAX_UNKNOWN_LISTED]]
    if len(unknown) > MAX_UNKNOWN_LISTED:
        errors.append(field_error(list(prefix), f"{len(unknown) - MAX_UNKNOWN_LISTED:,} more unknown fields not "
                                                f"listed (of {len(unknown):,})", "extra_forbidden"))
    return errors


def pydantic_errors(exc, prefix: tuple = ()) -> list[dict]:
    """Plain, JSON-safe field errors from a pydantic ValidationError (the offending input is left out, and
    pydantic is not asked for it: on a body of many unknown keys that doubles the time and memory)."""
    return [field_error([*prefix, *error["loc"]], error["msg"], error["type"])
            for error in exc.errors(include_url=False, include_context=False, include_input=False)]
