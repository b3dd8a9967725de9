"""``python -m pytest_llmbench.cli``, as the ``llmbench`` command."""

import sys

from pytest_llmbench.cli import main

sys.exit(main())
