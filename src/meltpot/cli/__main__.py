"""``python -m meltpot.cli``: the same as the ``meltpot`` command."""

import sys

from . import main

sys.exit(main())
