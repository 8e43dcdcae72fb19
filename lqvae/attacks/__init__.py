"""Adversarial attacks under the paper's threat models (entry point: :func:`lqvae.attacks.runners.run_attack`).

The attacks themselves are written once in :mod:`lqvae.spec.attacks`; ``settings`` holds the request and
result types (``AttackSpec``, ``AttackResult``), ``foolbox_attacks`` one builder per attack (``BUILDERS``),
``models`` what is attacked under each threat model (the classifier, a substitute, ``Defended`` for BPDA,
``EOTDefended`` for BPDA + EOT), ``runners`` the run (batches, cancel, progress, per-image failures, the
success check, on fresh draws for EOT).
"""
