"""`evaluate_models`: models a study evaluates as they are, without training (`polyglot eval`).

Each is one of the study's base models, bare or with a LoRA adapter made elsewhere. The adapter is kept as
an artifact URI, the form the generator loads: a local directory becomes `file:///abs/dir`.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from services.common.config.types import Section, Slug, _existing, resolve_path


class EvaluatedModel(Section):
    name: Slug = Field(description="The model's name: the report's mix column and its artifact keys carry it.")
    base_model: Slug = Field(description="The `base_models` entry the generator serves it on.")
    adapter: str | None = Field(
        None,
        description="A PEFT LoRA adapter: a local directory (relative to the study file), file:// or s3:// URI; "
        "null = the base model as it is.",
    )

    @field_validator("adapter")
    @classmethod
    def _uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value.startswith("s3://"):
            if value is not None and not value[len("s3://") :].strip("/"):
                raise ValueError("an s3:// adapter needs a bucket and a prefix: s3://bucket/prefix")
            return value
        if "://" in value and not value.startswith("file://"):
            raise ValueError(f"adapter must be a local directory, file:// or s3:// URI, got {value!r}")
        path = _existing(resolve_path(value.removeprefix("file://"), info), info)
        return path.as_uri()
