"""The method benchmark (same as `retrieval-ft bench CONFIG`): base vs each tuning method over several
seeds, written to eval/results/<name>.md, .json and .svg.

    .venv/bin/python eval/benchmark.py eval/configs/scifact.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval_ft.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
