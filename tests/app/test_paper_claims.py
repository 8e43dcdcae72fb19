"""The paper's numbers are written once (lqvae.spec.paper); the honesty panel and the table reproductions agree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.state import paper_claims
from lqvae.spec import paper

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dataset, classifier, purifier, attack, threat, substitute, expected", [
    ("mnist", "A", "lqvae", "fgsm", "whitebox", None, 89.17),  # Table 2
    ("fashion_mnist", "C", "defensegan", "cw", "whitebox", None, 78.58),  # Table 1
    ("mnist", "B_madry", None, "deepfool", "whitebox", None, 66.35),  # Table 2, Madry column
    ("mnist", "C", None, "fgsm", "blackbox", "A", 28.93),  # Table 4, no defense
    ("fashion_mnist", "A_advtr", None, "deepfool", "blackbox", "C", 57.53),  # Table 5, Adv Tr
    ("fashion_mnist", "A", "lqvae_robust", "fgsm", "bpda", None, 57.41),  # Table 7 (compared with LQ-VAE)
])
def test_app_claims_and_engine_tables_read_the_same_numbers(dataset, classifier, purifier, attack, threat,
                                                            substitute, expected):
    from lqvae.evaluate.tables import build_table

    value, where = paper_claims.claim(dataset, classifier, purifier, attack, threat, substitute)
    assert value == expected and where.startswith("Table ")
    number = int(where.split(",")[0].removeprefix("Table "))
    column = paper_claims.defense_column(purifier, classifier)
    if number == 7:
        row, table = dataset, 7
    elif number in (1, 2):
        row, table = f"{attack}/{classifier[:1]}", number
    else:
        row, table = f"{classifier[:1]}/{substitute}", number
    report = build_table(table, (dataset,), {}, preset="paper")["json"]
    printed = next(r["paper"][column] for r in report["rows"] if r["row"] == row)
    assert printed == expected == paper.TABLES[number].value(row, column)


def test_no_claim_where_the_paper_has_none():
    assert paper_claims.claim("mnist", "A", "lqvae", "deepfool", "blackbox", "B") is None  # not DeepFool on MNIST
    assert paper_claims.claim("mnist", "A", "vae", "fgsm", "whitebox") is None  # no VAE column in the paper
    assert paper_claims.claim("mnist", "A", "lqvae", "pgd", "bpda") is None  # Table 7 is FGSM only


def _float_literals(path: Path) -> list[float]:
    return [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, float)]


def test_the_paper_numbers_have_one_copy():
    """No module but lqvae/spec/paper.py spells the paper's table values (a second copy would drift)."""
    printed = {v for t in paper.TABLES.values() for row in t.rows.values() for v in row}
    assert len(printed) > 100
    for path in [*(ROOT / "lqvae").rglob("*.py"), *(ROOT / "app").rglob("*.py")]:
        if path == ROOT / "lqvae" / "spec" / "paper.py":
            continue
        copied = printed & set(_float_literals(path))
        assert len(copied) <= 2, f"{path.relative_to(ROOT)} repeats the paper's numbers {sorted(copied)[:5]}"
