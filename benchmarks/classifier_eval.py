"""Classifier accuracy on labelled prompts that are not the demo traffic.

    .venv/bin/python -m benchmarks.classifier_eval [--out benchmarks/results/classifier_eval.json]

Classifies every prompt of `benchmarks/data/classifier_eval/` (written for this project, see
its README) as the only user message of a request, with the router's seven request types, and
reports per split (`dev`, `heldout`) and for both together: accuracy per type (the share of
that type's prompts classified as it), overall accuracy, macro-F1 over the seven types, the
confusion matrix (rows: label, columns: prediction) and every miss with the rule that decided.

The held-out half was never looked at while changing the classifier: a rule fixed for a dev
miss must not be checked against it. Deterministic; takes well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router_core.classifier import classify
from router_core.config import REQUEST_TYPES

import benchmarks  # noqa: F401  (puts the layer on the import path)

DATA_DIR = Path(__file__).resolve().parent / "data" / "classifier_eval"
SPLITS: tuple[str, ...] = ("dev", "heldout")
RESULTS = Path(__file__).resolve().parent / "results" / "classifier_eval.json"
SHORT = {
    "code_generation": "cg",
    "code_understanding": "cu",
    "technical_design": "td",
    "analytical_reasoning": "ar",
    "writing": "wr",
    "factual_lookup": "fl",
    "general": "ge",
}
"""Labels of the printed confusion matrix (also the id prefixes of the data)."""


def load_split(name: str, data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """The labelled prompts of one split: dicts with id, request_type, prompt (and hard, note)."""
    path = data_dir / f"{name}.jsonl"
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def predict(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row with the classifier's `predicted` type and deciding `rule` added."""
    out = []
    for row in rows:
        result = classify([{"role": "user", "content": row["prompt"]}], REQUEST_TYPES)
        out.append({**row, "predicted": result.request_type, "rule": result.rule})
    return out


def confusion(predictions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts of (label, prediction) pairs, every request type in both dimensions."""
    matrix = {label: dict.fromkeys(REQUEST_TYPES, 0) for label in REQUEST_TYPES}
    for p in predictions:
        matrix[p["request_type"]][p["predicted"]] += 1
    return matrix


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def per_type_scores(matrix: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """Support, accuracy (= recall), precision and F1 of every request type."""
    scores: dict[str, dict[str, float]] = {}
    for rtype in REQUEST_TYPES:
        hits = matrix[rtype][rtype]
        support = sum(matrix[rtype].values())
        predicted = sum(matrix[label][rtype] for label in REQUEST_TYPES)
        recall, precision = _ratio(hits, support), _ratio(hits, predicted)
        f1 = _ratio(2 * hits, support + predicted)  # = 2PR / (P + R)
        scores[rtype] = {
            "support": support,
            "accuracy": round(recall, 4),
            "precision": round(precision, 4),
            "f1": round(f1, 4),
        }
    return scores


def evaluate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy per type, overall accuracy, macro-F1, confusion matrix and misses of `rows`."""
    predictions = predict(rows)
    matrix = confusion(predictions)
    per_type = per_type_scores(matrix)
    correct = sum(p["predicted"] == p["request_type"] for p in predictions)
    misses = [
        {k: p[k] for k in ("id", "request_type", "predicted", "rule", "prompt")}
        for p in predictions
        if p["predicted"] != p["request_type"]
    ]
    hard = [p for p in predictions if p.get("hard")]
    return {
        "n": len(predictions),
        "accuracy": round(_ratio(correct, len(predictions)), 4),
        "macro_f1": round(sum(s["f1"] for s in per_type.values()) / len(per_type), 4),
        "hard_accuracy": round(_ratio(sum(p["predicted"] == p["request_type"] for p in hard), len(hard)), 4),
        "hard_n": len(hard),
        "per_type": per_type,
        "confusion": matrix,
        "misses": misses,
    }


def evaluate_all(data_dir: Path = DATA_DIR) -> dict[str, dict[str, Any]]:
    """`evaluate` on each split and on both together (key "all")."""
    rows = {name: load_split(name, data_dir) for name in SPLITS}
    results = {name: evaluate(split_rows) for name, split_rows in rows.items()}
    results["all"] = evaluate([row for name in SPLITS for row in rows[name]])
    return results


def _print_tables(results: Mapping[str, Mapping[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="classifier accuracy per request type")
    table.add_column("request type")
    for name in results:
        table.add_column(name, justify="right")
    table.add_column(f"F1 ({name})", justify="right")
    for rtype in REQUEST_TYPES:
        cells = [_share(r["confusion"][rtype][rtype], r["per_type"][rtype]["support"]) for r in results.values()]
        table.add_row(rtype, *cells, f"{results['all']['per_type'][rtype]['f1']:.2f}")
    table.add_section()
    table.add_row("overall", *[_share(r["n"] - len(r["misses"]), r["n"], 1) for r in results.values()], "")
    table.add_row("macro-F1", *[f"{r['macro_f1']:.3f}" for r in results.values()], "")
    console.print(table)

    for name, r in results.items():
        matrix = Table(title=f"confusion, {name}")
        matrix.add_column("label")
        for rtype in REQUEST_TYPES:
            matrix.add_column(SHORT[rtype], justify="right")
        for label in REQUEST_TYPES:
            matrix.add_row(SHORT[label], *[str(r["confusion"][label][p] or "·") for p in REQUEST_TYPES])
        console.print(matrix)
    console.print("rows: label, columns: predicted; " + ", ".join(f"{s} = {t}" for t, s in SHORT.items()))


def _share(hits: int, total: int, decimals: int = 0) -> str:
    return f"{_ratio(hits, total):.{decimals}%} {hits}/{total}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--misses", action="store_true", help="also print every misclassified prompt")
    args = parser.parse_args(argv)
    results = evaluate_all()
    payload = {
        "data": str(DATA_DIR.relative_to(Path(__file__).resolve().parents[1])),
        "results": results,
        "meta": {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _print_tables(results)
    if args.misses:
        for miss in results["all"]["misses"]:
            print(f"{miss['id']}: {miss['request_type']} -> {miss['predicted']} ({miss['rule']})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
