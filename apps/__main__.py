"""`python -m apps` runs the ndt command line."""

import sys

from apps.cli import main

sys.exit(main())
