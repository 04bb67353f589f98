import sys

from .program import entry

sys.exit(entry())
