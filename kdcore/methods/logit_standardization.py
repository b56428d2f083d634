"""Logit standardisation (Sun et al., CVPR 2024), an option of the logit-based methods."""


def standardize_logits(z):
    # torch's default std is the unbiased one, as in the paper's code.
    return (z - z.mean(dim=-1, keepdim=True)) / (z.std(dim=-1, keepdim=True) + 1e-7)
