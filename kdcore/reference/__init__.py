"""Published results of the field, as data with their sources (``published``), and which of them a
configuration of this project reproduces (``matching``). Torch-free."""

from kdcore.reference.results import PublishedResult, published

__all__ = ["PublishedResult", "published"]
