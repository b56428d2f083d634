"""The files a run leaves in its output folder: kdcore.training.engine writes them, the worker looks for the
checkpoint to resume from. Torch-free, so the worker's supervising process can use it."""

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # a teacher's weights at its best validation accuracy (only with a validation split)
METRICS = "metrics.json"
# Whose key names an imported teacher's file uses (kdcore.training.teacher_import): the reference frameworks'
# (the same names in both) or this project's own state dict. Here, torch-free, for the CLI's and the web's choices.
IMPORT_FORMATS = ("mdistiller", "repdistiller", "state_dict")
