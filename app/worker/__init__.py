"""The background worker: claims queued runs and trains each one in a spawned child process.

``records`` holds the worker's database writes, ``child`` the code that runs in the training
process (the only place torch is imported), ``runner`` supervises one run, ``pool`` runs the
worker slots (one per GPU, or one on the CPU).
"""
