"""Runs: their REST API, run page and live events, the launch form for one run, and the service below both."""
