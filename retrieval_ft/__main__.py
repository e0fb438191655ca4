"""`python -m retrieval_ft` is the `retrieval-ft` command."""

import sys

from .cli import main

sys.exit(main())
