"""The training jobs: what one step and one evaluation of each trainable model do.

A job factory takes the command's parsed arguments (``args``, see :func:`lqvae.cli.train.parser`), the test
split and the device, and returns a :class:`Job`: the model, its optimizer, ``step(x, y, global_step)`` and
``evaluate()``, each returning a dict of numbers for the epoch's JSON line. :func:`lqvae.train.run.run` runs
any job, resumably.

* :func:`lqvae_job` -- Algorithm 1 (``--quantizer none``: the VAE ablation); ``--init`` fine-tunes a shipped
  LQ-VAE, ``--adv-inputs`` trains on perturbed or adversarial inputs (:mod:`lqvae.train.adv_inputs`);
* :func:`classifier_job` -- classifier A, B or C; ``--adv madry|advtr`` trains it adversarially
  (:func:`adversarial_batch`);
* :func:`defensegan_job` -- the WGAN-GP generator of the Defense-GAN baseline.

Each step computes its loss through ``job.train_loss``, the job's :class:`Objective` (a module whose forward
is the loss on the model): under ``torchrun`` :func:`lqvae.train.run.run` replaces it with the objective
wrapped in ``DistributedDataParallel``, which averages the gradients of the backward that follows over the
ranks. Attacks, evaluations and checkpoints use ``job.model`` itself, which the wrapper shares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import torch
import torch.nn.functional as F

from lqvae.core.config import ClassifierConfig, DefenseGANConfig, LQVAEConfig
from lqvae.core.diagnostics import lqvae_report, predict
from lqvae.core.losses import algorithm1_losses
from lqvae.core.models import LQVAE, Classifier
from lqvae.io.checkpoint import CheckpointError, load_checkpoint
from lqvae.spec.defenses import HARDENINGS
from lqvae.train.adv_inputs import AdvInputs, pgd_linf, quick_robustness, training_inputs

Args = Any  # the command's parsed arguments (an argparse Namespace or any object with the same attributes)


class Objective(torch.nn.Module):
    """``loss(model, *args)`` as a module's forward, so that ``DistributedDataParallel`` can wrap it (DDP
    synchronises the gradients of a backward only after a call of its own forward). The gradient penalty's
    ``torch.autograd.grad(..., create_graph=True)`` runs inside this forward and differentiates with
    respect to the images only, so each parameter still receives its gradient once, in the backward."""

    def __init__(self, model: torch.nn.Module, loss: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, *args: Any) -> Any:
        return self.loss(self.model, *args)


@dataclass
class Job:
    """One trainable model with its optimizer, training step and evaluation (what :func:`lqvae.train.run.run` runs).

    ``objective`` is the training loss as a module (see :class:`Objective`); ``train_loss``, what the step
    calls, is the objective itself or, under torchrun, the objective wrapped in ``DistributedDataParallel``.
    ``unused_parameters``: some step leaves parameters without a gradient (DDP must look for them).
    """

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: Callable[[torch.Tensor, torch.Tensor, int], dict[str, float]]
    evaluate: Callable[[], dict[str, Any]]
    kind: str
    base_lr: float = 1e-3
    objective: torch.nn.Module | None = None
    unused_parameters: bool = False
    train_loss: Callable[..., Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.train_loss = self.objective if self.objective is not None else self.model



def lqvae_job(args: Args, test: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> Job:
    overrides = {f.name: getattr(args, f.name) for f in fields(LQVAEConfig)
                 if getattr(args, f.name, None) is not None and f.name not in ("image_shape", "arch", "betas")}
    init = load_checkpoint(args.init, kind="lqvae") if getattr(args, "init", None) else None
    # fine-tuning keeps the checkpoint's architecture and recipe; flags given here (e.g. --input-noise) override it
    cfg = dataclasses.replace(init.model.cfg, **overrides) if init else LQVAEConfig.mnist(**overrides)
    model = LQVAE(cfg, training_parts=True)
    if init is not None:  # a shipped LQ-VAE has no h_psi: h starts as a copy of g, as in Algorithm 1, line 1
        model.encoder.load_state_dict(init.model.encoder.state_dict())
        model.g.load_state_dict(init.model.g.state_dict())
        model.h.load_state_dict(model.g.state_dict())  # type: ignore[union-attr]
    groups = [{"params": model.encoder.parameters(), "name": "f_theta"},
              {"params": model.g.parameters(), "name": "g_phi"},
              {"params": model.h.parameters(), "name": "h_psi"}]  # type: ignore[union-attr]
    opt = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
    classifier = load_checkpoint(args.eval_classifier, kind="classifier", device=device).model \
        if args.eval_classifier else None
    adv = AdvInputs.parse(args.adv_inputs, eps=args.adv_eps, steps=args.adv_steps, input_noise=cfg.input_noise)
    attacked = None
    if adv.sources:  # the classifier the training attacks aim at (frozen, eval mode)
        if not args.adv_classifier:
            raise ValueError(f"--adv-inputs {args.adv_inputs} needs --adv-classifier CKPT (the classifier to attack)")
        attacked = load_checkpoint(args.adv_classifier, kind="classifier", device=device).model.eval()
        attacked.requires_grad_(False)

    def step(x: torch.Tensor, y: torch.Tensor, global_step: int) -> dict[str, float]:
        x_in, perturbed = None, None
        if adv.sources or adv.input_noise > 0:  # targets stay clean
            x_in, perturbed = training_inputs(adv, model, attacked, x, y)
        losses = job.train_loss(x, global_step, x_in, perturbed)
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()
        logs = {"L_f": float(losses.L_f.detach()), "L_g": float(losses.L_g.detach()), "L_h": float(losses.L_h.detach()),
                "kl": float(losses.kl_raw.detach()), "penalty": float(losses.penalty.detach()),
                "grad_norm": float(losses.grad_norm.detach())}
        if cfg.code_weight > 0:
            logs["code"] = float(losses.code.detach())
        if cfg.margin_weight > 0:
            logs["margin"] = float(losses.margin.detach())
        return logs

    def evaluate() -> dict[str, Any]:
        x_test, y_test = test
        report = lqvae_report(model, x_test, lipschitz_n=500)
        report["lipschitz_target"] = cfg.lipschitz_target
        if classifier is not None:
            pur = predict(torch.nn.Sequential(model, classifier), x_test)
            report["purified_accuracy"] = float((pur == y_test).float().mean() * 100)
            xs, ys = x_test[:500].to(device), y_test[:500].to(device)
            report.update(quick_robustness(model, classifier.eval(), xs, ys, eps=args.adv_eps))
        return report

    def loss(m: LQVAE, x: torch.Tensor, global_step: int, x_in: torch.Tensor | None,
             perturbed: torch.Tensor | None) -> Any:
        return algorithm1_losses(m, x, step=global_step, x_in=x_in, perturbed=perturbed)

    job = Job("lqvae" if cfg.quantizer == "binary" else "vae", model, opt, step, evaluate, "lqvae", cfg.lr,
              objective=Objective(model, loss))
    return job


ADV_MODES = ("none", *HARDENINGS)  # classifier_job's --adv


def adversarial_batch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, args: Args,
                      global_step: int) -> torch.Tensor:
    """The training inputs of ``--adv``: Madry = PGD examples only; advtr = half clean, half FGSM.

    The attack's epsilon ramps linearly from 0 to ``--adv-eps`` over ``--eps-warmup-steps`` (large-eps
    PGD training from a clean model can otherwise stall at chance). Attacks see the model in eval mode.
    """
    eps = args.adv_eps * min(1.0, (global_step + 1) / args.eps_warmup_steps) if args.eps_warmup_steps > 0 \
        else args.adv_eps
    model.eval()
    if args.adv == "madry":
        out = pgd_linf(model, x, y, eps=eps, steps=args.pgd_steps, step_size=args.pgd_step_size * eps / args.adv_eps)
    else:
        half = x.shape[0] // 2
        out = torch.cat([x[:half], pgd_linf(model, x[half:], y[half:], eps=eps, steps=1, step_size=eps,
                                            random_start=False)])
    model.train()
    return out


def classifier_job(args: Args, test: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> Job:
    cfg = ClassifierConfig(arch=args.arch)
    model = Classifier(cfg)
    if args.init:
        init = load_checkpoint(args.init, kind="classifier")
        if init.model.cfg.arch != args.arch:
            raise CheckpointError(f"--init {args.init} is classifier {init.model.cfg.arch}, not {args.arch}; pass "
                                  f"--arch {init.model.cfg.arch} or a classifier {args.arch} checkpoint")
        model.load_state_dict(init.model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr or cfg.lr)
    adv = getattr(args, "adv", "none")

    def step(x: torch.Tensor, y: torch.Tensor, global_step: int) -> dict[str, float]:
        if adv != "none":
            x = adversarial_batch(model, x, y, args, global_step)
        logits = job.train_loss(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "train_accuracy": float((logits.argmax(1) == y).float().mean() * 100)}

    def evaluate() -> dict[str, Any]:
        x_test, y_test = test
        out = {"test_accuracy": float((predict(model, x_test) == y_test).float().mean() * 100)}
        if adv != "none":  # PGD-20 at the full epsilon on the first 1,000 test images
            xs, ys = x_test[:1000].to(device), y_test[:1000].to(device)
            robust = torch.cat([pgd_linf(model, xs[i:i + 250], ys[i:i + 250], eps=args.adv_eps, steps=20,
                                         step_size=args.adv_eps / 8) for i in range(0, len(xs), 250)])
            out["pgd20_accuracy_1000"] = float((predict(model, robust) == ys.cpu()).float().mean() * 100)
        return out

    name = f"classifier_{args.arch}" + ("" if adv == "none" else f"_{adv}")
    job = Job(name, model, opt, step, evaluate, "classifier", args.lr or cfg.lr,
              objective=Objective(model, lambda m, x: m(x)))
    return job


def defensegan_job(args: Args, test: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> Job:
    """WGAN-GP (Gulrajani et al.): every batch trains the critic, every ``critic_iters``-th also G."""
    from lqvae.core.defensegan import DefenseGAN, gradient_penalty

    cfg = DefenseGANConfig()
    model = DefenseGAN(cfg, training_parts=True)
    critic, gen = model.critic, model.generator
    assert critic is not None
    opt = torch.optim.Adam([{"params": gen.parameters(), "name": "G"}, {"params": critic.parameters(), "name": "D"}],
                           lr=cfg.lr, betas=cfg.betas)
    classifier = load_checkpoint(args.eval_classifier, kind="classifier", device=device).model \
        if args.eval_classifier else None

    def loss(m: DefenseGAN, phase: str, z: torch.Tensor, x: torch.Tensor | None) -> Any:
        """``critic``: (Wasserstein estimate, gradient penalty) on real ``x`` and G(z); ``generator``: G's loss."""
        assert m.critic is not None
        if phase == "generator":
            return -m.critic(m.generator(z)).mean()
        with torch.no_grad():
            fake = m.generator(z)
        return m.critic(x).mean() - m.critic(fake).mean(), gradient_penalty(m.critic, x, fake)

    def step(x: torch.Tensor, _y: torch.Tensor, global_step: int) -> dict[str, float]:
        z = torch.randn(x.shape[0], cfg.latent_dim, device=x.device)
        wdist, gp = job.train_loss("critic", z, x)
        opt.zero_grad(set_to_none=True)
        (-wdist + cfg.gp_weight * gp).backward()
        opt.step()  # G has no gradient here, so Adam leaves it alone
        logs = {"wasserstein": float(wdist.detach()), "gp": float(gp.detach())}
        if (global_step + 1) % cfg.critic_iters == 0:
            opt.zero_grad(set_to_none=True)
            g_loss = job.train_loss("generator", torch.randn(x.shape[0], cfg.latent_dim, device=x.device), None)
            g_loss.backward()
            for p in critic.parameters():
                p.grad = None  # the generator step moves G only
            opt.step()
        return logs

    def evaluate() -> dict[str, Any]:
        x_test, y_test = test[0][:200].to(device), test[1][:200]
        model.search_steps, model.restarts = DefenseGAN.LIVE
        try:  # restored even when a signal cuts the evaluation short
            res = model.search(x_test)
        finally:
            model.search_steps, model.restarts = cfg.search_steps, cfg.restarts
        out = {"search_mse_live_200": float(res.error.mean())}
        if classifier is not None:
            out["purified_accuracy_live_200"] = float((predict(classifier, res.image) == y_test).float().mean() * 100)
        return out

    # the critic's step leaves G without a gradient: DDP must look for the parameters a backward skips
    job = Job("defensegan", model, opt, step, evaluate, "defensegan", cfg.lr, objective=Objective(model, loss),
              unused_parameters=True)
    return job


__all__ = ["ADV_MODES", "Args", "Job", "Objective", "adversarial_batch", "classifier_job", "defensegan_job", "lqvae_job"]
