"""Datasets: the torch-free catalog (names, classes) and the loader that decodes them."""
