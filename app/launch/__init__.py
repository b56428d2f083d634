"""The launch page: the forms for a run, the tutorial experiment and a study."""
