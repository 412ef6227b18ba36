"""The LLM judge as a role: rubric scores per criterion (base, candidate, reference), pairwise
preference with a position swap, a panel of judges, bias measured (position, length,
self-preference), agreement with human labels, and prompts hardened against what the judged
answers say to the judge.

A judge's numbers are evidence to read; a judge guardrail gates on one only when the judge
agrees with the human labels on it (the plan's ``min_agreement``), and the report says why
otherwise.
"""

from heldout.judge._agreement import (
    HUMAN_MODELS,
    CriterionAgreement,
    criterion_agreement,
    labelled,
    read_human_scores,
    rounded,
    weighted_kappa,
)
from heldout.judge._guard import REMOVED, Neutralised, neutralise
from heldout.judge._length import LengthControlled, length_controlled
from heldout.judge._pairwise import (
    OUTCOMES,
    HumanAgreement,
    JudgeSummary,
    cohen_kappa,
    combine,
    read_human_labels,
    summarize,
)
from heldout.judge._panel import (
    SelfPreference,
    aggregate_scores,
    inter_judge,
    pairwise_self_preference,
    self_preference,
)
from heldout.judge._prompt import defuse, nonce_for, pairwise_prompt, parse_verdict
from heldout.judge._rubric import (
    Criterion,
    RubricReply,
    parse_scores,
    rubric_prompt,
    rubric_schema,
)

__all__ = [
    "HUMAN_MODELS",
    "OUTCOMES",
    "REMOVED",
    "Criterion",
    "CriterionAgreement",
    "HumanAgreement",
    "JudgeSummary",
    "LengthControlled",
    "Neutralised",
    "RubricReply",
    "SelfPreference",
    "aggregate_scores",
    "cohen_kappa",
    "combine",
    "criterion_agreement",
    "defuse",
    "inter_judge",
    "labelled",
    "length_controlled",
    "neutralise",
    "nonce_for",
    "pairwise_prompt",
    "pairwise_self_preference",
    "parse_scores",
    "parse_verdict",
    "read_human_labels",
    "read_human_scores",
    "rounded",
    "rubric_prompt",
    "rubric_schema",
    "self_preference",
    "summarize",
    "weighted_kappa",
]
