"""The paper's protocol: its own texts fetched at a pinned commit (`sources`), parsed (`paper_texts`) and
rendered byte for byte (`render`); the `paper` / `polyglot` profiles and the fidelity table."""
