"""The model card's measured block is rebuilt from files, and the hand-written text around it is kept."""

import json

from lqvae.evaluate.card import BEGIN, END, render, update
from lqvae.io.checkpoint import save_checkpoint


def test_card_block_comes_from_metadata_and_results(tmp_path, classifier_a):
    ckpt, results = tmp_path / "checkpoints", tmp_path / "results"
    (ckpt / "mnist").mkdir(parents=True)
    results.mkdir()
    save_checkpoint(ckpt / "mnist" / "classifier_A.safetensors", classifier_a, kind="classifier", dataset="mnist",
                    command="python -m lqvae.train classifier --arch A", epochs=7, extra={"seed": "3", "wall_s": "120"})
    (results / "clean_mnist.json").write_text(json.dumps({"n": 10000, "A": {"clean_accuracy": 99.123}}))
    text = render(ckpt, results)
    assert "| `classifier_A.safetensors` | classifier | 7 | 3 | 2.0 min |" in text
    assert "| A | 99.12 | not measured | not measured | not measured |" in text
    assert "fashion_mnist\n\nNo checkpoints shipped." in text
    assert "Baselines (issue 6)" not in text  # no hardened classifier shipped, no empty table

    save_checkpoint(ckpt / "mnist" / "classifier_A_madry.safetensors", classifier_a, kind="classifier",
                    dataset="mnist", metrics={"test_accuracy": 97.5, "pgd20_accuracy_1000": 55.4})
    assert "| `classifier_A_madry` | 97.50 (clean, 10,000) | 55.40 (white-box PGD-20" in render(ckpt, results)

    card = tmp_path / "README.md"
    card.write_text(f"# Card\n\nhand-written\n\n{BEGIN}\nstale 12.34\n{END}\n\n## After\n")
    update(card, text)
    out = card.read_text()
    assert out.startswith("# Card\n\nhand-written") and out.endswith("## After\n")
    assert "stale 12.34" not in out and out.count(BEGIN) == 1


def test_report_fills_tables_and_flags_missing_ones(tmp_path):
    from lqvae.evaluate.report import assemble

    (tmp_path / "table2_mnist.md").write_text("| a | 12.50 |\n")
    text, missing = assemble("# R\n\n{{table2_mnist}}\n\n{{table7}}\n", tmp_path)
    assert "| a | 12.50 |" in text and "{{" not in text
    assert missing == ["table7"] and "Not measured yet" in text and "table7.md" in text


def test_report_renders_run_records(tmp_path):
    from lqvae.evaluate.report import assemble

    rec = {"dataset": "mnist", "defense": "lqvae_robust", "attack": "fgsm", "threat": "bpda", "n": 100,
           "clean_accuracy_defended": 96.0, "attacked_accuracy_undefended": 20.0, "attacked_accuracy": 61.5,
           "bits": {"mean_flips": 7.25}}
    (tmp_path / "robust_mnist_fgsm.json").write_text(json.dumps(rec))  # written before the keys were renamed
    renamed = {k: v for k, v in rec.items() if not k.startswith("attacked_accuracy")}
    (tmp_path / "robust_mnist_pgd.json").write_text(json.dumps(
        {**renamed, "attack": "pgd", "undefended_accuracy": 2.0, "defended_accuracy": 40.25}))
    (tmp_path / "robust_broken.json").write_text("{")
    text, missing = assemble("{{runs:robust_}}\n{{runs:nothing_}}", tmp_path)
    assert "| mnist | lqvae_robust | fgsm | bpda | 100 | 96.00 | 20.00 | 61.50 | 7.25 | `robust_mnist_fgsm.json` |" in text
    assert "| mnist | lqvae_robust | pgd | bpda | 100 | 96.00 | 2.00 | 40.25 | 7.25 | `robust_mnist_pgd.json` |" in text
    assert missing == ["runs:nothing_"]


def test_report_quotes_benchmark_numbers_and_flags_missing_keys(tmp_path):
    from lqvae.evaluate.report import assemble

    (tmp_path / "bench_x.json").write_text(json.dumps({"ratio": 432.23, "ms": 3.404, "name": "L=200"}))
    text, missing = assemble("{{json:bench_x:ratio}}x, {{json:bench_x:ms}} ms, {{json:bench_x:gone}}, "
                             "{{json:bench_x:name}}, {{json:nofile:ratio}}", tmp_path)
    assert text.startswith("432x, 3.4 ms, _(not measured")
    assert missing == ["json:bench_x:gone", "json:bench_x:name", "json:nofile:ratio"]
