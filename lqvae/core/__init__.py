"""The method of the paper and nothing else: configs, quantizers, networks, losses, Theorem 1, the Defense-GAN baseline.

``config`` (the ``LQVAEConfig``/``ClassifierConfig``/``DefenseGANConfig`` dataclasses a checkpoint stores),
``quantize`` (hard H, soft H~ and the eval-mode gradient choice: none, BPDA, straight-through), ``models`` (the
LQ-VAE, classifiers A/B/C, ``Defended`` and ``StochasticPurifier``), ``losses`` (Algorithm 1), ``theory``
(Theorem 1, the one place its prediction is computed), ``defensegan``, ``diagnostics`` (do the bits carry the
image?) and ``device``. Imports torch and :mod:`lqvae.spec` only.
"""
