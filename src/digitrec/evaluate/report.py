"""The files `digitrec evaluate` writes: CSVs for machines, PNGs and one self-contained report.html for
people (every image embedded as a base64 data URI, all CSS inline, nothing fetched from anywhere)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from digitrec.evaluate import plots
from digitrec.files import atomic_path, atomic_write

# File names inside the output folder.
FILES = {
    "report": "report.html",
    "summary": "summary.json",
    "predictions": "predictions.csv",
    "confusion_csv": "confusion.csv",
    "confusion_png": "confusion.png",
    "mistakes": "mistakes.png",
    "reliability": "reliability.png",
    "risk_coverage": "risk_coverage.png",
    "history": "training_curves.png",
}
GALLERY_SIZE = 48  # worst mistakes shown: 6 rows of 8
# Model card fields shown first, in this order; the rest follow alphabetically.
CARD_ORDER = (
    "name",
    "unfinished",
    "architecture",
    "recipe",
    "params",
    "parameters",
    "flops",
    "flops_per_image",
    "test_accuracy",
    "accuracy",
    "val_accuracy",
    "test_loss",
    "epochs",
    "seed",
    "train_seconds",
    "train_images",
    "val_images",
    "trained",
    "created",
    "commit",
    "source_commit",
)


def write_predictions_csv(labels: np.ndarray, probs: np.ndarray, path: Path) -> Path:
    """index, label, predicted, confidence, p0..p9: one row per test image."""
    n, classes = probs.shape
    predicted = probs.argmax(axis=1)
    table = np.column_stack([np.arange(n), labels, predicted, probs.max(axis=1), probs])
    header = ",".join(["index", "label", "predicted", "confidence"] + [f"p{c}" for c in range(classes)])
    with atomic_path(path) as tmp:
        np.savetxt(
            tmp, table, fmt=["%d", "%d", "%d"] + ["%.6f"] * (1 + classes), delimiter=",", header=header, comments=""
        )
    return path


def write_confusion_csv(confusion: np.ndarray, path: Path) -> Path:
    """Rows are true digits, columns predicted digits; the corner cell names the axes."""
    classes = len(confusion)
    lines = [",".join(["true\\predicted"] + [str(c) for c in range(classes)])]
    lines += [",".join([str(t)] + [str(int(v)) for v in row]) for t, row in enumerate(confusion)]
    return atomic_write(path, "\n".join(lines) + "\n")


def write_figures(out: Path, images, labels, probs, summary: dict, history: list[dict]) -> dict[str, Path]:
    from digitrec.evaluate.metrics import risk_coverage, worst_mistakes

    written = {
        "confusion_png": plots.plot_confusion(np.array(summary["confusion"]), out / FILES["confusion_png"]),
        "mistakes": plots.plot_mistakes(
            images, labels, probs, worst_mistakes(labels, probs, GALLERY_SIZE), out / FILES["mistakes"]
        ),
        "reliability": plots.plot_reliability(summary["calibration"], summary["ece"], out / FILES["reliability"]),
        "risk_coverage": plots.plot_risk_coverage(
            *risk_coverage(labels, probs), summary["doubt"]["at_threshold"], out / FILES["risk_coverage"]
        ),
    }
    if history:
        written["history"] = plots.plot_history(history, out / FILES["history"])
    return written


# --- report.html -----------------------------------------------------------------------------------

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --accent:#2563eb; --bad:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1080px; margin:0 auto; padding:32px 24px 48px; }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
code { font-family: ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px;
       background:#eef2f7; padding:1px 5px; border-radius:4px; word-break:break-all; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:12px; margin:24px 0 8px; }
.card { background:white; border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
.card .value { font-size:26px; font-weight:650; margin-top:2px; font-variant-numeric:tabular-nums; }
.card .hint { color:var(--muted); font-size:12px; }
section { background:white; border:1px solid var(--line); border-radius:10px; padding:20px 24px; margin-top:20px; }
section h2 { margin:0 0 4px; font-size:19px; }
section > p.lead { margin:0 0 14px; color:var(--muted); }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); font-weight:600; }
td.num, th.num { text-align:right; }
tr.worst td { background:#fef2f2; }
td.key { color:var(--muted); width:28%; }
.two { display:grid; grid-template-columns:3fr 2fr; gap:24px; align-items:start; }
@media (max-width: 820px) { .two { grid-template-columns:1fr; } }
@media (max-width: 560px) { main { padding:16px 10px 32px; } section { padding:14px 12px; }
  th, td { padding:5px 6px; } .card .value { font-size:22px; } }
.scroll { overflow-x:auto; }
img { max-width:100%; height:auto; display:block; margin:8px auto 0; }
.bar { display:inline-block; height:8px; border-radius:4px; background:var(--accent); vertical-align:middle; }
details pre { white-space:pre-wrap; font-size:12px; background:#f3f4f6; padding:8px; border-radius:6px; }
.note { color:var(--muted); font-style:italic; }
ul.files { columns:2; margin:0; padding-left:18px; }
footer { color:var(--muted); font-size:12px; margin-top:24px; text-align:center; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f}M"
    if per_second >= 1e4:
        return f"{per_second / 1e3:.0f}k"
    return f"{per_second:,.0f}"


def _card_value(key: str, value) -> str:
    if isinstance(value, bool) or value is None:
        return _e(value)
    if isinstance(value, float) and "accuracy" in key and 0 <= value <= 1:
        return f"{value:.2%}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and "\n" in value:  # e.g. the layer listing
        return f"<details><summary>{value.count(chr(10)) + 1} lines</summary><pre>{_e(value)}</pre></details>"
    if isinstance(value, (dict, list)):
        size = f"{len(value)} {'fields' if isinstance(value, dict) else 'items'}"
        return f"<details><summary>{size}</summary><pre>{_e(json.dumps(value, indent=2))}</pre></details>"
    return _e(value)


def _model_card_section(card: dict, model: dict) -> str:
    keys = [k for k in CARD_ORDER if k in card] + sorted(k for k in card if k not in CARD_ORDER)
    rows = [f'<tr><td class="key">file</td><td><code>{_e(model["path"])}</code> ({_e(model["kind"])})</td></tr>']
    rows += [f'<tr><td class="key">{_e(k)}</td><td>{_card_value(k, card[k])}</td></tr>' for k in keys]
    lead = "What the model file says about itself." if len(card) > 1 else "This model carries no model card."
    return (
        f'<section id="model"><h2>Model</h2><p class="lead">{lead}</p>'
        f'<div class="scroll"><table>{"".join(rows)}</table></div></section>'
    )


def _per_class_section(summary: dict) -> str:
    per_class = summary["per_class"]
    worst = min(range(len(per_class)), key=lambda d: (per_class[d]["f1"], d))
    rows = []
    for digit, m in enumerate(per_class):
        missed = m["support"] - summary["confusion"][digit][digit]
        rows.append(
            f'<tr class="{"worst" if digit == worst else ""}"><td><b>{digit}</b></td>'
            f'<td class="num">{m["precision"]:.2%}</td><td class="num">{m["recall"]:.2%}</td>'
            f'<td class="num">{m["f1"]:.2%}</td><td class="num">{m["support"]:,}</td>'
            f'<td class="num">{missed:,}</td></tr>'
        )
    confusion = np.array(summary["confusion"])
    off = [
        (int(confusion[t, p]), t, p)
        for t in range(len(confusion))
        for p in range(len(confusion))
        if t != p and confusion[t, p] > 0
    ]
    off.sort(key=lambda c: (-c[0], c[1], c[2]))
    top = off[:8]
    widest = top[0][0] if top else 1
    pairs = (
        "".join(
            f'<tr><td>{t} read as {p}</td><td class="num">{n}</td>'
            f'<td><span class="bar" style="width:{max(4, round(120 * n / widest))}px"></span></td></tr>'
            for n, t, p in top
        )
        or '<tr><td class="note">No mistakes at all.</td></tr>'
    )
    return f"""<section id="per-class"><h2>Per digit</h2>
