"""What the panels observe: one ``AppState`` of plain settings, results and signals. No widgets, no torch.

``app_state`` (the ``AppState`` QObject: setters, intent signals such as ``runRequested`` that the controller
acts on, ``set_result`` and the history), ``settings`` (the frozen settings and the ``AnalysisRequest`` snapshot
a worker gets), ``results`` (the measured numbers in ``docs/results``) and ``paper_claims`` (the paper's
claim for the current selection). The engine's facts come from :mod:`lqvae.spec`, never a copy.
"""
