"""Request classification: which request type a chat request is, from cheap lexical evidence.

This module is the engine; the rules it applies are data in `classifier_rules.py` (word and
phrase families, code patterns, and the `RULES` table of id, type, points and evidence).

The latest user message is read (after removing a leading feedback phrase such as "thanks,
that worked! now ..."), split into prose and code, and read once into `Features`: code
structure (fences, code lines, stack traces, error names), the verb that opens each clause and
the noun it acts on ("write a Slack message" vs "write a Python function"), question forms, and
the phrase families present. Every rule whose test holds adds its points to its type. The type
with the highest total wins if it reaches `MIN_SCORE`; ties go to the first type in
`TIE_BREAK_ORDER`. A message with no evidence of its own (a follow-up such as "ok continue" or
"thanks, that worked") inherits the type of the closest earlier user message that has some.

`docs/CLASSIFIER_AND_SIGNALS.md` documents every rule. Pure: no I/O, deterministic, and every
scan is bounded (`MAX_HEAD_CHARS` + `MAX_TAIL_CHARS` of a message, `MAX_EARLIER_USER_MESSAGES`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from router_core.classifier_rules import (
    ACTION_VERBS,
    AMBIGUOUS_CODE_NOUNS,
    CODE_CONTEXT,
    CODE_LINE_RE,
    CODE_NOUNS,
    DEICTIC,
    FILLERS,
    LANGUAGES,
    OBJECT_STOPPERS,
    PHRASE_FAMILIES,
    PROSE_NOUNS,
    RULES,
    Features,
    Rule,
    has_error_name,
    has_math,
    has_traceback,
    word_problem_head,
)
from router_core.config import REQUEST_TYPES
from router_core.signals import leading_feedback_end

__all__ = [
    "GENERAL",
    "MAX_EARLIER_USER_MESSAGES",
    "MAX_HEAD_CHARS",
    "MAX_TAIL_CHARS",
    "MIN_SCORE",
    "RULES",
    "TIE_BREAK_ORDER",
    "Classification",
    "Rule",
    "classify",
    "message_text",
]

GENERAL: Final = "general"
MIN_SCORE: Final = 2
"""Evidence points a type needs to be chosen; one weak hint (a language name alone) is not enough."""
TIE_BREAK_ORDER: Final[tuple[str, ...]] = (
    "code_understanding",
    "code_generation",
    "technical_design",
    "analytical_reasoning",
    "writing",
    "factual_lookup",
)
"""Equal scores resolve to the earlier type: toward the type that needs the stronger model."""
MAX_HEAD_CHARS: Final = 1200
MAX_TAIL_CHARS: Final = 600
"""A long message is read as its first MAX_HEAD_CHARS and last MAX_TAIL_CHARS characters
(the request sits at the start or the end; the middle is pasted material)."""
MAX_EARLIER_USER_MESSAGES: Final = 8
"""How many earlier user messages may be read to inherit a type."""
_MAX_CLAUSES_HEAD: Final = 8
_MAX_CLAUSES_TAIL: Final = 4
_MAX_CLAUSE_CHARS: Final = 160
_HEAD_TOKENS: Final = 10
"""A clause head is at most this many tokens, starting after the fillers."""
_PHRASE_HEAD_CHARS: Final = 500
_PHRASE_TAIL_CHARS: Final = 300
"""Phrase families are searched in the first and last characters of the prose, where requests are phrased."""
_PHRASE_SEARCH: Final = tuple((family.name, family.anchors, family.pattern) for family in PHRASE_FAMILIES)
"""PHRASE_FAMILIES as plain tuples, for the search loop (unpacking a tuple is cheaper than attribute reads)."""


@dataclass(frozen=True, slots=True)
class Classification:
    """The request type of a chat request and why.

    `rule` is the id of the strongest evidence rule for the chosen type (prefixed
    "inherited:" when the type came from an earlier user message); `evidence` is a short
    explanation built from fixed phrases, never from user text, so both are safe to log.
    """

    request_type: str
    rule: str
    evidence: str
    inherited: bool


def message_text(message: Mapping[str, Any]) -> str:
    """Text of an OpenAI chat message: a string content as is, text parts joined by newlines.

    Non-text parts (images, audio) and malformed content contribute nothing; never raises.
    """
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text for part in content if (text := _part_text(part)) is not None)
    return ""


def _part_text(part: object) -> str | None:
    """The text of one content part: a text part's string, a bare string, else None."""
    if isinstance(part, Mapping) and part.get("type") in ("text", "input_text"):
        text = part.get("text")
        return text if isinstance(text, str) else None
    return part if isinstance(part, str) else None


