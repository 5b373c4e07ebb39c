"""`python -m diagnostics ...`: see diagnostics/cli.py."""
from .cli import main

raise SystemExit(main())
