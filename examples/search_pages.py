"""Search page images with text queries: the same Retriever as text, with a multimodal encoder.

    python examples/search_pages.py [DATA] [MODEL]
        defaults: the generated demo pages, and an untrained tiny CLIP (so the hits are random;
        pass a tuned one, e.g. out/visual-demo/model after `make visual-demo`, or a hub CLIP such
        as openai/clip-vit-base-patch32)
"""

from __future__ import annotations

import sys

from retrieval_ft import Encoder, Retriever, load_dataset
from retrieval_ft.data.demo_pages import write_demo_pages
from retrieval_ft.tiny_clip import build_tiny_clip

data = sys.argv[1] if len(sys.argv) > 1 else str(write_demo_pages("out/examples/demo-pages"))
model = sys.argv[2] if len(sys.argv) > 2 else str(build_tiny_clip("out/examples/tiny-clip"))

# offline: encode the pages (one batch decoded at a time) and save the index; pass the dataset,
# not just its corpus, so page paths resolve against its folder
dataset = load_dataset(data)
Retriever.build(Encoder(model), dataset).save("out/examples/page-index")

# online: load once, then search with text
retriever = Retriever.load("out/examples/page-index")
for query in ["overdue invoice from Globex", "Acme slide with a pie chart"]:
    print(query)
    for hit in retriever.search(query, k=3)[0]:
        print(f"  {hit.score:.3f}  {dataset.corpus[hit.doc_id].image}")
