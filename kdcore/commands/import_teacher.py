"""``kd import-teacher``: a teacher trained by RepDistiller, mdistiller or any script, as a checkpoint here."""

from __future__ import annotations

import argparse
import json
import sys

from kdcore.training.run_files import CHECKPOINT, IMPORT_FORMATS


def _run(args: argparse.Namespace) -> int:
    from kdcore.training.checkpoint import load_checkpoint
    from kdcore.training.teacher_import import import_teacher

    out = import_teacher(args.path, args.arch, args.num_classes, args.format, args.out, dataset=args.dataset,
                         data_root=args.data_dir)
    payload = load_checkpoint(out)
    if args.dataset is None:
        print("note: not evaluated (no --dataset): the checkpoint names no dataset and holds no test accuracy",
              file=sys.stderr)
    print(json.dumps({"checkpoint": str(out), "architecture": payload["config"]["architecture"],
                      "num_classes": payload["num_classes"], "parameters": payload["parameters"],
                      "dataset": args.dataset, "test_accuracy": payload["test_accuracy"], **payload["origin"]}))
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "import-teacher", help="a teacher trained elsewhere (RepDistiller, mdistiller, a state dict) as a checkpoint "
        "here", description=f"Map a checkpoint's weights onto a network of the zoo and write OUT/{CHECKPOINT}, "
        "usable as --teacher. Keys and shapes must fit the network exactly; the first that does not is named and "
        "nothing is written. The file is read with torch.load(weights_only=True).")
    parser.add_argument("path", help="the .pth/.pt file: {'model': state_dict, ...}, {'state_dict': ...} or a "
                        "bare state dict (DataParallel's 'module.' prefix is fine)")
    parser.add_argument("--arch", required=True, help="the network, by its name here or the frameworks' "
                        "(resnet32x4, wrn_40_2, vgg13, ResNet50, MobileNetV2, ShuffleV1, ...)")
    parser.add_argument("--num-classes", type=int, required=True, help="its class count (CIFAR-100: 100)")
    parser.add_argument("--format", required=True, choices=IMPORT_FORMATS,
                        help="whose key names: mdistiller's or RepDistiller's (the same names), or this "
                        "project's (torch.save(model.state_dict()) of a zoo network)")
    parser.add_argument("--out", required=True, help=f"output folder (gets {CHECKPOINT})")
    parser.add_argument("--dataset", default=None, help="evaluate on this dataset's test split and keep the "
                        "accuracy (default: not evaluated)")
    parser.add_argument("--data-dir", default=None, help="where datasets live (default: $KD_DATA_DIR or ./data)")
    parser.set_defaults(func=_run)
