"""``python -m hgref <command>``: the same as the ``hgref`` console script."""
import sys

from .cli import main

sys.exit(main())
