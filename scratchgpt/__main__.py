"""``python -m scratchgpt ...``: the same as the ``scratchgpt`` console command."""
import sys

from .cli import main

sys.exit(main())
