"""`python -m profiler ...`: see profiler/cli.py."""

import sys

from nas.config import sigterm_as_ctrl_c
from profiler.cli import main

sigterm_as_ctrl_c()
sys.exit(main())
