"""Who trains the queue: the local worker pool (local/) or a Ray cluster (ray/), writing the database the
same way (records) and training a job the same way (training)."""