# ---------------------------------------------------------------------------------------------
# Reading one message into Features.

_APOSTROPHES: Final = str.maketrans({"’": "'", "‘": "'"})
_INLINE_CODE_RE: Final = re.compile(r"`[^`\n]+`")
_TOKEN_SEPARATORS: Final = str.maketrans(
    dict.fromkeys('"$%&()*,/<=>@[\\]^`{|}~“”«»', " ") | dict.fromkeys(".!?;:…\n", "\n")
)
"""Everything but letters, digits, ' + # _ - separates tokens ("c++", "c#", "what's", "e-mail" stay whole);
sentence punctuation becomes a newline, so one pass yields both the tokens and the clauses."""
_NUMBER_RE: Final = re.compile(r"\d+(?:[.,]\d+)?")


def _bounded(text: str) -> str:
    """The first MAX_HEAD_CHARS and last MAX_TAIL_CHARS of `text`, fences kept balanced."""
    if len(text) <= MAX_HEAD_CHARS + MAX_TAIL_CHARS:
        return text
    head, tail_start = text[:MAX_HEAD_CHARS], len(text) - MAX_TAIL_CHARS
    inside_fence_at_tail = text.count("```", 0, tail_start) % 2 == 1
    inside_fence_in_head = head.count("```") % 2 == 1
    reopen = "```\n" if inside_fence_at_tail and not inside_fence_in_head else ""
    close = "\n```" if inside_fence_in_head and not inside_fence_at_tail else ""
    return head + close + "\n" + reopen + text[tail_start:]


def _split_fences(text: str) -> tuple[str, list[str]]:
    """`text` without its fenced code blocks (an unclosed fence runs to the end), and their tags."""
    parts: list[str] = []
    tags: list[str] = []
    pos = 0
    while (start := text.find("```", pos)) >= 0:
        parts.append(text[pos:start])
        line_end = text.find("\n", start)
        close = text.find("```", start + 3)
        if line_end >= 0 and (close < 0 or close > line_end):
            tag = text[start + 3 : line_end].strip().lower()
            tags.append(tag.split(maxsplit=1)[0] if tag else "")
        else:
            tags.append("")
        if close < 0:
            pos = len(text)
            break
        pos = close + 3
    parts.append(text[pos:])
    return "\n".join(parts), tags


def _without_inline_code(text: str) -> tuple[str, bool]:
    """`text` with its inline `code` spans blanked, and whether it had any."""
    if "`" in text and _INLINE_CODE_RE.search(text) is not None:
        return _INLINE_CODE_RE.sub(" ", text), True
    return text, False


def _without_code_lines(text: str) -> tuple[str, int]:
    """`text` with its code-like lines removed, and how many there were.

    One line cannot make code present (two code lines are needed), so a one-line message is not scanned.
    """
    if "\n" in text.strip():
        return CODE_LINE_RE.subn("\n", text)
    return text, 0


def _word_set(word_list: list[str], fence_tags: list[str]) -> frozenset[str]:
    """The tokens, the language tags of fences, and "python" for "python's"."""
    words = frozenset(word_list).union(tag for tag in fence_tags if tag in LANGUAGES)
    return words.union([w[:-2] for w in words if w.endswith("'s")])


