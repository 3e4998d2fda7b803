"""Building blocks every config shares: the `Section` base, typed fields, and stable hashing.

The study config itself (what a study file says) is study code and lives in `flows.config`; the
training recipe, which the trainer service owns, lives in `services.trainer.config`.
"""

from services.common.config.hashing import canonical_json, config_hash
from services.common.config.types import Section

__all__ = ["Section", "canonical_json", "config_hash"]
