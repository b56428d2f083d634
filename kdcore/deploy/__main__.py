"""``python -m kdcore.deploy SOURCE FORMAT OUT DATA_ROOT ABOUT_JSON``: the short-lived process in which the
dashboard exports a run (its web process never imports torch). It writes OUT/card.json and the model file; a
refusal prints ``{"error": message, "kind": the error's class}`` and exits 2."""

from __future__ import annotations

import contextlib
import json
import sys

from kdcore.errors import KDError


def main(argv: list[str]) -> int:
    from kdcore.deploy.export import export

    source, format, out, data_root, about = argv
    try:
        # stdout carries the refusal alone: what the exporter prints on the way goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            export(source, format, out, data_root=data_root or None, about=json.loads(about))
    except KDError as exc:
        print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
