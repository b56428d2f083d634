"""The launch page: the forms for a run, the seed experiment and a study."""
