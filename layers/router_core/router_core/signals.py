"""Implicit feedback: what the user's next message says about the answer it follows.

A follow-up message is read for one of four signals, each mapped to a reward in [0, 1]:

- satisfaction (1.0): gratitude, approval or a success report at the start of the message
  ("thanks, that works!", "perfect, thanks!", "that fixed it").
- dissatisfaction (0.0): an explicit complaint at the start ("that's wrong", "still failing",
  "doesn't work", "not what I asked"), or praise followed by a complaint ("thanks, but it's
  still wrong").
- correction (0.25): the user restates what they meant ("no, I meant ...", "actually, ...").
- retry (0.0): the user asks again ("try again") or re-sends the previous request nearly
  verbatim (same content words).

A follow-up with none of these is an ordinary message (`detect_feedback` returns None). The
router may still read it as a weak observation, `neutral_signal`: the user went on without
thanking or complaining, which happens after good and bad answers alike but more often after
bad ones (satisfied users say so more often than unsatisfied ones stay silent). Its reward is a
router setting (`RouterConfig.neutral_follow_up_reward`), so a router whose users only ever
say "thanks" still learns which model they thank less.

Positive and negative evidence are read under the same rules: only from the start of the
user's own words (code, quoted strings and quoted reply lines are removed first), only from
phrases about the answer, never from words inside a request ("write a great intro", "how do I
stop a container" carry no signal). An ordinary follow-up is no signal at all.

`docs/CLASSIFIER_AND_SIGNALS.md` documents every pattern family and the reward mapping.
Pure: stdlib only, no I/O, deterministic; every scan is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

SignalKind = Literal["satisfaction", "dissatisfaction", "correction", "retry", "neutral"]

REWARDS: Final[Mapping[str, float]] = {
    "satisfaction": 1.0,
    "dissatisfaction": 0.0,
    "correction": 0.25,
    "retry": 0.0,
}
"""Reward per signal kind. A correction is a partial failure: the answer missed the intent,
but part of the miss belongs to an under-specified request."""

_MAX_RETRY_CHARS: Final = 2000
"""Characters of each message compared for a retry."""
_MAX_STRIP_CHARS: Final = 1500
"""Characters of a follow-up cleaned of code; feedback phrases sit at the start of the user's words."""
_MAX_HEAD_CHARS: Final = 600
"""Characters of the code-free text searched for feedback phrases."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One implicit feedback signal about the previous answer.

    `reward` is in [0, 1] and fixed by `kind` (see `REWARDS`); `rule` names the pattern
    family that fired and never contains user text, so it is safe to log.
    """

    kind: SignalKind
    reward: float
    rule: str


def _signal(kind: SignalKind, family: str) -> Signal:
    return Signal(kind=kind, reward=REWARDS[kind], rule=f"{kind}:{family}")


# ---------------------------------------------------------------------------------------------
# Pattern building blocks. Patterns run with IGNORECASE on the original text (so positions map
# back onto it); an apostrophe in a pattern matches both ' and ’, a space matches any whitespace.


def _p(fragment: str) -> str:
    # Output holds no literal apostrophe or space, so an already built piece can be embedded again.
    return fragment.replace("'", r"[\x27\u2019]?").replace(" ", r"\s+")


def _alt(*fragments: str) -> str:
    return "(?:" + "|".join(_p(f) for f in fragments) + ")"


_PUNCT: Final = r"(?:[^\w\s\x27\u2019-]|-(?=\s|$))"
"""Punctuation or emoji; a hyphen only when it stands alone (so "follow-up" is one word)."""
_SEP: Final = rf"(?>(?:\s*{_PUNCT})*\s*)"
_CONT: Final = _alt(
    "but",
    "however",
    "though",
    "although",
    "yet",
    "except",
    "now",
    "also",
    "please",
    "thanks",
    "thank",
    "thx",
    "cheers",
    "again",
    "exactly",
    "perfect",
    "great",
    "awesome",
    "lol",
    "haha",
    "it works",
    "it worked",
    "that works",
    "that worked",
    "this works",
    "that did",
)
_END: Final = rf"(?=\s*{_PUNCT}|\s*$|\s+{_CONT}\b)"
"""A praise word must end its phrase: punctuation, the end, or a conjunction / more praise."""

