"""One module per run kind, each holding its pure loss function.

Every ``loss(student, labels, teacher, config)`` takes the student's ``(logits, feature_map)``,
the labels, the teacher's target for this batch (logits, feature map, or None) and the run's
RunConfig, and returns ``(total, terms)``: the weighted total and the unweighted terms named
by the method's ``loss_terms``. They never synchronise with the host, so they can be captured
in a CUDA graph.
"""
