"""One file per training method; ``kdcore.methods.base`` says what a method file declares.

Importable without torch: the web process reads the declarations.
"""


def standardize_logits(z):
    """Logit standardisation (Sun et al., CVPR 2024): per row (z − mean) / (std + 1e-7).
    Imported lazily so that ``kdcore.methods`` stays importable without torch."""
    from kdcore.methods.logit_standardization import standardize_logits as _standardize

    return _standardize(z)
