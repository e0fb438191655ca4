"""Use a Retriever inside a search service: build the index once, save it, load it at start-up,
answer queries. The index remembers its encoder and query prompt, so nothing is repeated.

    python examples/search_pipeline.py [DATA] [MODEL]    (defaults: the demo catalog, all-MiniLM-L6-v2)
"""

from __future__ import annotations

import sys

from retrieval_ft import Encoder, Retriever, load_dataset
from retrieval_ft.data.demo import write_demo

data = sys.argv[1] if len(sys.argv) > 1 else str(write_demo("out/examples/demo-data"))
model = sys.argv[2] if len(sys.argv) > 2 else "all-MiniLM-L6-v2"

# offline: build and save the index (corpus embeddings are cached on disk)
dataset = load_dataset(data)
Retriever.build(Encoder(model), dataset.corpus).save("out/examples/index")

# online: load once, then search
retriever = Retriever.load("out/examples/index")
for query in ["navy bt cans", "waterproof rucksack 30l"]:
    hits = retriever.search(query, k=3)[0]
    print(query)
    for hit in hits:
        print(f"  {hit.score:.3f}  {dataset.corpus[hit.doc_id].title}")
