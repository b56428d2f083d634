"""The files a run leaves in its output folder: kdcore.training.engine writes them, the worker looks for the
checkpoint to resume from. Torch-free, so the worker's supervising process can use it."""

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # a teacher's weights at its best validation accuracy (only with a validation split)
METRICS = "metrics.json"
