"""Training, as a library: the jobs, the resumable loop that runs them, and shipping the result.

``jobs`` (LQ-VAE / VAE ablation, classifiers plain or adversarially trained, Defense-GAN: a model, its optimizer,
a step and an evaluation each), ``run`` (the loop: per-epoch checkpoints, a training state that ``--resume``
continues bit for bit after SIGINT/SIGTERM), ``adv_inputs`` (perturbed and adversarial training inputs of the
robust purifiers) and ``ship`` (copy a checkpoint into ``checkpoints/``). ``python -m lqvae.train`` starts
:mod:`lqvae.cli.train`.
"""