def _object_kind(tokens: Sequence[str], code_context: bool) -> str:
    """'code', 'prose' or '' for the noun phrase a clause's verb acts on (its last known noun)."""
    kind = ""
    for tok in tokens:
        if tok in ("into", "as"):
            continue  # "turn these notes into a memo": the target noun decides
        if tok in OBJECT_STOPPERS or (kind and len(tok) > 5 and tok.endswith("ing")):
            break
        if tok in AMBIGUOUS_CODE_NOUNS:
            kind = "code" if code_context else "prose"
        elif tok in CODE_NOUNS or tok in LANGUAGES:
            kind = "code"
        elif tok in PROSE_NOUNS:
            kind = "prose"
    return kind


def _clause_heads(tokenized: str, code_context: bool) -> tuple[list[tuple[str, ...]], int, int]:
    """The head of each clause (read clauses only), and how many heads act on code and on prose."""
    clauses = tokenized.split("\n")
    if len(clauses) > _MAX_CLAUSES_HEAD + _MAX_CLAUSES_TAIL:
        clauses = clauses[:_MAX_CLAUSES_HEAD] + clauses[-_MAX_CLAUSES_TAIL:]
    heads: list[tuple[str, ...]] = []
    code_objects = prose_objects = 0
    for clause in clauses:
        toks = clause[:_MAX_CLAUSE_CHARS].split()
        i = 0  # skip the fillers: "please", "can you", "do you", "if you"
        while i < len(toks) and (
            toks[i] in FILLERS or (toks[i] in ("do", "does", "if") and i + 1 < len(toks) and toks[i + 1] == "you")
        ):
            i += 1
        if i == len(toks):
            continue
        head = tuple(toks[i : i + _HEAD_TOKENS])
        heads.append(head)
        if head[0] in ACTION_VERBS:
            kind = _object_kind(head[1:9], code_context)
            code_objects += kind == "code"
            prose_objects += kind == "prose"
    return heads, code_objects, prose_objects


def _phrases(prose: str, words: frozenset[str]) -> frozenset[str]:
    """Names of the phrase families present where a request is phrased: the start and end of the prose."""
    if len(prose) > _PHRASE_HEAD_CHARS + _PHRASE_TAIL_CHARS:
        prose = prose[:_PHRASE_HEAD_CHARS] + "\n" + prose[-_PHRASE_TAIL_CHARS:]
    return frozenset(
        name for name, anchors, pattern in _PHRASE_SEARCH if not words.isdisjoint(anchors) and pattern.search(prose)
    )


def _math_and_numbers(unfenced: str, code_present: bool, heads: Sequence[tuple[str, ...]]) -> tuple[bool, int]:
    """A math expression in the prose, and how many numbers a word problem has (0 unless it opens like one)."""
    if code_present:
        return False, 0
    lowered = unfenced.lower()
    numbers = len(_NUMBER_RE.findall(lowered)) if word_problem_head(heads) else 0
    return has_math(lowered), numbers


def _extract(text: str) -> Features:
    """Read one message (bounded) into Features: separate code from prose, tokenize, find clause heads."""
    if "~~~" in text:
        text = text.replace("~~~", "```")
    text = _bounded(text)
    unfenced, fence_tags = _split_fences(text) if "```" in text else (text, [])
    unfenced, inline_code = _without_inline_code(unfenced)
    prose, code_lines = _without_code_lines(unfenced)
    prose = prose.lower().translate(_APOSTROPHES)
    tokenized = prose.translate(_TOKEN_SEPARATORS)
    word_list = tokenized.split()
    words = _word_set(word_list, fence_tags)

    code_present = bool(fence_tags) or code_lines >= 2
    languages = not words.isdisjoint(LANGUAGES)
    code_context = code_present or languages or not words.isdisjoint(CODE_CONTEXT)
    heads, code_objects, prose_objects = _clause_heads(tokenized, code_context)
    code_nouns = not words.isdisjoint(CODE_NOUNS) or (code_context and not words.isdisjoint(AMBIGUOUS_CODE_NOUNS))
    deictic_code = code_nouns and not words.isdisjoint(DEICTIC)
    math, numbers = _math_and_numbers(unfenced, code_present, heads)
    return Features(
        words=words,
        n_words=len(word_list),
        heads=tuple(heads),
        verbs=frozenset(h[0] for h in heads),
        question="?" in prose,
        code_present=code_present,
        inline_code=inline_code,
        traceback=has_traceback(text),
        error_name=has_error_name(text, text.lower()),
        math=math,
        numbers=numbers,
        phrases=_phrases(prose, words),
        code_objects=code_objects,
        prose_objects=prose_objects,
        languages=languages,
        code_nouns=code_nouns,
        deictic_code=deictic_code,
        code_ref=code_present or inline_code or languages or deictic_code,
    )


