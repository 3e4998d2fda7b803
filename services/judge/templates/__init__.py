"""Prompt templates as data files: `<name>.txt`, with `{{placeholder}}` fields (see `services.judge.prompts`)."""