<p class="lead">Precision: of the images the model called this digit, the share that were. Recall: of the
images of this digit, the share it found. F1 is their harmonic mean. The weakest digit (lowest F1) is shaded.</p>
<div class="two"><div class="scroll"><table><tr><th>digit</th><th class="num">precision</th>
<th class="num">recall</th><th class="num">F1</th><th class="num">support</th><th class="num">missed</th></tr>
{"".join(rows)}</table></div>
<div><h3 style="margin:0 0 6px;font-size:15px">Most frequent confusions</h3>
<table><tr><th>digit</th><th class="num">images</th><th></th></tr>{pairs}</table></div></div>
</section>"""


def _temperature_note(card: dict) -> str:
    """Which probabilities were scored: the card's calibration temperature, when it has one."""
    calibration = card.get("calibration")
    if not isinstance(calibration, dict) or "temperature" not in calibration:
        return "The probabilities are the plain softmax of the model's logits (no calibration in its card)."
    return (
        f"The probabilities are softmax(logits / T) with the card's temperature T = "
        f"{float(calibration['temperature']):.3f}, fitted on {_e(str(calibration.get('fitted_on', 'held-out images')))}."
    )


# One sentence per doubt reason (digitrec.doubt.REASONS): what it means for an answer.
REASON_SENTENCES = {
    "not a digit": "The rejector judged the image a letter, symbol, scribble or texture rather than a digit.",
    "several digits": "The rejector saw more than one digit in an image meant to hold one; the read command "
    "reads whole numbers.",
    "low confidence": "The calibrated probability of the top digit is under min_confidence: the model hesitates, "
    "usually between two digits, so a person should check it.",
    "no ink": "The image holds nothing darker or lighter than its background: a blank page has no digit to read.",
}


