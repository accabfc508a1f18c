"""``python -m crdtsync``: the same command line as the ``crdtsync`` script."""

import sys

from crdtsync.cli import main

sys.exit(main())
