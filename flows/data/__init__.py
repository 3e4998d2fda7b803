"""Study data: conversation sources, LID labelling, the paper's tuning mixes, and building them into the store.

from flows.data import build_mixes, build_eval_sets, service_labeller, judge_translator
with LidClient(study.services.lid) as lid:
    mixes = build_mixes(study.data, open_store(study.artifact_store), service_labeller(lid))
mixes[0].uri      # file:///…/datasets/mono/<hash>/data.jsonl — what the trainer reads
"""

from flows.data.build import (
    Built,
    EvalSetBuilder,
    MixBuilder,
    NullReporter,
    Reporter,
    build_eval_sets,
    build_mixes,
    build_study_data,
    read_eval_set,
    read_mix,
)
from flows.data.labelling import LabelledConversation, Labeller, core_labeller, label_conversations, service_labeller
from flows.data.manifest import DatasetManifest
from flows.data.mixes import InsufficientData, MixPlanner, MixRow, mix_rows
from flows.data.sources import Conversation, ConversationSet, load_conversations
from flows.data.translation import Translator, judge_translator, translate_conversations

__all__ = [
    "Built",
    "Conversation",
    "ConversationSet",
    "DatasetManifest",
    "EvalSetBuilder",
    "InsufficientData",
    "Labeller",
    "LabelledConversation",
    "MixBuilder",
    "MixPlanner",
    "MixRow",
    "NullReporter",
    "Reporter",
    "Translator",
    "build_eval_sets",
    "build_mixes",
    "build_study_data",
    "core_labeller",
    "judge_translator",
    "label_conversations",
    "load_conversations",
    "mix_rows",
    "read_eval_set",
    "read_mix",
    "service_labeller",
    "translate_conversations",
]
