"""`python -m diagnostics ...`: see diagnostics/work/cli.py."""

from .work.cli import main

raise SystemExit(main())
