"""Teachers from elsewhere: a checkpoint uploaded, mapped and evaluated by the worker (app.executors.teacher_import), and the registry of teachers (app.runs.teachers)."""
