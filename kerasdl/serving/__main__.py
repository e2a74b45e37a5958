"""`python -m kerasdl.serving ...`: the same as `kerasdl serve ...`."""

import sys

from kerasdl.serving import main

if __name__ == "__main__":
    sys.exit(main())
