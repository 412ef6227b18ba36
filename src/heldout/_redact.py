"""Credentials never reach results, logs or reports: one function every error text passes.

An error body may echo the request (some proxies answer 401 and 500 with the headers they
got). Every error text, and any model output that holds one of the run's secrets, goes
through :func:`redact` before it is stored, cached or printed: the exact values of the
secrets (API keys read from the environment) and anything shaped like a credential are
replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"
Replace = Callable[[re.Match[str]], str]


def _keep(group: int) -> Replace:
    """Keep the leading ``group`` (the header name, the URL scheme), redact the rest."""
    return lambda m: f"{m.group(group)}{REDACTED}"


_PATTERNS: list[tuple[re.Pattern[str], Replace]] = [
    # "Authorization: Bearer abc", "authorization=Basic abc", "Proxy-Authorization: ..."
    (
        re.compile(r"(?i)((?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?)\S+"),
        _keep(1),
    ),
    (re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"), _keep(1)),
    # userinfo in URLs: https://user:password@host
    (
        re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@"),
        lambda m: f"{m.group(1)}{REDACTED}@",
    ),
    # api_key=..., "api-key": "...", x-api-key: ...
    (re.compile(r"(?i)((?:x-)?api[_-]?key\"?\s*[:=]\s*\"?)[^\s\",}]+"), _keep(1)),
    # well-known key shapes (OpenAI, Anthropic, Hugging Face, GitHub)
    (
        re.compile(
            r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{16,}|\bhf_[A-Za-z0-9]{20,}|\bgh[pousr]_[A-Za-z0-9]{20,}"
        ),
        lambda m: REDACTED,
    ),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret value and credential-shaped token replaced."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replace in _PATTERNS:
        text = pattern.sub(replace, text)
    return text
