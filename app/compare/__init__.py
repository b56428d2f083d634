"""The compare page: runs and groups of replicates overlaid."""