_INTERJ: Final = _alt(
    "oh wow",
    "oh",
    "ah",
    "aha",
    "ok",
    "okay",
    "okey",
    "alright",
    "all right",
    "wow",
    "whoa",
    "yes",
    "yeah",
    "yep",
    "yup",
    "cool",
    "hey",
    "hmm",
    "omg",
    "actually",
    "well",
    "man",
    "dude",
    "lol",
    "haha",
    "yay",
    "woohoo",
)
_SUBJ: Final = _alt(
    "it",
    "that",
    "this",
    "this one",
    "that one",
    "everything",
    "the (?:code|fix|answer|solution|script|query|function|change|command|version|example|output|result|snippet"
    "|patch|regex|program|test|tests|build)",
    "your (?:code|fix|answer|solution|script|query|function|change|command|version|example|suggestion"
    "|explanation|response|reply|snippet|patch|regex|program|idea)",
)

# Satisfaction families.
_GRATITUDE: Final = _alt(
    "thank(?:s|s a lot|s so much|s again| you| u| ya| yo)"
    "(?: (?:so|very) much| a (?:lot|ton|bunch|million)| again| kindly| heaps| loads| (?:man|mate|buddy|friend|dude))*"
    r"(?: for (?!nothing\b)(?:[\w\x27\u2019-]+\s+){0,5}?[\w\x27\u2019-]+)?",
    "thx",
    "thnx",
    "tnx",
    "tysm",
    "ty",
    "cheers",
    "many thanks",
    "much appreciated",
    "(?:i |really |i really )?appreciate (?:it|that|this|the help|your help)",
)
_APPROVAL: Final = _alt(
    "(?:(?:just|absolutely|really|so|very|simply|truly|pretty) )?"
    "(?:perfect|great|awesome|excellent|amazing|fantastic|brilliant|wonderful|superb|sweet|nice|lovely|beautiful"
    "|outstanding|incredible|splendid|stellar|good|neat|impressive|fabulous)"
    "(?: (?:job|work|answer|stuff|one|explanation|response))?",
    "(?:looks|sounds) (?:good|great|perfect|right|correct|fine)(?: to me)?",
    "lgtm",
    "spot on",
    "(?:you )?nailed it",
    "well done",
    "(?:i )?lov(?:e|ing) (?:it|this|that)",
    "exactly(?: right| that| what i (?:needed|wanted|was looking for|asked for|meant))?",
    "(?:that's|thats|this is|that is) (?:exactly |just )?"
    "(?:it|right|correct|perfect|great|awesome|excellent|brilliant|amazing|helpful|very helpful|super helpful"
    "|exactly right|the one|what i (?:needed|wanted|was looking for|asked for|meant))",
    "(?:very |super |really |extremely |so )?helpful",
    "bingo",
)
_SUCCESS: Final = _alt(
    rf"(?:{_SUBJ} |now it |it now |now )?(?:(?:now|finally|totally|really|actually) )?"
    "(?:works|worked|is working|runs|ran|compiles|compiled|did it|did the trick|does the trick|fixed it|fixes it"
    "|solved it|solves it|fixed the (?:issue|problem|bug|error)|solved the (?:issue|problem)|helped|helps|passes"
    "|passed|is fixed|is solved)"
    "(?: (?:now|perfectly|great|fine|beautifully|flawlessly|like a charm|for me|again|as expected))*",
    "(?:it's|its|it is|that's|everything's|everything is) working(?: now| perfectly| fine| great)?",
    "working (?:now|perfectly|fine|great)",
    "problem solved",
    "(?:all )?(?:the )?tests (?:pass|are passing|passing|are green|green)(?: now)?",
    "(?:fixed|solved)",
)
_TRIED: Final = _alt(
    "i (?:tried|ran|tested|used|applied|checked|pasted) "
    rf"(?:it|that|this|{_SUBJ})(?: (?:again|out|now|myself))?(?:{_SEP}(?:and|but|now))?"
)
"""'I tried your code and ...' may open praise and complaints alike."""
_PRAISE_UNIT: Final = rf"(?:{_SUCCESS}|{_APPROVAL}|{_GRATITUDE}){_END}"
_PRAISE_CHAIN_RE: Final = re.compile(
    rf"^\s*(?:(?:{_INTERJ}|{_TRIED})\b{_SEP})*(?:{_PRAISE_UNIT}{_SEP})+", re.IGNORECASE
)
_SUCCESS_RE: Final = re.compile(rf"\b{_SUCCESS}{_END}", re.IGNORECASE)
_APPROVAL_RE: Final = re.compile(rf"\b{_APPROVAL}{_END}", re.IGNORECASE)

