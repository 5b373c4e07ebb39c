"""Work off the request path: the background worker and the command line.

`watch` (worker) measures every committed snapshot once into its record, keeps run states and default
projections, and shares a root with other watchers through leases; `cli` is `python -m diagnostics`
(summarize, compute, watch, report).
"""
