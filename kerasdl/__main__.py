"""`python -m kerasdl ...` is the `kerasdl` command."""

from kerasdl.cli import main

raise SystemExit(main())