def _flagged_note(by_threshold: int, by_reason: dict[str, int | None]) -> str:
    """Why the table's images add up to more than the paragraph's flagged ones (78 above, 100 in
    the table, with nothing said of the gap, read as a mistake in the report)."""
    if by_reason.get("not a digit") is None:
        return "MNIST arrays go to the model as they are: the rejector's reasons are only given to image files (predict, serve, batch)."
    total = sum(n or 0 for n in by_reason.values())
    return (
        f"The {by_threshold:,} flagged above are the threshold's alone: MNIST arrays go to the model as they are. "
        f"As image files (predict, serve, batch) these digits also meet the rejector: {total:,} flagged in all, "
        "as this table counts them."
    )


def _doubt_section(summary: dict, figures: dict[str, Path]) -> str:
    doubt = summary["doubt"]
    at = doubt["at_threshold"]
    coverage_rows = "".join(
        f'<tr><td class="num">{r["coverage"]:.0%}</td><td class="num">{r["answered"]:,}</td>'
        f'<td class="num">{r["accuracy"]:.2%}</td></tr>'
        for r in doubt["risk_coverage"]
    )
    reason_rows = "".join(
        f'<tr><td><b>{_e(reason)}</b></td><td class="num">{"not checked" if n is None else f"{n:,}"}</td>'
        f"<td>{_e(REASON_SENTENCES.get(reason, ''))}</td></tr>"
        for reason, n in doubt["flagged"].items()
    )
    return f"""<section id="doubt"><h2>Doubt: answering only when sure</h2>
<p class="lead">Answer only the images the model is most sure of, and those answers are right more often: the curve
shows the accuracy of the answered images against the share answered, the most confident first. At the default
threshold, min_confidence <b>{at["min_confidence"]:g}</b> on the calibrated probability (chosen on MNIST validation
data, see docs/trust.md), <b>{at["coverage"]:.2%}</b> of the images are answered and <b>{at["accuracy"]:.2%}</b> of those
are right; the {at["flagged"]:,} flagged would have been {at["flagged_right"]:,} right and {at["flagged_wrong"]:,}
wrong answers.</p>
{_img(figures["risk_coverage"], "risk-coverage curve")}
<div class="two"><div><h3 style="margin:12px 0 6px;font-size:15px">What was flagged, and why</h3>
<table><tr><th>reason</th><th class="num">images</th><th>what it means</th></tr>{reason_rows}</table>
<p class="note">{_flagged_note(at["flagged"], doubt["flagged"])}</p></div>
<div><h3 style="margin:12px 0 6px;font-size:15px">Accuracy of the most confident</h3>
<table><tr><th class="num">answered</th><th class="num">images</th><th class="num">accuracy</th></tr>
{coverage_rows}</table></div></div></section>"""


