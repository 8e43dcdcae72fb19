"""Measuring, as a library: one image (``analysis.analyze``, the call behind the app), batches, the paper's tables.

``analysis`` (attack, purify, classify one image into a typed ``Analysis``), ``scoring`` (one attack on a batch:
accuracies, norms, bit flips, Theorem 1), ``tables`` (the paper's tables, resumable), ``ablation`` (every
purifier variant alike), ``loading`` (images, checkpoints by name, JSON), and the writers of the model card
(``card``), the purification grid (``grid``) and ``docs/results.md`` (``report``). The commands are in
:mod:`lqvae.cli`; ``python -m lqvae.evaluate`` starts :mod:`lqvae.cli.evaluate`.
"""