# Dissatisfaction families, each a named group so the rule says which fired.
_NEG_PREFIX: Final = (
    r"^\s*(?:"
    + _alt(
        "no",
        "nope",
        "nah",
        "hmm",
        "hm",
        "ugh",
        "argh",
        "sorry",
        "um",
        "uh",
        "well",
        "but",
        "however",
        "unfortunately",
        "sadly",
        "oh",
        "ok",
        "okay",
        "actually",
        "wait",
        "meh",
        "dude",
        "man",
        "hey",
        "so",
        "again",
        _TRIED,
    )
    + rf"\b{_SEP})*"
)
_COPULA: Final = _alt(
    "that's",
    "thats",
    "that is",
    "this is",
    "it's",
    "its",
    "it is",
    rf"{_SUBJ} (?:is|was)",
)
_AFTER_COMPLAINT: Final = _alt(
    "again",
    "now",
    "still",
    "though",
    "because",
    "since",
    "and",
    "but",
    "you",
    "i",
    "the",
    "it",
    "this",
    "that",
    "for",
    "in",
    "on",
    "as",
    "too",
    "here",
    "there",
    "when",
    "if",
    "with",
    "after",
    "at",
    "either",
    "anymore",
    "yet",
    "unfortunately",
    "sadly",
    "lol",
    "man",
    "mate",
)
"""Words that may follow a complaint adjective ("that's wrong because ..."), unlike a noun ("bad practice")."""
_NEG_WRONG: Final = _alt(
    rf"{_COPULA} (?:(?:still|just|completely|totally|all|plain|simply|clearly|definitely|obviously|absolutely"
    "|entirely|so|very|also) )*"
    "(?:wrong|incorrect|false|inaccurate|broken|useless|unhelpful|nonsense|garbage|rubbish|worse|made up|buggy"
    "|off|bad|terrible|awful|not it|not right|not correct|not true|not accurate|not working|not helpful"
    "|not useful|not what i (?:asked|wanted|need|needed|was looking for|asked for|requested))"
    + rf"(?=\s*{_PUNCT}|\s*$|\s+{_AFTER_COMPLAINT}\b)",
    "(?:wrong|incorrect|nonsense|useless|terrible|awful|garbage|rubbish|not helpful|unhelpful|no good"
    "|not quite right|not even close|way off|nice try)" + rf"(?=\s*{_PUNCT}|\s*$)",
    "(?:(?:that|this|it) (?:isn't|is not|wasn't|was not) )?"
    "not what i (?:asked|wanted|need|needed|was looking for|asked for|requested)",
    "(?:that|this|it) (?:isn't|wasn't) what i (?:asked|wanted|need|needed|was looking for|asked for|requested)",
)
_NEG_BROKEN: Final = _alt(
    rf"(?:{_SUBJ} )?(?:still )?"
    "(?:doesn't|doesnt|does not|didn't|didnt|did not|won't|wont|will not|isn't|isnt|is not|wasn't|wasnt|was not"
    "|still not|not) (?:(?:even|really|quite|actually|seem to|seems to|appear to) )*"
    "(?:work|works|working|compile|compiling|run|running|help|helping|fix|solve|answer|address|make sense"
    "|right(?! now| away)|correct|true|accurate|helpful|useful|handle)",
    rf"{_SUBJ} (?:(?:still|now|just|also) )*"
    "(?:fails|failed|crashes|crashed|breaks|broke|errors|errored|throws|threw|raises|raised|hangs|hung|freezes"
    "|froze|loops forever|makes no sense|returns (?:the )?(?:wrong|same|nothing|none|null|0|zero|an error|garbage)"
    "|gives (?:the |me )?(?:wrong|same|an error|nothing|garbage)|produces (?:the )?(?:wrong|same|an error|garbage)"
    "|prints (?:the )?(?:wrong|same|nothing))",
    "still (?:the same|same|failing|fails|failed|broken|wrong|incorrect|crashing|crashes|erroring|errors|hanging"
    "|not|doesn't|does not|getting|get|seeing|see|returns|returning|throws|throwing|raises|raising|no luck"
    "|nothing|an error|the error|buggy)",
    "(?:same|wrong|bad|incorrect|different) (?:error|errors|answer|result|output|problem|issue|exception|thing)",
)
_NEG_MISSED: Final = _alt(
    "you (?:misunderstood|misread|misunderstand|ignored|forgot|broke|just broke|hallucinated|are hallucinating"
    "|didn't (?:understand|read|answer|listen|follow|do what)|did not (?:understand|read|answer|follow)"
    "|missed (?:the point|my point|what)|got (?:it|that) wrong|are wrong|were wrong"
    "|made (?:that|it|this) up|are making (?:that|it|this) up)",
    "you're (?:wrong|not listening|making (?:that|it|this) up)",
)
_NEG_QUIT: Final = _alt(
    "forget it",
    "forget about it",
    "(?:never mind|nevermind),? i'll",
    "i give up",
    "i'll do it myself",
    "i'll figure it out myself",
    "this is (?:useless|pointless|a waste)",
    "waste of (?:my )?time",
    "thanks for nothing",
    "(?:this|that) (?:isn't|is not|wasn't|was not|didn't|did not) help(?:ing|ful)?",
)
_NEG_RE: Final = re.compile(
    rf"{_NEG_PREFIX}(?:(?P<wrong>{_NEG_WRONG})|(?P<not_working>{_NEG_BROKEN})|(?P<misunderstood>{_NEG_MISSED})"
    rf"|(?P<gave_up>{_NEG_QUIT}))\b",
    re.IGNORECASE,
)

