"""The tutorial experiment: a teacher, a baseline student and three distilled students, queued at once."""
