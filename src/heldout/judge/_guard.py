"""Neutralise what a judged answer says to the judge, before the judge sees it.

Two kinds of text are treated, and each treated answer is flagged with what was found:

- **look-alike tags**: anything shaped like a delimiter the judge could take for the prompt's
  own structure — ``<response ...>``, ``</task>``, ``<judge>``, ``<|im_start|>``, ``[INST]``,
  ``<<SYS>>`` — in ASCII angle brackets, their full-width or guillemet look-alikes, or HTML
  entities. The real blocks carry a per-sample nonce the answer could not know; look-alikes
  are rewritten as ``⟦tag:name⟧``, visibly data, never a delimiter.
- **judge-directed text**: what addresses the judge or dictates its verdict ("ignore the
  previous instructions", "note to the evaluator: …", "rate this response 5",
  ``{"winner": "A"}``), from where it starts to the end of its sentence. It is replaced by
  :data:`REMOVED`, which the judge is told neither to reward nor to penalise: an injection
  that works in either position can neither buy a win nor, by tripping the guard, cost one.

Detection runs on an NFKC-normalised copy (full-width letters, ligatures), matching
case-insensitively; a legitimate answer that quotes such text is flagged too, and the flags
are listed per sample in the report, so a false positive is visible rather than silent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["REMOVED", "Neutralised", "neutralise"]

REMOVED = "[text addressed to the judge, removed by heldout]"

_OPEN = r"(?:<|＜|‹|〈|⟨|«|&lt;|&#0*60;|&#x0*3c;)"
_CLOSE = r"(?:>|＞|›|〉|⟩|»|&gt;|&#0*62;|&#x0*3e;)"
_WORDS = (
    r"response|task|answer|reference|judge|grader|evaluator|system|instructions?|assistant"
    r"|user|prompt|verdict|score|rubric|criteri(?:on|a)"
)
_LOOKALIKE_TAG = re.compile(
    rf"{_OPEN}\s*/?\s*[\w-]*(?:{_WORDS})[\w-]*(?:\s[^<>＜＞‹›\n]{{0,60}})?\s*/?\s*{_CLOSE}",
    re.IGNORECASE,
)
_CHAT_TOKENS = re.compile(
    r"<\|[a-z_]{2,20}\|>|\[/?INST\]|<</?SYS>>|</?s>|<\|(?:begin|end|start|eot)[a-z_]*\|?>",
    re.IGNORECASE,
)

_DIRECTED = [
    r"^[ \t]*(?:system|developer|assistant)[ \t]*(?:prompt|message)?[ \t]*:",
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:instructions?|rules|prompts?"
    r"|guidelines|directions|criteria|rubric)\b",
    r"\b(?:note|message|instructions?|attention)\s+(?:to|for)\s+(?:the\s+)?(?:ai\s+)?"
    r"(?:judge|grader|evaluator|reviewer|assessor|rater)s?\b",
    r"\b(?:dear|hey|hello)\s+(?:ai\s+)?(?:judge|grader|evaluator|reviewer|rater)\b",
    r"\byou\s+are\s+(?:now\s+)?(?:the|a|an)\s+(?:judge|grader|evaluator|reviewer|rater)\b",
    r"\b(?:judges?|graders?|evaluators?|reviewers?|raters?)\s*(?:must|should|will|shall|are"
    r" to|need to)\s+(?:prefer|choose|pick|select|rate|score|give|award|favou?r)\b",
    r"\b(?:rate|score|grade|mark)\s+(?:this|the|my|me|it)\s*(?:response|answer|output"
    r"|reply)?\s*(?:a|an|with|as)?\s*(?:\d+(?:\s*/\s*\d+)?|full marks|the highest|top"
    r" marks|perfect|maximum)",
    r"\b(?:give|award)\s+(?:this|my|the)\s+(?:response|answer|output|reply)\s+(?:a|an)?\s*"
    r"(?:\d+(?:\s*/\s*\d+)?|full marks|the highest|top marks|perfect|maximum)",
    r"\b(?:choose|pick|select|prefer|favou?r)\s+(?:this|my|me|the\s+(?:first|second))\s*"
    r"(?:response|answer|one|output)?\b[^.!?\n]{0,20}\b(?:as|over|instead|winner|better|best)",
    r"\b(?:this|my)\s+(?:response|answer|output|reply)\s+(?:is|should\s+be|must\s+be)\s+"
    r"(?:rated\s+|judged\s+|scored\s+)?(?:the\s+)?(?:winner|best|better|preferred|perfect"
    r"|highest)\b",
    r"\bthe\s+(?:winner|better\s+response|best\s+response)\s+is\s+(?:response\s+)?"
    r"(?:a|b|this|mine)\b",
]
_DIRECTED_RE = re.compile("|".join(f"(?:{p})" for p in _DIRECTED), re.IGNORECASE | re.MULTILINE)
_VERDICT_JSON = re.compile(r"\{[^{}]{0,200}?\"(?:winner|scores?|verdict|rating)\"\s*:", re.I)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


@dataclass(frozen=True, slots=True)
class Neutralised:
    """The answer as the judge sees it, and what was found in it."""

    text: str
    flags: tuple[str, ...] = ()  # "tag", "chat-token", "directed", "verdict-json"

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    """From the match to the end of its sentence (at most 300 characters on): what the
    judge is told to do; the sentence's own content before the match is kept."""
    lo = start
    nxt = _SENTENCE_END.search(text, end, min(len(text), end + 300))
    hi = nxt.end() if nxt else (len(text) if end + 300 >= len(text) else end)
    return lo, hi


