"""Adversarial attacks under the paper's threat models (entry point: :func:`lqvae.attacks.runners.run_attack`).

The attacks themselves are written once in :mod:`lqvae.spec.attacks`; ``settings`` holds the request and
result types, ``foolbox_attacks`` one builder per attack, ``models`` what is attacked, ``runners`` the run.
"""
