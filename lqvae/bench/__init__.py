"""Benchmarks (not tests): how fast the engine runs on this machine, as medians over repeated runs.

``engine`` (Algorithm 1 steps, purification of one image and of a batch, bfloat16), ``attacks`` (each attack
per threat model and preset), ``defenses`` (what each shipped defense costs). ``python -m lqvae.bench``
starts :mod:`lqvae.cli.bench`; the app's own latency is ``python -m app.bench``.
"""
