"""Protocol profiles as data: `paper.yaml` and `polyglot.yaml` (see flows/config/profile.py)."""
