"""The local worker pool: claims queued runs and trains each one in a spawned child process.

``pool`` runs the worker slots (one per GPU, or one on the CPU), ``runner`` supervises one run, and
``child`` is the training process (the only place torch is imported), which trains the job with
app.executors.training. The database writes are app.executors.records, shared with the Ray executor.
"""
