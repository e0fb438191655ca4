"""The embedded demo: a seeded product-search dataset generated here, with no download.

A catalog of products (title, brand, colour, material, size and a description) and shopper queries
written the way people type them: synonyms, abbreviations and attribute phrasing that the catalog
never uses ("sneakers" for running shoes, "bt" for bluetooth, "navy" for dark blue). Judgments are
graded like public e-commerce sets: 3 exact, 2 substitute (right product type, an attribute off),
1 complement (goes with it), 0 irrelevant. Queries split into train / dev / test.

`write_demo(folder)` writes it as a table dataset (products.csv, queries.jsonl, qrels/*.tsv and a
dataset.yaml), so the demo goes through the same readers as users' data.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_dir
from .dataset import Document, IRDataset

# category -> (catalog noun, shopper words for it, sizes, complements)
CATEGORIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "running_shoes": ("running shoes", ("sneakers", "trainers", "jogging shoes", "runners"), ("size 8", "size 9", "size 10", "size 11"), ("running_socks", "water_bottle")),
    "running_socks": ("running socks", ("athletic socks", "sport socks"), ("small", "medium", "large"), ("running_shoes",)),
    "rain_jacket": ("rain jacket", ("raincoat", "waterproof shell", "rain coat"), ("small", "medium", "large", "extra large"), ("backpack", "hiking_boots")),
    "hiking_boots": ("hiking boots", ("trail boots", "trekking boots"), ("size 8", "size 9", "size 10", "size 11"), ("rain_jacket", "running_socks")),
    "backpack": ("backpack", ("rucksack", "daypack", "knapsack"), ("20 litre", "30 litre", "40 litre"), ("water_bottle", "rain_jacket")),
    "water_bottle": ("water bottle", ("drink flask", "hydration bottle"), ("500 ml", "750 ml", "1 litre"), ("backpack",)),
    "headphones": ("over-ear headphones", ("cans", "headset", "over ear phones"), ("standard",), ("phone_case", "charger")),
    "earbuds": ("wireless earbuds", ("in-ear buds", "earphones", "ear buds"), ("standard",), ("phone_case", "charger")),
    "phone_case": ("phone case", ("phone cover", "mobile case"), ("6.1 inch", "6.7 inch"), ("charger", "earbuds")),
    "charger": ("usb-c charger", ("charging brick", "power adapter", "wall plug"), ("20 watt", "45 watt", "65 watt"), ("phone_case", "laptop_sleeve")),
    "laptop_sleeve": ("laptop sleeve", ("notebook case", "laptop cover"), ("13 inch", "14 inch", "15 inch", "16 inch"), ("charger", "backpack")),
    "coffee_maker": ("drip coffee maker", ("coffee machine", "coffee brewer"), ("4 cup", "8 cup", "12 cup"), ("coffee_grinder", "mug")),
    "coffee_grinder": ("burr coffee grinder", ("bean grinder", "coffee mill"), ("standard",), ("coffee_maker", "mug")),
    "mug": ("ceramic mug", ("coffee cup", "tea cup"), ("300 ml", "400 ml"), ("coffee_maker",)),
    "yoga_mat": ("yoga mat", ("exercise mat", "workout mat", "pilates mat"), ("4 mm", "6 mm", "8 mm"), ("yoga_block",)),
    "yoga_block": ("yoga block", ("foam brick", "yoga brick"), ("standard",), ("yoga_mat",)),
}
# catalog colour -> shopper words
COLORS = {
    "black": ("black", "jet black"), "white": ("white", "off white"), "dark blue": ("navy", "navy blue"),
    "red": ("red", "scarlet"), "green": ("green", "olive"), "grey": ("gray", "charcoal"), "pink": ("pink", "rose"),
}
# catalog feature -> shopper words
FEATURES = {
    "bluetooth": ("bt", "wireless"), "waterproof": ("water resistant", "wp"), "noise cancelling": ("anc", "noise canceling"),
    "lightweight": ("ultralight", "light weight"), "recycled materials": ("eco", "sustainable"), "insulated": ("thermal", "keeps warm"),
    "fast charging": ("quick charge", "qc"), "non-slip": ("grippy", "anti slip"),
}
MATERIALS = ("nylon", "polyester", "leather", "cotton", "stainless steel", "plastic", "rubber", "aluminium")
BRANDS = ("Acme", "Northpeak", "Vela", "Corvid", "Halden", "Ostra", "Pinecrest", "Lumo", "Sakura", "Brio")
SIZE_WORDS = {"extra large": "xl", "large": "l", "medium": "m", "small": "s", "20 litre": "20l", "30 litre": "30l",
              "40 litre": "40l", "1 litre": "1l", "13 inch": '13"', "14 inch": "14in", "15 inch": "15in", "16 inch": '16"'}
SPLITS = (("train", 0.7), ("dev", 0.1), ("test", 0.2))


@dataclass(frozen=True)
class Product:
    id: str
    category: str
    brand: str
    color: str
    material: str
    size: str
    feature: str
    title: str
    description: str


def _products(rng: random.Random, n: int) -> list[Product]:
    out = []
    cats = list(CATEGORIES)
    for i in range(n):
        cat = cats[i % len(cats)]
        noun, _, sizes, _ = CATEGORIES[cat]
        brand, color = rng.choice(BRANDS), rng.choice(list(COLORS))
        material, size, feature = rng.choice(MATERIALS), rng.choice(sizes), rng.choice(list(FEATURES))
        model = f"{rng.choice(['Aero', 'Trail', 'Urban', 'Pro', 'Flex', 'Core', 'Max', 'Lite'])} {rng.randint(1, 9)}"
        title = f"{brand} {model} {noun}, {color}"
        description = (f"The {brand} {model} is a {feature} {noun} made of {material}. "
                       f"Colour: {color}. Size: {size}. {rng.choice(['Ships in 2 days.', 'One-year warranty.', 'Gift box included.', ''])}")
        out.append(Product(f"p{i:05d}", cat, brand, color, material, size, feature, title, description.strip()))
    return out


def _query(rng: random.Random, target: Product) -> tuple[str, dict[str, str]]:
    """Shopper wording for a target product; returns the text and the attributes it asks for."""
    _, words, _, _ = CATEGORIES[target.category]
    asked = {"category": target.category, "color": target.color}
    parts = [rng.choice(COLORS[target.color]), rng.choice(words)]
    roll = rng.random()
    if roll >= 0.7 and CATEGORIES[target.category][2] == ("standard",):
        roll = rng.random() * 0.7  # one size only: ask for something else
    if roll < 0.4:
        asked["feature"] = target.feature
        parts.insert(0, rng.choice(FEATURES[target.feature]))
    elif roll < 0.7:
        asked["brand"] = target.brand
        parts.insert(0, target.brand.lower())
    else:
        asked["size"] = target.size
        parts.append(SIZE_WORDS.get(target.size, target.size))
    if rng.random() < 0.3:
        parts.insert(0, rng.choice(["cheap", "best", "need", "looking for", "gift"]))
    return " ".join(parts), asked


def _grade(p: Product, asked: dict[str, str]) -> int:
    if p.category == asked["category"]:
        matches = all(getattr(p, k) == v for k, v in asked.items() if k != "category")
        return 3 if matches else 2
    if p.category in CATEGORIES[asked["category"]][3]:
        return 1
    return 0


def generate_demo(n_products: int = 2000, n_queries: int = 600, seed: int = 13) -> tuple[list[Product], IRDataset]:
    """The demo catalog and its dataset (qrels per split: train / dev / test)."""
    rng = random.Random(seed)
    products = _products(rng, n_products)
    by_cat: dict[str, list[Product]] = {}
    for p in products:
        by_cat.setdefault(p.category, []).append(p)
    queries: dict[str, str] = {}
    judgments: dict[str, dict[str, int]] = {}
    seen = set()
    while len(queries) < n_queries:
        text, asked = _query(rng, rng.choice(products))
        if text in seen:
            continue
        seen.add(text)
        qid = f"q{len(queries):04d}"
        pool = by_cat[asked["category"]] + [p for c in CATEGORIES[asked["category"]][3] for p in by_cat[c]]
        graded = {p.id: _grade(p, asked) for p in pool}
        exact = [d for d, g in graded.items() if g == 3]
        subs = [d for d, g in graded.items() if g == 2]
        comps = [d for d, g in graded.items() if g == 1]
        judged = {d: 3 for d in exact}
        judged.update({d: 2 for d in rng.sample(subs, min(10, len(subs)))})
        judged.update({d: 1 for d in rng.sample(comps, min(5, len(comps)))})
        for p in rng.sample(products, 5):
            judged.setdefault(p.id, _grade(p, asked))
        queries[qid] = text
        judgments[qid] = judged
    qids = list(queries)
    rng.shuffle(qids)
    qrels, start = {}, 0
    for i, (split, share) in enumerate(SPLITS):
        end = len(qids) if i == len(SPLITS) - 1 else start + round(share * len(qids))
        qrels[split] = {q: judgments[q] for q in sorted(qids[start:end])}
        start = end
    corpus = {p.id: Document(p.id, p.description, p.title) for p in products}
    return products, IRDataset(corpus=corpus, queries=queries, qrels=qrels, source="retrieval-ft demo catalog")


DATASET_YAML = """\
# The retrieval-ft demo catalog (generated by `retrieval-ft demo-data`).
corpus:
  path: products.csv
  id: sku
  title: title
  text: description
queries: {path: queries.jsonl, id: _id, text: text}
qrels:
  train: qrels/train.tsv
  dev: qrels/dev.tsv
  test: qrels/test.tsv
"""


def write_demo(folder: str | Path, n_products: int = 2000, n_queries: int = 600, seed: int = 13) -> Path:
    """Write the demo dataset as a table dataset folder (replacing `folder` as a whole)."""
    products, dataset = generate_demo(n_products, n_queries, seed)
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        with open(tmp / "products.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sku", "title", "brand", "category", "color", "material", "size", "feature", "description"])
            for p in products:
                writer.writerow([p.id, p.title, p.brand, p.category, p.color, p.material, p.size, p.feature, p.description])
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            for qid, text in dataset.queries.items():
                fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
        (tmp / "qrels").mkdir()
        for split, qrels in dataset.qrels.items():
            lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
            (tmp / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (tmp / "dataset.yaml").write_text(DATASET_YAML, encoding="utf-8")
    return folder
