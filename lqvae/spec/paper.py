"""The paper's numbers (Kyatham, Mishra, Yadav, Mishra and AP, AAAI 2020), written once (torch-free).

Accuracies in percent, as printed in the paper's Tables 1, 2, 4, 5 and 7. Both readers take them from
here: the evaluation's table reproductions (:mod:`lqvae.evaluate.tables`, "ours (paper)") and the app's
honesty panel (:mod:`app.state.paper_claims`). Every number is found by (table, row, column), and
:meth:`PaperTable.source` names where it is printed.

Rows: ``"<attack>/<classifier>"`` in the white-box Tables 1 (Fashion-MNIST) and 2 (MNIST),
``"<classifier>/<substitute>"`` in the black-box Tables 4 (MNIST, FGSM) and 5 (Fashion-MNIST, DeepFool),
the dataset in Table 7 (FGSM end to end through LQ-VAE + classifier with BPDA; the classifier is not
stated), and ``"Average"``. White-box FGSM uses eps = 0.3 (L-inf); DeepFool and C&W are unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

# the columns of Tables 1, 2, 4 and 5, in the paper's order
COLUMNS: tuple[str, ...] = ("no_attack", "no_defense", "lqvae", "defensegan", "madry", "adv_tr")
COLUMN_TITLES: Mapping[str, str] = MappingProxyType({
    "no_attack": "No Attack", "no_defense": "No Defense", "lqvae": "LQ-VAE", "defensegan": "Defense-GAN",
    "madry": "Madry", "adv_tr": "Adv Tr"})


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper: ``rows[row]`` holds one value per entry of ``columns``.

    Args:
        number: the table's number in the paper.
        title: what it measures.
        dataset: the dataset of every row, or None when the rows are datasets (Table 7).
        threat: the threat model of its attacks (``whitebox`` on the classifier, ``blackbox`` transfer,
            ``bpda`` end to end).
        attack: the one attack of the table, or None when the rows name it (Tables 1 and 2).
        columns: the column keys.
        rows: row key -> values, in ``columns`` order.
    """

    number: int
    title: str
    dataset: str | None
    threat: str
    attack: str | None
    columns: tuple[str, ...]
    rows: Mapping[str, tuple[float, ...]]

    def value(self, row: str, column: str) -> float | None:
        """The printed number, or None when the paper has no such cell."""
        values = self.rows.get(row)
        return values[self.columns.index(column)] if values and column in self.columns else None

    def source(self, row: str, column: str) -> str:
        """Where the number is printed: ``"Table 2, row fgsm/A, column LQ-VAE"``."""
        return f"Table {self.number}, row {row}, column {COLUMN_TITLES.get(column, column)}"


def _table(number: int, title: str, dataset: str | None, threat: str, attack: str | None,
           rows: dict[str, tuple[float, ...]], columns: tuple[str, ...] = COLUMNS) -> PaperTable:
    assert all(len(v) == len(columns) for v in rows.values()), f"Table {number}: a row of the wrong width"
    return PaperTable(number, title, dataset, threat, attack, columns, MappingProxyType(rows))


