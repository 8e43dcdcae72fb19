"""The widgets, one panel per file; each takes the ``AppState``, draws from it and observes its signals.

Inputs (``input``: ``draw``, ``samples``, ``file``), settings (``models``, ``defense``, ``attack``), the result
(``image_row``, ``probabilities``, ``bits``, ``honesty``, ``history``), the ``evaluate_tab``, and the window's
``message_bar`` and ``status_bar``; ``widgets`` holds the small shared pieces. Panels never import torch or
:mod:`app.engine`: what they do is a state setter or a ``request_*`` intent.
"""
