"""Dataset manifests: what a built dataset holds and exactly what it was built from.

A manifest is written after its data file, so its presence marks the artifact complete ("already done?"
is "does the manifest exist?"). It carries no timestamps or local paths: equal inputs give a byte-equal
manifest on any machine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "manifest.json"


class DatasetManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["labelled", "mix", "evalset"] = Field(description="Labelled source, tuning mix, or eval set.")
    name: str = Field(description="Mix name (`multi-3`), `labelled`, or `<task>/<lang>` for eval sets.")
    key: str = Field(description="Store prefix of the artifact; the data file and this manifest live under it.")
    data: str = Field(description="Data file name under `key` (jsonl).")
    data_sha256: str = Field(description="SHA-256 of the data file.")
    rows: int = Field(description="Rows (mixes, labelled sources) or items (eval sets).")
    counts: dict[str, int] = Field(description="Rows per language (ISO 639-1), most frequent first.")
    inputs_sha256: str = Field(description="Hash of everything that determines the data: the key's hash.")
    version: int = Field(description="Format version of the builder that wrote it.")
    # tuning data
    seed: int | None = Field(None, description="Sampling seed.")
    recipe: dict[str, Any] = Field(default_factory=dict, description="The recipe values this mix depends on.")
    source: str = Field("", description="Conversation source: hub id:split, or a local file's name.")
    source_sha256: str = Field("", description="Content hash of the conversations read from the source.")
    incomplete: int = Field(0, description="Source rows left out as not a complete conversation.")
    lid_model: str = Field("", description="LID model identity (`lid:<file>@<sha256 prefix>`).")
    lid_threshold: float | None = Field(None, description="Minimum LID confidence of every native row.")
    counts_by_origin: dict[str, int] = Field(default_factory=dict, description="Rows by origin: native, mt.")
    translator: str = Field("", description="Translation model, when any row or item was machine-translated.")
    # eval sets
    task: str = Field("", description="Eval task name.")
    language: str = Field("", description="Eval set language.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Eval set inputs: data file hashes, templates.")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
