"""Network latency: what was measured where (the cache), and requests to measure it again."""
