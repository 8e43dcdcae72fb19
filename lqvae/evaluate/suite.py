"""A defense measured under the strongest-attack suite, with the sanity checks of Carlini et al. (2019).

:func:`evaluate_suite` checks its arguments, runs :func:`lqvae.attacks.suite.run_suite` and returns a
JSON-ready record: the worst case over the suite's members ("robust accuracy under the suite") and every
member's accuracy, each with n and a 95 % Wilson interval, plus :func:`sanity_checks`. A defense that
fails a check is ``flagged``: its numbers likely come from masked gradients or a weak attack, not from
robustness.

The checks compare counts of robust images on the same images, allowing a stronger attack to trail a
weaker one by ``settings.tolerance`` of n (at least one image):

* ``iterative_beats_single_step``: per backward of H, the best iterative member (PGD, APGD, APGD-T) is
  at least as strong as FGSM;
* ``whitebox_beats_transfer``: the best end-to-end member is at least as strong as PGD on the
  classifier alone transferred through the purifier (purifiers only);
* ``more_steps_help``: the full PGD-CE (many steps, restarts) is at least as strong as a short one;
* ``unbounded_reaches_zero``: PGD at ``large_eps`` leaves at most ``large_eps_ceiling`` percent;
* ``score_not_stronger``: Square (no gradient) is not stronger than the best gradient-based member.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from torch import Tensor, nn

from lqvae.attacks.suite import MemberResult, SuiteResult, run_suite
from lqvae.io import validate as check
from lqvae.spec.suite import CHECKS, Estimate, SanityCheck, SuiteSettings

ITERATIVE = ("pgd", "apgd", "apgd_t")


def _tolerance(result: SuiteResult) -> int:
    return max(1, math.ceil(result.settings.tolerance * result.n))


def _num(r: MemberResult) -> dict[str, Any]:
    return {"member": r.member.name, **r.estimate.to_dict()}


def _strongest(results: list[MemberResult]) -> MemberResult | None:
    return min(results, key=lambda r: (int(r.robust.sum()), r.member.name)) if results else None


def _not_above(name: str, strong: MemberResult | None, weak: MemberResult | None, tol: int,
               what: str) -> SanityCheck:
    """Pass when ``strong`` leaves at most ``tol`` more robust images than ``weak``."""
    if strong is None or weak is None:
        return SanityCheck(name, None, {}, f"not applicable: {what}")
    ks, kw = int(strong.robust.sum()), int(weak.robust.sum())
    passed = ks <= kw + tol
    detail = (f"{strong.member.name} {strong.estimate.percent:.1f} % vs {weak.member.name} "
              f"{weak.estimate.percent:.1f} % (tolerance {tol} image{'s' if tol > 1 else ''})")
    return SanityCheck(name, passed, {"strong": _num(strong), "weak": _num(weak), "tolerance_images": tol},
                       ("ok: " if passed else "FAILED: ") + detail)


def _iterative_beats_single_step(counting: list[MemberResult], tol: int) -> SanityCheck:
    """Per backward of H: the strongest iterative member against FGSM; fails if any pair fails."""
    name = "iterative_beats_single_step"
    pairs = [_not_above(name, _strongest([r for r in counting if r.member.method in ITERATIVE
                                          and r.member.surrogate == single.member.surrogate]),
                        single, tol, "no iterative member")
             for single in counting if single.member.method == "fgsm"]
    if all(p.passed is None for p in pairs):
        return SanityCheck(name, None, {}, "not applicable: no FGSM and iterative member with the same backward")
    return SanityCheck(name, all(p.passed is not False for p in pairs), {"pairs": [p.numbers for p in pairs]},
                       "; ".join(p.detail for p in pairs))


def sanity_checks(result: SuiteResult) -> list[SanityCheck]:
    """The five checks of Carlini et al. (2019) on one suite result (see the module doc), in ``CHECKS`` order."""
    tol = _tolerance(result)
    rs = list(result.members.values())
    counting = [r for r in rs if r.member.counts]
    out: list[SanityCheck] = []

    out.append(_iterative_beats_single_step(counting, tol))
    gradient = [r for r in counting if r.member.method in ITERATIVE + ("fgsm",)]
    transfer = result.members.get("transfer")
    out.append(_not_above("whitebox_beats_transfer", _strongest(gradient), transfer, tol,
                          "no transfer attack (a classifier alone has no purifier to transfer through)"))

    few = next((r for r in rs if r.member.role == "few_steps"), None)
    full = None
    if few is not None:
        tag = f"@{few.member.surrogate}" if few.member.surrogate else ""
        full = result.members.get(f"pgd_ce{tag}")
    out.append(_not_above("more_steps_help", full, few, tol, "no short PGD member"))

    large = next((r for r in rs if r.member.role == "large_eps"), None)
    if large is None:
        out.append(SanityCheck("unbounded_reaches_zero", None, {}, "not applicable: no large-eps member"))
    else:
        ceiling = result.settings.large_eps_ceiling
        passed = large.estimate.percent <= ceiling
        out.append(SanityCheck("unbounded_reaches_zero", passed, {"large_eps": _num(large), "ceiling_percent": ceiling},
                               f"{'ok' if passed else 'FAILED'}: {large.member.name} leaves "
                               f"{large.estimate.percent:.1f} % at eps {large.member.eps:g} (ceiling {ceiling:g} %)"))

    # Square must not beat the best gradient member: the gradient one may trail it by tol at most
    out.append(_not_above("score_not_stronger", _strongest(gradient), result.members.get("square"), tol,
                          "no Square member or no gradient member"))
    assert [c.name for c in out] == list(CHECKS)
    return out


def evaluate_suite(settings: SuiteSettings, images: Tensor, labels: Tensor, *, classifier: nn.Module,
                   purifier: nn.Module | None = None, stochastic: bool = False,
                   should_stop: Callable[[], bool] | None = None,
                   progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """The suite on one defense: worst case, members and sanity checks as one JSON-ready record.

    Returns:
        :meth:`SuiteResult.to_dict` plus ``checks`` (one dict per check), ``flagged`` (a check failed) and
        ``failed_checks`` (their names).

    Raises:
        lqvae.io.validate.InputError: images not (N >= 1, C, H, W) of the models' shape in [0, 1], or
            labels not N class indices.
        lqvae.attacks.models.AttackCancelled: ``should_stop()`` returned True.
    """
    shape = check.model_image_shape(classifier=classifier, purifier=purifier)
    images = check.images(images, shape=shape)
    labels = check.labels(labels, n=len(images), num_classes=check.declared_classes(classifier))
    result = run_suite(settings, images, labels, classifier=classifier, purifier=purifier, stochastic=stochastic,
                       should_stop=should_stop, progress=progress)
    checks = sanity_checks(result)
    failed = [c.name for c in checks if c.passed is False]
    return {**result.to_dict(), "checks": [c.to_dict() for c in checks], "flagged": bool(failed),
            "failed_checks": failed}


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The record of :func:`evaluate_suite` as lines for a terminal: worst case, members, checks."""
    def est(d: dict[str, Any]) -> str:
        return Estimate(d["k"], d["n"]).text()

    lines = [f"robust accuracy under the suite (worst case over its members): {est(record['worst_case'])}"
             + ("  [FLAGGED: " + ", ".join(record["failed_checks"]) + "]" if record["flagged"] else ""),
             f"clean: {est(record['clean'])}"]
    for name, m in record["members"].items():
        extra = "" if m["role"] == "attack" else f"  (diagnostic: {m['role']}, not in the worst case)"
        only = f", only it broke {m['only_this_broke']}" if m.get("only_this_broke") else ""
        lines.append(f"  {name:28s} {est(m)}{only}{extra}")
    for c in record["checks"]:
        verdict = {True: "pass", False: "FAIL", None: "n/a "}[c["passed"]]
        lines.append(f"  check {verdict} {c['name']}: {c['detail']}")
    return lines


__all__ = ["sanity_checks", "evaluate_suite", "summary_lines"]
