"""One module per run kind, each holding its pure loss function.

Every ``loss(student, labels, teacher, config)`` takes the student's ``(logits, feature_map)``,
the labels, the teacher's target for this batch (logits, feature map, or None) and the run's
RunConfig, and returns ``(total, terms)``: the weighted total and the unweighted terms named
by the method's ``loss_terms``. They never synchronise with the host, so they can be captured
in a CUDA graph.
"""


def standardize_logits(z):
    """Logit standardisation (Sun et al., CVPR 2024): per row (z − mean) / (std + 1e-7).
    Imported lazily so that ``kdcore.methods`` stays importable without torch."""
    from kdcore.methods.logit_standardization import standardize_logits as _standardize

    return _standardize(z)