# Correction families.
_CORR_CLARIFY_RE: Final = re.compile(
    r"^\s*(?:"
    + _alt("no", "nope", "nah", "sorry", "oops", "hmm", "hm", "um", "uh", "well", "wait", "oh", "ah", "ok", "okay")
    + rf"\b{_SEP})*"
    + _alt(
        "i meant",
        "what i meant",
        "what i mean",
        "i was (?:asking|talking|referring)",
        "i'm (?:asking|talking|referring)",
        "i am (?:asking|talking|referring)",
        "i asked (?:for|about)",
        "i said",
        "as i said",
        "like i said",
        "i specifically",
        "let me (?:clarify|rephrase|be clearer|be more specific)",
        "(?:just )?to clarify",
        "to be clear",
        "i should have (?:said|been clearer|mentioned|specified)",
        "not that one",
        "the other one",
        "wrong one",
        "(?:that's |this is |it's )?not what i meant",
        "not quite",
        "close,? but",
        "almost,? but",
        "almost there",
        "you're close",
        rf"(?:{_SUBJ}|it) (?:should|was supposed to|is supposed to|needs to|has to|must) "
        "(?:be|return|handle|use|print|include|have|output|work|show|say|read)",
    )
    + r"\b",
    re.IGNORECASE,
)
_CLOSING: Final = _alt(
    "that's all",
    "that's it",
    "that's fine",
    "i'm good",
    "i am good",
    "i'm fine",
    "i'm done",
    "all good",
    "all set",
    "we're good",
    "not now",
    "not right now",
    "maybe later",
    "later",
    "never mind",
    "nevermind",
    "i (?:figured|got|solved|found|fixed) (?:it|that|this)",
)
"""Closings and declines: the conversation ends, nothing is corrected."""
_CORR_NO_RE: Final = re.compile(
    r"^\s*(?:no|nope|nah)\b\s*(?:[^\w\s'’]\s*)*"
    r"(?!(?:thanks|thank|problem|problemo|worries|need|rush|idea|way|doubt|wonder|question|what|how|why|who|where"
    rf"|when|which|can|could|would|is|are|do|does|did|more)\b|{_CLOSING}\b)(?=\w)",
    re.IGNORECASE,
)
_CORR_NO_MEAN_RE: Final = re.compile(r"^\s*(?:no|nope|nah)\b\s*(?:[^\w\s'’]\s*)*i\s+mean\b", re.IGNORECASE)
_CORR_ACTUALLY_RE: Final = re.compile(
    r"^\s*actually\b\s*(?:[^\w\s'’]\s*)*"
    r"(?!(?:can|could|would|will|please|also|let[\x27\u2019]?s|let|make|add|write|show|give|create|generate|one more"
    rf"|another|i also|i'd also|how|what|why|who|where|when|which|is|are|do|does|thanks|thank)\b|{_CLOSING}\b)(?=\w)",
    re.IGNORECASE,
)

# Explicit retry: the user asks for the same thing again.
_RETRY_RE: Final = re.compile(
    r"^\s*(?:"
    + _alt("please", "pls", "ok", "okay", "hmm", "no", "nope", "ugh", "can you", "could you")
    + rf"\b{_SEP})*"
    + _alt(
        "try again",
        "try that again",
        "try once more",
        "try harder",
        "retry",
        "regenerate",
        "redo (?:it|that|this)",
        "re-?do",
        "do (?:it|that) again",
        "one more time",
        "give it another (?:try|shot|go)",
        "another (?:try|attempt)",
        "again",
    )
    + rf"(?=\s*{_PUNCT}|\s*$|\s+(?:but|please|with|using|in|and)\b)",
    re.IGNORECASE,
)

