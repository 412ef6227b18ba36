"""The LLM judge as a role: pairwise with a position swap, bias checks, agreement with human
labels, and a prompt hardened against instructions hidden in the responses.

The judge's verdict is reported beside the metrics, never gated on: its preferences are
evidence to read, and the report says when they are not to be trusted (position-inconsistent,
or below the plan's ``min_agreement`` with human labels).
"""

from heldout.judge._pairwise import (
    OUTCOMES,
    HumanAgreement,
    JudgeSummary,
    cohen_kappa,
    combine,
    read_human_labels,
    summarize,
)
from heldout.judge._prompt import nonce_for, pairwise_prompt, parse_verdict

__all__ = [
    "OUTCOMES",
    "HumanAgreement",
    "JudgeSummary",
    "cohen_kappa",
    "combine",
    "nonce_for",
    "pairwise_prompt",
    "parse_verdict",
    "read_human_labels",
    "summarize",
]
