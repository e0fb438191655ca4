"""`python -m retrieval_ft.cli` is the `retrieval-ft` command."""

import sys

from . import main

sys.exit(main())
