"""The study report (HTML and Markdown): `render_report(cfg, rows, tests, figures, manifests, cards, out_dir)`."""

from flows.report.render import REPORT_PACKAGES, library_versions, render_report

__all__ = ["REPORT_PACKAGES", "library_versions", "render_report"]