_CONTRAST_RE: Final = re.compile(
    rf"^{_SEP}(?:but|however|though|although|yet|except|unfortunately|sadly|only)\b{_SEP}", re.IGNORECASE
)

# Code, quoted strings and quoted reply lines are not the user's own words.
_CODE_RE: Final = re.compile(
    r"```[\s\S]*?(?:```|\Z)|~~~[\s\S]*?(?:~~~|\Z)|`[^`\n]*`"
    r"|\"[^\"\n]{0,300}\"|“[^”\n]{0,300}”|‘[^’\n]{0,300}’|(?<![\w'’])'[^'\n]{1,300}'(?![\w'’])"
    r"|^[ \t]*>[^\n]*",
    re.MULTILINE,
)

# Retry comparison: content words, lightly stemmed.
_WORD_SEPARATORS: Final = str.maketrans(dict.fromkeys('!"#$%&()*+,-./:;<=>?@[\\]^`{|}~“”‘«»…\n\t', " ") | {"’": "'"})
_STOPWORDS: Final = frozenset(
    str.split(
        """a an the and or but if then so of to in on at by for with from into onto about as is are was were be been
    being am do does did done doing have has had having i me my mine we us our you your yours he him his she her it
    its they them their this that these those there here what which who whom whose when where why how can could
    would should will shall may might must not no yes please pls plz thanks thank just also again now then still
    very really quite some any all each every one ones something anything thing things way ok okay hey hi hello
    what's whats it's its that's thats i'm im i'd id you're let's lets can't cant don't dont doesn't doesnt
    tell give show help need want like try retry answer question know let make get got"""
    )
)


def strip_code(text: str) -> str:
    """`text` with fenced blocks, inline code, quoted strings and "> " quoted lines replaced
    by the placeholder word "code" (so a message that opens with code does not open with praise).
    """
    return _CODE_RE.sub(" code ", text)


def _stem(word: str) -> str:
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> frozenset[str]:
    """Lower-cased, lightly stemmed words of `text` that carry meaning (stop words removed)."""
    words = set(text[:_MAX_RETRY_CHARS].lower().translate(_WORD_SEPARATORS).split())
    words -= _STOPWORDS
    return frozenset(_stem(w.strip("'_")) for w in words if len(w) > 1 or w.isdigit())


def is_retry(follow_up: str, previous_user: str) -> bool:
    """True when `follow_up` re-asks `previous_user` nearly verbatim.

    Invariant: the lengths are within a factor of 2 (+40 chars); both have at least two content
    words; their content-word sets overlap with Jaccard ≥ 0.8 and the follow-up adds at most one
    new content word. So "now make it handle dicts" (new words) and an improved revision
    (several added constraints) are not retries.
    """
    # Near-verbatim text has near-equal length; a much longer or shorter message is a revision.
    a, b = len(follow_up.strip()), len(previous_user.strip())
    if max(a, b) > 2 * min(a, b) + 40:
        return False
    before = content_words(previous_user)
    after = content_words(follow_up)
    if len(before) < 2 or len(after) < 2:
        return False
    shared = len(before & after)
    jaccard = shared / len(before | after)
    return jaccard >= 0.8 and len(after - before) <= 1


def _complaint(text: str) -> str | None:
    """Family name of a complaint at the start of `text`, or None."""
    m = _NEG_RE.match(text)
    return m.lastgroup if m is not None and m.lastgroup else None


def _correction(text: str) -> str | None:
    """Family name of a correction at the start of `text`, or None."""
    if _CORR_CLARIFY_RE.match(text) or _CORR_NO_MEAN_RE.match(text):
        return "clarification"
    if _CORR_NO_RE.match(text):
        return "no-redirect"
    if _CORR_ACTUALLY_RE.match(text):
        return "actually"
    return None


def _praise_family(chain: str) -> str:
    if _SUCCESS_RE.search(chain):
        return "success"
    if _APPROVAL_RE.search(chain):
        return "approval"
    return "gratitude"