# ---------------------------------------------------------------------------------------------
# Scoring and the session rule.

_TIE_RANK: Final = {name: i for i, name in enumerate(TIE_BREAK_ORDER)}


def _classify_text(text: str) -> Classification | None:
    """Classification of one message's own text, or None when it has no request-type evidence."""
    if not text or text.isspace():
        return None
    t = _extract(text)
    scores: dict[str, int] = {}
    fired: dict[str, list[tuple[int, Rule]]] = {}
    for rule in RULES:
        if rule.test(t):
            scores[rule.request_type] = scores.get(rule.request_type, 0) + rule.weight
            fired.setdefault(rule.request_type, []).append((rule.weight, rule))
    if not scores:
        return None
    best = min(scores, key=lambda name: (-scores[name], _TIE_RANK[name]))
    if scores[best] < MIN_SCORE:
        return None
    ranked = sorted(fired[best], key=lambda wr: -wr[0])  # stable: table order among equal weights
    evidence = "; ".join(rule.evidence for _, rule in ranked[:3])
    return Classification(request_type=best, rule=ranked[0][1].id, evidence=evidence, inherited=False)


def _own_request(text: str) -> str:
    """The message without its leading feedback phrase ("thanks, that worked! now ...")."""
    return text[leading_feedback_end(text) :]


def _recent_user_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Texts of the latest user message and up to MAX_EARLIER_USER_MESSAGES before it, newest first."""
    user_texts: list[str] = []
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            user_texts.append(message_text(message))
            if len(user_texts) > MAX_EARLIER_USER_MESSAGES:
                break
    return user_texts


def _inherited(found: Classification, age: int) -> Classification:
    """`found`, read from the user message `age` messages back, as the type of the latest one."""
    return Classification(
        request_type=found.request_type,
        rule=f"inherited:{found.rule}",
        evidence=f"continues user message {age} back ({found.evidence})",
        inherited=True,
    )


def _for_router(found: Classification, request_types: Sequence[str]) -> Classification:
    """`found`, or general (rule kept for the logs) when the router does not learn its type."""
    if found.request_type in request_types:
        return found
    return Classification(
        GENERAL,
        found.rule,
        f"{found.evidence}; {found.request_type} is not learned by this router",
        found.inherited,
    )


def _without_evidence(latest: str) -> Classification:
    """The general classification of a conversation none of whose read user messages has evidence."""
    if latest.strip() and not _own_request(latest).strip():
        return Classification(
            GENERAL, "general:feedback-only", "only feedback, and no earlier request to continue", False
        )
    return Classification(GENERAL, "general:no-evidence", "no request-type evidence", False)


def classify(
    messages: Sequence[Mapping[str, Any]],
    request_types: Sequence[str] = REQUEST_TYPES,
) -> Classification:
    """Request type of a chat request, from its latest user message.

    Session rule: the latest user message is classified after removing a leading feedback
    phrase; if that leaves no evidence, the type of the closest earlier user message (at most
    MAX_EARLIER_USER_MESSAGES back) that has evidence is used and `inherited` is True. A type
    outside `request_types` maps to "general". Deterministic; never raises on malformed
    messages (they count as empty).
    """
    user_texts = _recent_user_texts(messages)
    if not user_texts:
        return Classification(GENERAL, "general:no-user-message", "the request has no user message", False)
    for age, text in enumerate(user_texts):
        found = _classify_text(_own_request(text))
        if found is not None:
            return _for_router(_inherited(found, age) if age > 0 else found, request_types)
    return _without_evidence(user_texts[0])
