"""LQ-VAE engine. No Qt, and importing this package imports nothing else (torch loads with the layer that
needs it), so the app can read ``lqvae.spec`` without starting torch.

Layers, each a sub-package, importing only downwards (``pyproject.toml`` [tool.importlinter]; the journey of one
image through them: ``docs/architecture.md``):

* ``spec`` — torch-free facts both packages share: attacks and threat models, data sets, defenses, the paper's
  numbers, the typed results (``Analysis``, ``Theorem1``), the error kinds.
* ``core`` — the method: config, quantizers, networks, losses, Theorem 1, Defense-GAN, diagnostics, devices.
* ``io`` — what crosses the boundary: data sets, checkpoints, the registry of shipped files, input checks.
* ``attacks`` — running an attack specification against a classifier or a defended pipeline (BPDA, EOT).
* ``evaluate`` — measuring: one image (``analysis``), batches, the paper's tables, ablation, reports.
* ``train`` — training as a library (jobs, the resumable loop); ``bench`` — benchmarks.
* ``cli`` — the command-line faces (argparse and ``SystemExit`` live only there).
"""
