"""Deployable exports of a trained run: the network as it ships (``Method.deployed``, else the run's own network),
its logits only, as a state dict (``weights``), an ONNX graph (``onnx``) or a ``torch.export`` program (``pt2``),
each beside a ``card.json`` that says how to feed it and what it scored from the exported file itself.

``files`` names the formats and files (torch-free), ``source`` rebuilds the shipped network from a checkpoint,
``formats`` writes and runs back each format, ``cost`` counts its FLOPs and times it, ``card`` assembles the card,
``export`` ties them together with the parity check, ``load`` loads a weights export back, ``command`` is
``kd export`` and ``__main__`` the short-lived process the dashboard runs it in.
"""
