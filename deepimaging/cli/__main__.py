"""``python -m deepimaging.cli``: the ``deepimaging`` command without the installed script."""

import sys

from . import main

sys.exit(main())
