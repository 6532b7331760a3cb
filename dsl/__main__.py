"""`python -m dsl`: the same command as `svmdsl`."""

import sys

from dsl.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