_WHITEBOX = "White-box attacks on the classifier"
TABLES: Mapping[int, PaperTable] = MappingProxyType({
    1: _table(1, _WHITEBOX, "fashion_mnist", "whitebox", None, {
        "fgsm/A": (92.76, 11.50, 77.00, 69.75, 78.87, 53.72), "fgsm/B": (91.17, 10.14, 69.41, 56.72, 76.94, 59.79),
        "fgsm/C": (89.06, 11.60, 67.07, 56.34, 64.16, 66.43),
        "deepfool/A": (92.76, 5.29, 79.30, 77.48, 57.17, 6.52), "deepfool/B": (91.17, 6.54, 79.41, 74.97, 52.58, 14.74),
        "deepfool/C": (89.06, 7.65, 79.89, 74.82, 39.93, 24.71),
        "cw/A": (92.76, 5.41, 80.64, 78.75, 62.55, 5.35), "cw/B": (91.17, 6.61, 81.58, 78.18, 56.48, 6.35),
        "cw/C": (89.06, 7.89, 82.31, 78.58, 43.72, 8.00),
        "Average": (91.00, 8.07, 77.40, 71.73, 59.15, 27.29)}),
    2: _table(2, _WHITEBOX, "mnist", "whitebox", None, {
        "fgsm/A": (99.40, 20.16, 89.17, 90.43, 96.85, 67.95), "fgsm/B": (99.41, 13.17, 86.70, 88.52, 96.20, 49.49),
        "fgsm/C": (98.37, 5.66, 83.02, 86.7, 84.71, 80.75),
        "deepfool/A": (99.40, 7.38, 97.60, 95.41, 67.82, 3.10), "deepfool/B": (99.41, 5.88, 97.74, 93.03, 66.35, 5.75),
        "deepfool/C": (98.37, 48.24, 97.42, 92.32, 62.38, 10.97),
        "cw/A": (99.40, 8.85, 97.66, 94.37, 69.15, 1.20), "cw/B": (99.41, 5.07, 97.20, 90.56, 71.35, 1.45),
        "cw/C": (98.37, 8.44, 97.36, 92.5, 58.65, 2.15),
        "Average": (99.06, 13.65, 93.76, 91.54, 74.83, 24.76)}),
    4: _table(4, "FGSM black-box (transfer from a substitute)", "mnist", "blackbox", "fgsm", {
        "A/B": (99.40, 33.32, 88.09, 89.14, 97.17, 95.78), "A/C": (99.40, 45.35, 90.60, 90.08, 98.27, 96.82),
        "B/A": (99.41, 42.22, 90.63, 91.40, 97.38, 94.64), "B/C": (99.41, 38.73, 89.92, 89.89, 98.03, 95.30),
        "C/A": (98.37, 28.93, 91.98, 90.90, 90.59, 32.12), "C/B": (98.37, 18.01, 89.38, 88.73, 89.14, 21.79),
        "Average": (99.06, 34.43, 90.10, 90.02, 95.10, 72.74)}),
    5: _table(5, "DeepFool black-box (transfer from a substitute)", "fashion_mnist", "blackbox", "deepfool", {
        "A/B": (92.76, 29.14, 77.74, 74.41, 60.11, 48.27), "A/C": (92.76, 35.44, 77.11, 74.11, 62.58, 57.53),
        "B/A": (91.17, 67.82, 81.33, 77.97, 80.71, 76.61), "B/C": (91.17, 45.55, 78.83, 74.5, 69.19, 64.05),
        "C/A": (89.06, 79.11, 82.12, 78.82, 80.99, 81.84), "C/B": (89.06, 47.26, 80.76, 76.6, 67.46, 59.64),
        "Average": (91.00, 50.72, 79.65, 76.07, 70.17, 64.66)}),
    7: _table(7, "End-to-end white-box attacks on LQ-VAE + classifier (BPDA)", None, "bpda", "fgsm", {
        "mnist": (83.70, 55.17), "fashion_mnist": (57.41, 39.41)}, columns=("lqvae", "defensegan")),
})
WHITEBOX_TABLE: Mapping[str, int] = MappingProxyType({"fashion_mnist": 1, "mnist": 2})
BLACKBOX_TABLE: Mapping[str, int] = MappingProxyType({"mnist": 4, "fashion_mnist": 5})
END_TO_END_TABLE = 7


def reference(table: int, dataset: str) -> PaperTable | None:
    """The paper table a reproduction of ``table`` on ``dataset`` is compared with (None: none fits).

    Tables 1 and 2 share one layout, so either one run on a dataset is compared with that dataset's
    white-box table; Tables 4 and 5 differ in their attack, so each fits its own dataset only."""
    if table in (1, 2):
        return TABLES[WHITEBOX_TABLE[dataset]] if dataset in WHITEBOX_TABLE else None
    paper = TABLES.get(table)
    return paper if paper is not None and paper.dataset in (None, dataset) else None


def claim(dataset: str, attack: str, threat: str, classifier: str, column: str,
          substitute: str | None = None) -> tuple[float, str] | None:
    """The paper's accuracy for one setting and the table, row and column it is printed in (None: it has none).

    ``classifier`` and ``substitute`` are the base architectures A, B or C; ``column`` is one of
    ``COLUMNS`` (Table 7 has ``lqvae`` and ``defensegan``)."""
    if threat == "whitebox" and dataset in WHITEBOX_TABLE:
        table, row = TABLES[WHITEBOX_TABLE[dataset]], f"{attack}/{classifier}"
    elif threat == "blackbox" and dataset in BLACKBOX_TABLE and substitute:
        table, row = TABLES[BLACKBOX_TABLE[dataset]], f"{classifier}/{substitute}"
        if attack != table.attack:
            return None
    elif threat == "bpda" and attack == TABLES[END_TO_END_TABLE].attack:
        table, row = TABLES[END_TO_END_TABLE], dataset
    else:
        return None
    value = table.value(row, column)
    return None if value is None else (value, table.source(row, column))


__all__ = ["COLUMNS", "COLUMN_TITLES", "PaperTable", "TABLES", "WHITEBOX_TABLE", "BLACKBOX_TABLE",
           "END_TO_END_TABLE", "reference", "claim"]
