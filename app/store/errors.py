"""Service-layer errors; the REST API maps them to HTTP status codes, the HTML pages to messages."""

from __future__ import annotations


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
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors))


def field_error(loc: list | tuple, msg: str, type_: str = "value_error") -> dict:
    return {"loc": list(loc), "msg": msg, "type": type_}


def pydantic_errors(exc, prefix: tuple = ()) -> list[dict]:
    """Plain, JSON-safe field errors from a pydantic ValidationError (the offending input is left out)."""
    return [field_error([*prefix, *error["loc"]], error["msg"], error["type"]) for error in exc.errors()]
