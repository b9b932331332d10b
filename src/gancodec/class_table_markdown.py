"""The per-content-class table (``gancodec.eval.classes``' summary) as markdown lines.

Pure formatting, importing nothing of gancodec: the report (evaluation) and the model card
(``gancodec.weights.ship``, which decoding may load and so must not import the evaluation) render
the same table from the same function.
"""

from __future__ import annotations

#: The table's anchors when a summary has no class rows (the order of ``gancodec.eval.classes.ANCHORS``).
DEFAULT_ANCHORS = ("webp", "avif", "jpeg420")


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def markdown(summary: dict) -> list[str]:
    """The per-class table of an ``evaluate_classes`` summary (``classes.json``) as markdown lines."""
    names = {"webp": "WebP", "avif": "AVIF 4:4:4", "avifenc": "AVIF 4:4:4", "jpeg420": "JPEG"}
    anchors = list(summary["classes"][0]["bd_rate"]) if summary.get("classes") else list(DEFAULT_ANCHORS)
    head = ["class", "images", *[f"BD-rate vs {names.get(a, a)}" for a in anchors],
            "worst image (BD-rate vs WebP)", "worst dB vs WebP at q 2/4/6"]
    with_fallback = any("fallback" in e for e in summary.get("classes", []))
    with_disjoint = any(e.get("no_overlap") for e in summary.get("classes", []))
    if with_disjoint:
        head += ["no PSNR overlap with WebP (no BD-rate)"]
    if with_fallback:
        head += ["with WebP fallback: BD-rate vs WebP", "points stored as WebP", "worst dB vs WebP at q 2/4/6"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary["classes"]:
        w, g = e.get("worst"), e.get("worst_gap")
        cells = [e["class"], str(e["images"]), *[_pct(e["bd_rate"].get(a)) for a in anchors],
                 "n/a" if not w else f"{w['image']} ({_pct(w['bd_rate_vs_webp'])})", _gap_cell(g)]
        if with_disjoint:
            cells.append(_disjoint_cell(e.get("no_overlap")))
        if with_fallback:
            f = e.get("fallback") or {}
            share = f.get("fallback_share")
            cells += [_pct(f.get("bd_rate_vs_webp")), "n/a" if share is None else f"{100 * share:.0f} %", _gap_cell(f.get("worst_gap"))]
        lines.append("| " + " | ".join(cells) + " |")
    if with_fallback:
        lines += ["", "Left: the learned codec (`compress(..., fallback=False)`, as the evaluation measures it). "
                  "Right: what `gancodec compress` writes by default, where a WebP of no more bytes replaces the "
                  "learned stream when it decodes more than 0.25 dB PSNR better. The fallback bounds the loss per "
                  "image; it does not make the learned model better."]
    if with_disjoint:
        lines += ["", "No PSNR overlap: the image's learned PSNR range does not meet WebP's measured one, so it "
                  "has no BD-rate (nothing is extrapolated); \"below\" = every learned point is under WebP's "
                  "lowest measured PSNR. Its dB gap is still read where its bpp lies inside WebP's range."]
    if any((g or {}).get("gap_points", [0, 0])[0] < (g or {}).get("gap_points", [0, 0])[1]
           for e in summary.get("classes", []) for g in (e.get("worst_gap"), (e.get("fallback") or {}).get("worst_gap"))):
        lines += ["", "\"n of m q\": only n of the image's m qualities (2/4/6) fell inside WebP's measured bpp range; "
                  "the gap is their mean (WebP's curve is not extrapolated)."]
    return lines


def _gap_cell(g: dict | None) -> str:
    if not g:
        return "n/a"
    n, m = g.get("gap_points") or (0, 0)
    part = f", {n} of {m} q" if n < m else ""
    return f"{g['image']} ({g['gap_db_vs_webp']:+.2f} dB{part})"


def _disjoint_cell(items: list[dict] | None) -> str:
    return "none" if not items else ", ".join(f"{d['image']} ({d['side'] or 'no overlap'})" for d in items)
