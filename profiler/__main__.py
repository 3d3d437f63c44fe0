"""`python -m profiler ...`: see profiler/cli.py."""

import sys

from nas.config import setup_command_line
from profiler.cli import main

setup_command_line()
sys.exit(main())
