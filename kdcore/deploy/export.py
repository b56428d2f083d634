"""``export``: write a run's shipped network in one format with its card, refusing a file that does not compute
what the network computes.

The check runs the written file on the first 64 images of the run's test split (normalised as in training) beside
the network in PyTorch, float32 on the CPU: the largest logit difference goes into the card and must stay below
1e-4, or the export is refused naming it and nothing is left. The card's accuracy is then the written file's own,
on the whole test split (for a final-weights export, the run's final accuracy: tests/test_deploy.py)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from kdcore.data.loader import load_dataset
from kdcore.deploy.card import build_card
from kdcore.deploy.cost import network_cost
from kdcore.deploy.files import CARD, FORMATS
from kdcore.deploy.formats import runner, runtime, write
from kdcore.deploy.source import Source, load_source
from kdcore.errors import DatasetError, KDError
from kdcore.training.device_data import EVAL_BATCH, normalize

PARITY_IMAGES = 64
TOLERANCE = 1e-4  # float32 logits


class ExportRefused(KDError):
    """The written file does not compute what the network does, to the tolerance."""


def export(path: str | Path, format: str, out_dir: str | Path, data_root: str | Path | None = None,
           about: dict | None = None) -> dict:
    """Export the run folder or checkpoint ``path`` as ``format`` into ``out_dir`` (its model file and card.json,
    replaced together: a refused or failed export leaves what was there); the card."""
    if format not in FORMATS:
        raise KDError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    source = load_source(path)
    images, labels = _test_split(source, data_root)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir) as work:
        work = Path(work)
        card = _export_into(source, format, images, labels, work, about)
        for file in work.iterdir():
            file.replace(out_dir / file.name)
    return card


def _export_into(source: Source, format: str, images: np.ndarray, labels: np.ndarray, work: Path,
                 about: dict | None) -> dict:
    network = source.network
    example = torch.from_numpy(images[:PARITY_IMAGES])
    with torch.inference_mode():
        expected = network(example).numpy()
    torch.manual_seed(0)  # an exporter that draws random numbers draws the same ones every time
    file = write(format, network, example, work)
    run = runner(format, file, network)
    difference = float(np.max(np.abs(run(example.numpy()) - expected)))
    if not difference < TOLERANCE:  # NaN is refused too
        raise ExportRefused(f"the {format} export of {source.checkpoint} was refused: on {len(example)} test images "
                            f"its logits differ from PyTorch's by up to {difference:.3g}, more than {TOLERANCE:g}")
    correct = sum(int((run(images[start:start + EVAL_BATCH]).argmax(axis=1) == labels[start:start + EVAL_BATCH]).sum())
                  for start in range(0, len(labels), EVAL_BATCH))
    accuracy = correct / len(labels)
    card = build_card(
        source, format, [file],
        accuracy={"test_accuracy": accuracy, "test_images": len(labels), "dataset": source.config.dataset,
                  "subset": source.config.subset, "measured_with": runtime(format),
                  "run_final_accuracy": source.final_accuracy,
                  "equals_run": None if source.final_accuracy is None else accuracy == source.final_accuracy},
        parity={"images": len(example), "max_abs_logit_difference": difference, "tolerance": TOLERANCE,
                "reference": f"torch {torch.__version__}, float32, CPU"},
        cost=network_cost(source.shipped, tuple(images.shape[1:]), file if format == "onnx" else None), about=about)
    (work / CARD).write_text(json.dumps(card, indent=1))
    return card


def _test_split(source: Source, data_root) -> tuple[np.ndarray, np.ndarray]:
    """The run's test images, normalised as training normalised them, and their labels (a validation split takes
    only training images, so the test split is the same with or without one)."""
    config = source.config
    try:
        dataset = load_dataset(config.dataset, data_root, config.subset)
    except DatasetError as exc:
        raise DatasetError(f"the export is checked on the test split of {config.dataset!r}, which is not "
                           f"available here: {exc}") from None
    if dataset.num_classes != source.num_classes:
        raise DatasetError(f"{source.checkpoint} has {source.num_classes} classes but dataset {config.dataset!r} "
                           f"here has {dataset.num_classes}")
    # As the network was trained (its checkpoint's record), else as its dataset is: the card states which.
    source.normalization = source.normalization or dataset.normalization
    images = torch.cat([normalize(torch.from_numpy(dataset.test_x[i:i + 10000]), source.normalization)
                        for i in range(0, len(dataset.test_x), 10000)])
    return images.numpy(), dataset.test_y