def _braced(text: str, start: int) -> tuple[int, int]:
    """From the ``{`` at ``start`` to its matching ``}`` (at most 1,000 characters on)."""
    depth = 0
    for i in range(start, min(len(text), start + 1000)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return start, i + 1
    return start, min(len(text), start + 1000)


def _spans(pattern: re.Pattern[str], text: str, sentence: bool) -> list[tuple[int, int]]:
    out = []
    for m in pattern.finditer(text):
        out.append(_sentence(text, m.start(), m.end()) if sentence else _braced(text, m.start()))
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _tag_name(raw: str) -> str:
    word = re.search(rf"(?:{_WORDS})", raw, re.IGNORECASE)
    slash = "/" if re.search(r"^\W*/", raw) or "&lt;/" in raw.lower() else ""
    return slash + (word.group(0).lower() if word else "tag")


def neutralise(text: str, *, directed: bool = True) -> Neutralised:
    """``text`` with judge-directed sentences replaced by :data:`REMOVED` and look-alike
    tags rewritten as ``⟦tag:name⟧``, and the kinds of what was found. ``directed=False``
    rewrites only the tags (for the task itself, whose text the judge must see as it is)."""
    # NFKC maps full-width letters and compatibility forms; it never changes the length
    # of the plain ASCII text that the patterns anchor on, but may change other lengths, so
    # work on the normalised text throughout (the judge sees the normalised answer)
    norm = unicodedata.normalize("NFKC", text)
    flags: list[str] = []
    said = _spans(_DIRECTED_RE, norm, True) if directed else []
    verdicts = _spans(_VERDICT_JSON, norm, False) if directed else []
    if said:
        flags.append("directed")
    if verdicts:
        flags.append("verdict-json")
    removed = _merge(said + verdicts)
    pieces = []
    pos = 0
    for lo, hi in removed:
        pieces.append(norm[pos:lo])
        pieces.append(" " + REMOVED + " ")
        pos = hi
    pieces.append(norm[pos:])
    out = "".join(pieces) if removed else norm
    tagged = _LOOKALIKE_TAG.sub(lambda m: f"⟦tag:{_tag_name(m.group(0))}⟧", out)
    if tagged != out:
        flags.append("tag")
    chat = _CHAT_TOKENS.sub(lambda m: "⟦token⟧", tagged)
    if chat != tagged:
        flags.append("chat-token")
    return Neutralised(chat if flags else text, tuple(flags))
