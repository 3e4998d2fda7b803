"""Built-in evaluation task declarations (one YAML file per task); see flows/evals/spec.py."""
