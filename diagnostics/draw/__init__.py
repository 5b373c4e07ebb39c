"""Drawing: the Plotly figures and tables the pages and the offline report share, and the report.

One chart style (chart_style: colours by run name, axis and legend rules), the figures of each page, the
alarm timeline, cross-modal figures, Compare's tables and the self-contained HTML report. Reads records and
judgements; computes no diagnostics.
"""
