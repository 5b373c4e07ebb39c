"""`python -m contrastscope ...`: the same as the `contrastscope` command (contrastscope/cli.py)."""

from .cli import main

raise SystemExit(main())
