"""`python -m fm5 ...` (also `torchrun -m fm5 eval ...`): the `fm5` command."""

import sys

from fm5.cli import main

sys.exit(main())