def leading_feedback_end(text: str) -> int:
    """Index in `text` where the user's leading feedback phrases end (0 if it opens with none).

    Covers praise, complaints, corrections and explicit retries ("thanks, that works! now ..."
    → the index of "now"), so the rest can be classified as a request of its own.
    """
    pos = 0
    for _ in range(4):
        rest = text[pos:]
        m = (
            _PRAISE_CHAIN_RE.match(rest)
            or _CONTRAST_RE.match(rest)
            or _NEG_RE.match(rest)
            or _CORR_CLARIFY_RE.match(rest)
            or _CORR_NO_MEAN_RE.match(rest)
            or _RETRY_RE.match(rest)
        )
        if m is None or m.end() == 0:
            break
        pos += m.end()
    return pos


def detect_feedback(follow_up: str, previous_user: str | None = None) -> Signal | None:
    """Read the user's follow-up (the message that answers the previous turn) for a signal.

    Returns None for an ordinary follow-up: it is neither praise nor a complaint. Precedence:
    a near-verbatim re-send of `previous_user` is a retry; then praise at the start (turned
    into dissatisfaction or correction when a contrast and a complaint/correction follow it,
    into no signal when only a contrast follows); then a complaint, a correction, an explicit
    retry. Never raises; the reward is always in [0, 1].
    """
    if previous_user and is_retry(follow_up, previous_user):
        return _signal("retry", "repeated-request")
    head = strip_code(follow_up[:_MAX_STRIP_CHARS])[:_MAX_HEAD_CHARS]

    praise = _PRAISE_CHAIN_RE.match(head)
    if praise is not None:
        rest = head[praise.end() :]
        contrast = _CONTRAST_RE.match(rest)
        after = rest[contrast.end() :] if contrast else rest
        if _complaint(after):
            return _signal("dissatisfaction", "praise-then-complaint")
        if contrast is not None:
            if _correction(after):
                return _signal("correction", "praise-then-clarification")
            return None  # hedged praise ("thanks, but can you ...") is not clean satisfaction
        return _signal("satisfaction", _praise_family(praise.group(0)))

    family = _complaint(head)
    if family is not None:
        return _signal("dissatisfaction", family.replace("_", "-"))
    correction = _correction(head)
    if correction is not None:
        return _signal("correction", correction)
    if _RETRY_RE.match(head):
        return _signal("retry", "asked-again")
    return None


def neutral_signal(reward: float) -> Signal:
    """The weak observation an ordinary follow-up (no signal from `detect_feedback`) stands for.

    `reward` in [0, 1] is the router's setting; ValueError outside it.
    """
    if not (isinstance(reward, int | float) and 0.0 <= reward <= 1.0):
        raise ValueError(f"neutral reward must be in [0, 1], got {reward!r}")
    return Signal(kind="neutral", reward=float(reward), rule="neutral:ordinary-follow-up")


def conversation_length(messages: Sequence[Mapping[str, Any]]) -> int:
    """Messages the user and the model exchanged: user messages and assistant messages that say
    something. System, developer and tool messages, and assistant messages that only call tools
    (steps of an agent's loop the user never read), are not counted."""
    return sum(
        1
        for m in messages
        if m.get("role") == "user" or (m.get("role") == "assistant" and _text(m.get("content")).strip())
    )


def follow_up_of_previous_answer(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str | None] | None:
    """(the user's words after the last assistant message, the user message before that one), or
    None when nothing the user wrote follows it.

    Only user messages are feedback: in an agent's loop the last assistant message called tools
    and what follows it is tool results, which say nothing about the user's satisfaction. With
    several user messages after the answer, the latest is read (the one the user just sent).
    """
    last_answer = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last_answer < 0:
        return None
    after = [m for m in messages[last_answer + 1 :] if m.get("role") == "user"]
    if not after:
        return None
    before = [m for m in messages[:last_answer] if m.get("role") == "user"]
    return _text(after[-1].get("content")), (_text(before[-1].get("content")) if before else None)


def _text(content: Any) -> str:
    """A message content's text: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"]
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def gate_passed(messages_before_answer: int, min_messages: int) -> bool:
    """True when a turn's conversation is long enough for its feedback to count.

    `messages_before_answer` is `conversation_length` of the turn's request (system excluded);
    the answer adds one more. Invariant: passes iff messages_before_answer + 1 ≥ min_messages.
    Raises ValueError for a negative length or a minimum below 1.
    """
    if messages_before_answer < 0:
        raise ValueError(f"messages_before_answer must be >= 0, got {messages_before_answer}")
    if min_messages < 1:
        raise ValueError(f"min_messages must be >= 1, got {min_messages}")
    return messages_before_answer + 1 >= min_messages
