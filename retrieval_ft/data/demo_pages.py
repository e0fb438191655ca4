"""The visual demo: seeded synthetic document pages (invoices, reports, slides, tables, forms)
rendered with PIL, text queries about them, and judgments; no download.

Every page belongs to one company (a brand colour, a logo shape and its name in the header), has
one kind (its layout) and one variant of that kind: an invoice is paid, overdue or a draft (a
stamp); a report or a slide shows a bar, line or pie chart; a table has two, four or six columns;
a form has checkboxes, a signature line or a photo box. A query names a company, a kind and a
variant in one of several phrasings ("overdue invoice from Globex"), and every page of that
combination is relevant to it (grade 1).

Combinations, not pages, are split into train / dev / test, so test queries are about pages, and
combinations, that training never saw. Pages carry filler text (numbers, dates, line items) so they
look like documents; the query words match what a reader sees, not hidden metadata.

`write_demo_pages(folder)` writes a BEIR folder with an `image` field per document
(corpus.jsonl, images/*.png, queries.jsonl, qrels/<split>.tsv): the same reader as users' data.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_dir
from ..errors import MissingExtraError

# name, brand colour, logo shape
COMPANIES: tuple[tuple[str, tuple[int, int, int], str], ...] = (
    ("Acme", (214, 39, 40), "circle"),
    ("Globex", (31, 119, 180), "square"),
    ("Initech", (44, 160, 44), "triangle"),
    ("Umbrella", (255, 127, 14), "diamond"),
    ("Hooli", (148, 103, 189), "circle"),
    ("Vandelay", (140, 86, 75), "square"),
    ("Stark", (227, 119, 194), "triangle"),
    ("Wayne", (40, 40, 40), "diamond"),
    ("Tyrell", (23, 190, 207), "circle"),
    ("Soylent", (188, 189, 34), "square"),
)
# kind -> (variants, query phrasings); {c} company, {v} variant
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "invoice": (("paid", "overdue", "draft"),
                ("{v} invoice from {c}", "{c} invoice marked {v}", "invoice issued by {c} that is {v}",
                 "{c} {v} invoice")),
    "report": (("bar", "line", "pie"),
               ("{c} report with a {v} chart", "{v} chart in a {c} report", "report from {c} showing a {v} chart",
                "{c} annual report {v} chart")),
    "slide": (("bar", "line", "pie"),
              ("{c} presentation slide with a {v} chart", "slide from {c} showing a {v} chart",
               "{v} chart slide in the {c} deck", "{c} slide {v} chart")),
    "table": (("two", "four", "six"),
              ("{c} table with {v} columns", "{v}-column table from {c}", "table by {c} that has {v} columns",
               "{c} {v} column table")),
    "form": (("checkboxes", "a signature line", "a photo box"),
             ("{c} form with {v}", "form from {c} that has {v}", "{c} application form with {v}",
              "{c} form {v}")),
}
SPLITS = (("train", 0.7), ("dev", 0.1), ("test", 0.2))
PORTRAIT = (240, 320)
LANDSCAPE = (320, 240)


@dataclass(frozen=True)
class Page:
    id: str
    company: int
    kind: str
    variant: str
    seed: int


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise MissingExtraError("the visual demo needs Pillow: pip install 'retrieval-ft[images]'") from None
    return Image, ImageDraw


def _logo(draw: Any, shape: str, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=color, outline="white", width=2)
    elif shape == "square":
        draw.rectangle(box, fill=color, outline="white", width=2)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=color, outline="white")
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, (y0 + y1) // 2), ((x0 + x1) // 2, y1), (x0, (y0 + y1) // 2)],
                     fill=color, outline="white")


def _lines(draw: Any, rng: random.Random, x: int, y0: int, y1: int, width: int, step: int = 9) -> None:
    """Grey filler 'text' lines of random length."""
    for y in range(y0, y1, step):
        draw.line([(x, y), (x + int(width * rng.uniform(0.5, 1.0)), y)], fill=(150, 150, 150), width=2)


def _chart(draw: Any, rng: random.Random, kind: str, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(120, 120, 120))
    n = rng.randint(4, 7)
    values = [rng.uniform(0.2, 1.0) for _ in range(n)]
    if kind == "bar":
        w = (x1 - x0 - 8) / n
        for i, v in enumerate(values):
            bx = x0 + 4 + i * w
            draw.rectangle([bx + 2, y1 - 4 - v * (y1 - y0 - 10), bx + w - 2, y1 - 4], fill=color)
    elif kind == "line":
        pts = [(x0 + 6 + i * (x1 - x0 - 12) / (n - 1), y1 - 6 - v * (y1 - y0 - 14)) for i, v in enumerate(values)]
        draw.line(pts, fill=color, width=3)
        for px, py in pts:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
    else:
        r = min(x1 - x0, y1 - y0) // 2 - 6
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        start = rng.uniform(0, 360)
        shares = [v / sum(values) for v in values]
        for i, share in enumerate(shares):
            shade = tuple(int(c + (255 - c) * (i / n)) for c in color)
            draw.pieslice([cx - r, cy - r, cx + r, cy + r], start, start + 360 * share, fill=shade, outline="white")
            start += 360 * share


Color = tuple[int, int, int]


def _invoice(draw: Any, rng: random.Random, page: Page, color: Color, top: int, w: int, h: int) -> None:
    draw.text((10, top), f"Date: 20{rng.randint(18, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", fill=(60, 60, 60))
    rows = rng.randint(4, 8)
    y = top + 18
    for _ in range(rows):
        draw.text((10, y), f"item {rng.randint(10, 99)}", fill=(80, 80, 80))
        draw.text((w - 60, y), f"{rng.randint(5, 999)}.00", fill=(80, 80, 80))
        draw.line([(10, y + 13), (w - 10, y + 13)], fill=(210, 210, 210))
        y += 16
    draw.rectangle([w - 100, y + 6, w - 10, y + 26], outline=color, width=2)
    draw.text((w - 95, y + 10), f"TOTAL {rng.randint(100, 9999)}", fill=(20, 20, 20))
    stamp = {"paid": (40, 160, 60), "overdue": (210, 30, 30), "draft": (130, 130, 130)}[page.variant]
    sy = rng.randint(h - 90, h - 60)
    draw.rounded_rectangle([30, sy, 150, sy + 34], radius=6, outline=stamp, width=4)
    draw.text((50, sy + 11), page.variant.upper(), fill=stamp)


def _report(draw: Any, rng: random.Random, page: Page, color: Color, top: int, w: int, h: int) -> None:
    _lines(draw, rng, 10, top, top + 50, w - 20)
    _chart(draw, rng, page.variant, (20, top + 58, w - 20, top + 168), color)
    _lines(draw, rng, 10, top + 178, h - 10, w - 20)


def _slide(draw: Any, rng: random.Random, page: Page, color: Color, top: int, w: int, h: int) -> None:
    for i in range(3):
        y = top + 4 + i * 18
        draw.ellipse([12, y + 3, 18, y + 9], fill=color)
        draw.line([(24, y + 6), (24 + rng.randint(50, 100), y + 6)], fill=(120, 120, 120), width=3)
    _chart(draw, rng, page.variant, (140, top, w - 12, h - 14), color)


def _table(draw: Any, rng: random.Random, page: Page, color: Color, top: int, w: int, h: int) -> None:
    cols = {"two": 2, "four": 4, "six": 6}[page.variant]
    x0, x1 = 10, w - 10
    rows = rng.randint(8, 13)
    y0 = top + 4
    row_h = 16
    draw.rectangle([x0, y0, x1, y0 + row_h], fill=color)
    for r in range(rows + 1):
        draw.line([(x0, y0 + r * row_h), (x1, y0 + r * row_h)], fill=(110, 110, 110))
    for c in range(cols + 1):
        x = x0 + c * (x1 - x0) // cols
        draw.line([(x, y0), (x, y0 + rows * row_h)], fill=(110, 110, 110), width=2)
    for r in range(1, rows):
        for c in range(cols):
            x = x0 + c * (x1 - x0) // cols
            draw.text((x + 3, y0 + r * row_h + 3), str(rng.randint(1, 99)), fill=(60, 60, 60))


def _form(draw: Any, rng: random.Random, page: Page, color: Color, top: int, w: int, h: int) -> None:
    y = top
    for label in ("Name", "Address", "Phone"):
        draw.text((10, y), label, fill=(60, 60, 60))
        draw.rectangle([70, y - 2, w - 12, y + 12], outline=(120, 120, 120))
        y += 22
    if page.variant == "checkboxes":
        for i in range(4):
            by = y + 8 + i * 20
            draw.rectangle([14, by, 28, by + 14], outline=(40, 40, 40), width=2)
            if rng.random() < 0.5:
                draw.line([(16, by + 7), (20, by + 12), (27, by + 1)], fill=color, width=2)
            draw.line([(36, by + 7), (36 + rng.randint(60, 140), by + 7)], fill=(150, 150, 150), width=2)
    elif page.variant == "a signature line":
        _lines(draw, rng, 10, y + 6, y + 60, w - 20)
        sy = h - 50
        draw.line([(20, sy), (w - 40, sy)], fill=(30, 30, 30), width=2)
        draw.text((20, sy + 4), "Signature", fill=(60, 60, 60))
        pts = [(30 + i * 12, sy - 6 - rng.randint(0, 14)) for i in range(10)]
        draw.line(pts, fill=(20, 40, 140), width=2)
    else:
        draw.rectangle([w - 100, y + 6, w - 14, y + 110], outline=(40, 40, 40), width=2, fill=(225, 225, 225))
        draw.ellipse([w - 75, y + 24, w - 40, y + 59], fill=(170, 170, 170))
        draw.rectangle([w - 85, y + 64, w - 30, y + 104], fill=(170, 170, 170))
        _lines(draw, rng, 10, y + 10, h - 10, w - 130)


_BODIES = {"invoice": _invoice, "report": _report, "slide": _slide, "table": _table, "form": _form}


def render_page(page: Page) -> Any:
    """The page as an RGB PIL image; the same `page` always gives the same pixels."""
    Image, ImageDraw = _pil()
    rng = random.Random(page.seed)
    name, color, shape = COMPANIES[page.company]
    size = LANDSCAPE if page.kind == "slide" else PORTRAIT
    w, h = size
    paper = tuple(rng.randint(244, 255) for _ in range(3))
    img = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(img)
    band = 34 if page.kind == "slide" else 28
    draw.rectangle([0, 0, w, band], fill=color)
    _logo(draw, shape, (6, 4, 6 + band - 8, band - 4), tuple(min(255, c + 60) for c in color))
    draw.text((band + 4, band // 2 - 6), name.upper(), fill="white")
    # every kind's title is drawn from the generator, whichever is used, so the pixels stay as they were
    title = {"invoice": f"INVOICE #{rng.randint(1000, 9999)}", "report": f"REPORT {rng.randint(2015, 2026)}",
             "slide": f"Q{rng.randint(1, 4)} RESULTS", "table": "SUMMARY TABLE", "form": "APPLICATION FORM"}[page.kind]
    draw.text((10, band + 6), title, fill=(20, 20, 20))
    _BODIES.get(page.kind, _form)(draw, rng, page, color, band + 24, w, h)
    return img


def _combos() -> list[tuple[int, str, str]]:
    return [(c, kind, v) for c in range(len(COMPANIES)) for kind, (variants, _) in KINDS.items() for v in variants]


def _split_combos(rng: random.Random) -> dict[tuple[int, str, str], str]:
    """Combinations into splits so that every company, kind and variant still appears in train."""
    combos = _combos()
    for _ in range(1000):
        rng.shuffle(combos)
        cut1 = round(SPLITS[0][1] * len(combos))
        cut2 = cut1 + round(SPLITS[1][1] * len(combos))
        train = combos[:cut1]
        if (len({c for c, _, _ in train}) == len(COMPANIES)
                and len({(k, v) for _, k, v in train}) == sum(len(v) for v, _ in KINDS.values())):
            break
    return {combo: ("train" if i < cut1 else "dev" if i < cut2 else "test") for i, combo in enumerate(combos)}


def demo_pages(pages_per_combo: int = 3, seed: int = 7) -> tuple[list[Page], dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """(pages, queries, qrels by split): 150 combinations x `pages_per_combo` pages. Train
    combinations get one query per phrasing; dev and test combinations two, in phrasings chosen at
    random."""
    rng = random.Random(seed)
    split_of = _split_combos(rng)
    pages: list[Page] = []
    by_combo: dict[tuple[int, str, str], list[str]] = {}
    for combo in _combos():
        c, kind, variant = combo
        for i in range(pages_per_combo):
            pid = f"{COMPANIES[c][0].lower()}-{kind}-{variant.split()[-1]}-{i}"
            pages.append(Page(pid, c, kind, variant, rng.randrange(2**31)))
            by_combo.setdefault(combo, []).append(pid)
    rng.shuffle(pages)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {s: {} for s, _ in SPLITS}
    for n, combo in enumerate(sorted(split_of)):
        c, kind, variant = combo
        split = split_of[combo]
        phrasings = KINDS[kind][1]
        chosen = list(phrasings) if split == "train" else rng.sample(phrasings, 2)
        for j, template in enumerate(chosen):
            qid = f"q{n:03d}-{j}"
            queries[qid] = template.format(c=COMPANIES[c][0], v=variant)
            qrels[split][qid] = {pid: 1 for pid in by_combo[combo]}
    return pages, queries, qrels


def write_demo_pages(folder: str | Path, pages_per_combo: int = 3, seed: int = 7) -> Path:
    """Write the generated pages as a BEIR folder with page images; returns the folder."""
    pages, queries, qrels = demo_pages(pages_per_combo, seed)
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        (tmp / "images").mkdir()
        (tmp / "qrels").mkdir()
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
            for page in pages:
                render_page(page).save(tmp / "images" / f"{page.id}.png", optimize=False)
                f.write(json.dumps({"_id": page.id, "title": "", "text": "", "image": f"images/{page.id}.png"}) + "\n")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            for qid, text in queries.items():
                f.write(json.dumps({"_id": qid, "text": text}) + "\n")
        for split, judged in qrels.items():
            with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
                f.write("query-id\tcorpus-id\tscore\n")
                for qid, docs in judged.items():
                    for pid, grade in docs.items():
                        f.write(f"{qid}\t{pid}\t{grade}\n")
    return folder
