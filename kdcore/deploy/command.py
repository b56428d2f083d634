"""``kd export RUN_DIR|CHECKPOINT --format weights|onnx|pt2 --out DIR``: a deployable file and its card."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from kdcore.deploy.files import CARD, FILE_NAMES, FORMATS


def _cmd_export(args: argparse.Namespace) -> int:
    from kdcore.deploy.export import export

    # stdout carries the summary alone: what the exporter prints on the way goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        card = export(args.source, args.format, args.out, data_root=args.data_dir)
    print(json.dumps({"out": args.out, "files": [FILE_NAMES[args.format], CARD],
                      "test_accuracy": card["accuracy"]["test_accuracy"],
                      "max_abs_logit_difference": card["parity"]["max_abs_logit_difference"]}))
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "export", help="export a trained network for deployment (weights, onnx, pt2) with its card",
        description="Write the network a run ships (a SimKD student with its projector and the teacher's head) as "
        f"{', '.join(f'{name} ({file})' for name, file in FILE_NAMES.items())}, beside card.json: classes, input "
        "normalisation, the test accuracy of the written file, parameters, FLOPs, the run's config and each "
        "file's sha256. The file is run on 64 test images beside PyTorch and refused if a logit differs by 1e-4 "
        "or more. onnx needs the 'deploy' extra.")
    parser.add_argument("source", metavar="RUN_DIR|CHECKPOINT", help="a run folder or a checkpoint file")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the file and card.json")
    parser.add_argument("--data-dir", default=None,
                        help="where the run's dataset lives, for the test split (default: $KD_DATA_DIR or ./data)")
    parser.set_defaults(func=_cmd_export)
