"""Per-language prompt data of the evaluation tasks (YAML keyed by ISO 639-1 code); see `flows.evals.templates_data`."""
