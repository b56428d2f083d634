"""One module per training method; see ``kdcore.methods.base`` for what a method file declares.

Importable without torch: the web process reads the declarations.
"""


def standardize_logits(z):
    """Logit standardisation (Sun et al., CVPR 2024): (z − mean) / (std + 1e-7) per row."""
    from kdcore.methods.logit_standardization import standardize_logits as standardize

    return standardize(z)
