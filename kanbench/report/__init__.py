"""Reports from a run folder: markdown tables (``report.md``)."""