def render_html(summary: dict, figures: dict[str, Path], card: dict, files: dict[str, Path]) -> str:
    model = summary["model"]
    name = model["name"]
    n, errors = summary["n"], summary["errors"]
    params = card.get("params", card.get("parameters"))
    cards = [
        ("accuracy", f"{summary['accuracy']:.2%}", f"{n - errors:,} of {n:,} right"),
        ("errors", f"{errors:,}", f"{errors / max(n, 1):.2%} error rate"),
        ("loss", f"{summary['loss']:.4f}", "mean cross-entropy"),
        ("ECE", f"{summary['ece']:.4f}", f"calibration error, {len(summary['calibration'])} bins"),
    ]
    if isinstance(params, int):
        cards.append(("parameters", f"{params:,}", "weights in the model"))
    cards.append(
        ("speed", f"{_rate(summary['images_per_second'])}/s", f"images per second ({summary['seconds']:.3g} s in all)")
    )
    cards_html = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}'
        f'</div><div class="hint">{_e(hint)}</div></div>'
        for label, value, hint in cards
    )
    if "history" in figures:
        curves = (
            f'<p class="lead">Loss and accuracy per epoch from the training run '
            f"({_e(summary['history_source'])}).</p>{_img(figures['history'], 'training curves')}"
        )
    else:
        curves = (
            '<p class="note">No training history: the model has no run folder (metrics.jsonl beside '
            "the checkpoint) and its model card has no history.</p>"
        )
    file_items = "".join(f'<li><a href="{_e(p.name)}">{_e(p.name)}</a></li>' for p in files.values())
    limited = f" (the first {n:,} images only)" if summary.get("limit") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>digitrec evaluation: {_e(name)}</title><style>{CSS}</style></head>
<body><main>
<header><h1>Evaluation of {_e(name)}</h1>
<p>On the MNIST test set{limited}: {n:,} handwritten digits the model never trained on.
Written {_e(summary["created"])} by digitrec {_e(summary["digitrec_version"])}.</p></header>
<div class="cards">{cards_html}</div>
{_model_card_section(card, model)}
{_per_class_section(summary)}
<section id="confusion"><h2>Confusion matrix</h2>
<p class="lead">Each row is a true digit, each column the digit the model answered; the diagonal is right.
Counts are coloured on a log scale and empty cells are left blank, so the few mistakes stand out.</p>
{_img(figures["confusion_png"], "confusion matrix")}</section>
<section id="mistakes"><h2>Worst mistakes</h2>
<p class="lead">Wrong answers the model was most sure of, most confident first: the test index, the true label,
what the model said and its confidence. Some are honest errors, some are digits a person would misread too.</p>
{_img(figures["mistakes"], "most confident mistakes")}</section>
<section id="calibration"><h2>Calibration</h2>
<p class="lead">When the model says 90%, is it right 90% of the time? Bars show the accuracy of the images whose
top probability falls in each bin; the dashed line is perfect calibration. Expected calibration error (ECE) is the
gap averaged over bins, weighted by how many images each holds: <b>{summary["ece"]:.4f}</b>. {_temperature_note(card)}</p>
{_img(figures["reliability"], "reliability diagram")}</section>
{_doubt_section(summary, figures)}
<section id="training"><h2>Training curves</h2>{curves}</section>
<section id="files"><h2>Files</h2><p class="lead">Everything in this folder, for further analysis.</p>
<ul class="files">{file_items}</ul></section>
<footer>digitrec evaluate · model <code>{_e(model["path"])}</code></footer>
</main></body></html>
"""
