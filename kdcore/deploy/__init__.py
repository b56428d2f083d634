"""Deployable exports of a trained run: the network as it ships (``Method.deployed``, else the run's own network),
its logits only, as a state dict (``weights``), an ONNX graph (``onnx``) or a ``torch.export`` program (``pt2``),
each beside a ``card.json`` that says how to feed it and what it scored from the exported file itself.

``source`` rebuilds the shipped network from a checkpoint, ``formats`` writes and reads back each format, ``card``
assembles the card, ``export`` ties them together with the parity check, ``command`` is ``kd export`` and
``__main__`` the short-lived process the dashboard runs it in.
"""
