"""LQ-VAE engine. No Qt, and importing this package imports nothing else (torch loads with the layer that
needs it), so the app can read ``lqvae.spec`` without starting torch.

Layers, each a sub-package:

* ``spec`` — torch-free facts both packages share (attacks, threat models, datasets, the paper's numbers).
* ``core`` — the method: config, quantizers, networks, losses, Theorem 1, Defense-GAN, devices.
* ``io`` — what crosses the boundary: data sets, checkpoints, the registry of shipped files, input checks.
* ``attacks`` — running an attack specification against a classifier or a defended pipeline.
* ``evaluate`` — measuring: one image (``analysis``), batches, the paper's tables, ablation, reports.
* ``train`` — training as a library; ``bench`` — benchmarks.
* ``cli`` — the command-line faces (argparse and ``SystemExit`` live only there).
"""
