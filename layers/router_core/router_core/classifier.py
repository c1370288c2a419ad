"""Request classification: which request type a chat request is, from cheap lexical evidence.

The latest user message is read (after removing a leading feedback phrase such as "thanks,
that worked! now ..."), split into prose and code, and scored by weighted evidence rules:
code structure (fences, code lines, stack traces, error names), the verb that opens each
clause and the noun it acts on ("write a Slack message" vs "write a Python function"),
question forms (including contractions: "what's", "who's"), and keyword families. The type
with the highest total wins if it reaches `MIN_SCORE`; ties go to the first type in
`TIE_BREAK_ORDER`. A message with no evidence of its own (a follow-up such as "ok continue" or
"thanks, that worked") inherits the type of the closest earlier user message that has some.

`docs/CLASSIFIER_AND_SIGNALS.md` documents every rule. Pure: no I/O, deterministic, and every
scan is bounded (`MAX_HEAD_CHARS` + `MAX_TAIL_CHARS` of a message, `MAX_EARLIER_USER_MESSAGES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from router_core.config import REQUEST_TYPES
from router_core.signals import leading_feedback_end

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
        texts: list[str] = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text"):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return ""


# ---------------------------------------------------------------------------------------------
# Vocabulary: lower-case tokens (see _TOKEN_SEPARATORS).


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


LANGUAGES: Final = _words(
    """python py javascript js typescript ts rust golang java kotlin swift c++ cpp c# csharp ruby php sql sqlite
    plpgsql t-sql bash shell zsh powershell haskell scala elixir erlang perl lua matlab julia dart flutter html css
    scss sass jsx tsx react vue angular svelte django flask fastapi node nodejs deno pandas numpy pytorch tensorflow
    terraform ansible solidity cobol fortran assembly verilog vhdl ocaml clojure groovy regex regexp jq awk sed vba
    latex jquery laravel nextjs webpack cmake dockerfile makefile yaml json xml objective-c f# asyncio pytest jest
    junit mocha gradle maven npm"""
)
CODE_NOUNS: Final = _words(
    """function functions func class classes method methods code snippet snippets endpoint endpoints regex regexp
    query queries decorator decorators component module modules cli test tests unittest unittests lambda loop
    parser struct structs interface hook hooks handler handlers middleware dockerfile makefile one-liner oneliner
    macro plugin bot scraper crawler algorithm implementation library sdk compiler interpreter bug bugs
    stacktrace traceback variable variables array arrays dict dictionary dictionaries hashmap recursion recursive
    iterator generator closure closures pointer pointers enum trait generics async await promise promises callback
    callbacks mutex api apis repo pr diff patch constructor subclass inheritance syntax runtime webhook cron
    cronjob crontab linter program's function's list-comprehension comprehension script's codebase"""
)
AMBIGUOUS_CODE_NOUNS: Final = _words("script scripts program programs workflow workflows pipeline config configuration")
"""Code only when other code context is present ("a bash script"), else prose ("a video script")."""
CODE_CONTEXT: Final = _words(
    """file files cli terminal command commands input output automate automates automatically parse parses csv
    api directory folder folders rename download downloads scrape server database loop prints print string
    integer integers numbers array list lists json run runs compile"""
)
PROSE_NOUNS: Final = _words(
    """email emails e-mail mail essay essays blog post posts article articles letter letters memo message messages
    note notes tweet tweets paragraph paragraphs sentence sentences poem poems haiku limerick sonnet story stories
    novel chapter resume cv bio biography speech toast caption captions description descriptions announcement
    newsletter outline summary headline headlines title titles tagline taglines slogan slogans intro introduction
    conclusion abstract copy ad ads advert pitch proposal report invitation invite apology lyrics song dialogue
    eulogy card text sms notice agenda readme changelog faq reply response statement testimonial joke jokes pun
    puns rap verse ode fable screenplay thesis linkedin slack wording phrasing prose bullet bullets recap
    script scripts"""
)
CREATIVE_NOUNS: Final = _words(
    "poem poems haiku limerick sonnet story stories joke jokes pun puns lyrics song rap verse ode fable fairytale "
    "screenplay tale"
)
NAMING_NOUNS: Final = _words(
    "names slogan slogans tagline taglines titles headline headlines motto catchphrase name title"
)
NAMING_IDEATION: Final = _words(
    "ideas suggestions suggest brainstorm options some catchy creative good names list alternatives"
)
TONE_WORDS: Final = _words(
    """concise formal informal casual professional friendly persuasive polite shorter longer clearer warmer
    punchier catchy tone grammar spelling typos wording engaging brief succinct readable flow simpler friendlier
    funnier wittier empathetic diplomatic assertive"""
)
CREATE_VERBS: Final = _words(
    """write create generate implement build make produce develop give show draft compose craft code scaffold
    construct prepare define set put whip spin come"""
)
WRITE_VERBS: Final = _words(
    """write draft compose rewrite edit proofread polish rephrase reword paraphrase summarize summarise shorten
    condense expand translate tighten improve revise craft pen redraft copyedit tweak create generate make produce
    give prepare come put respond reply answer turn"""
)
STRONG_WRITING_VERBS: Final = _words("proofread paraphrase rephrase reword summarize summarise copyedit tldr translate")
TRANSFORM_VERBS: Final = _words(
    """refactor convert port translate rewrite optimize optimise vectorize parallelize modify change update extend
    add rename migrate clean simplify speed annotate memoize rework restructure turn"""
)
STRONG_CODE_VERBS: Final = _words("implement refactor vectorize parallelize memoize")
UNDERSTAND_VERBS: Final = _words(
    "explain describe understand review critique analyze analyse interpret clarify annotate walk break elaborate teach"
)
DEBUG_VERBS: Final = _words("debug fix diagnose troubleshoot trace resolve repair")
EDIT_VERBS: Final = _words(
    "make rewrite rephrase reword edit polish improve fix shorten tighten proofread revise adjust change keep "
    "simplify clean tone turn"
)
DEBUG_WORDS: Final = _words(
    """bug bugs buggy broken crash crashes crashing crashed error errors exception exceptions fails failing failed
    wrong segfault traceback stacktrace hangs freezes leak leaks undefined nan doesn't isn't won't incorrect
    unexpected expected instead debug debugging always never"""
)
DEICTIC: Final = _words("this that these those my our following below above attached here's here")
TECH_NAMES: Final = _words(
    """postgres postgresql mysql sqlite mongodb mongo dynamodb redis kafka rabbitmq sqs sns cassandra elasticsearch
    opensearch s3 aurora bigquery snowflake spark flink airflow django flask fastapi rails spring express nextjs
    react vue angular svelte kubernetes k8s docker terraform aws gcp azure lambda ecs eks nginx graphql grpc rest
    restful celery supabase firebase vercel heroku neo4j clickhouse timescaledb influxdb memcached etcd consul
    istio serverless microservices monolith nosql sql orm crud cqrs event-sourcing"""
)
TECH_TOKENS: Final = _words(
    """git docker npm pip div css html regex api json csv xml yaml sql terminal command cli linux unix vim emacs
    vscode kubectl kubernetes k8s aws s3 ssh curl http excel spreadsheet formula conda venv virtualenv cron bash
    shell powershell github gitlab makefile cmake gradle maven cargo webpack"""
)
DESIGN_NOUNS: Final = _words(
    """architecture architectures microservice microservices monolith monolithic scalability scalable scaling
    infrastructure database databases schema schemas datastore cache caching queue queues broker sharding shard
    replication replicas consistency availability latency throughput tradeoff tradeoffs trade-off trade-offs
    event-driven pubsub cqrs rest restful grpc graphql websocket websockets protocol framework frameworks backend
    frontend serverless kubernetes k8s deployment multi-tenant multitenant tenancy idempotency idempotent
    load-balancer cdn api apis system systems service services pipeline pipelines etl warehouse orm authentication
    authorization oauth sso rbac fault-tolerant failover redundancy partitioning indexing modular layered stack"""
)
DESIGN_VERBS: Final = _words("design architect")
ACTION_VERBS: Final = CREATE_VERBS | WRITE_VERBS | TRANSFORM_VERBS | UNDERSTAND_VERBS
CODE_WRITING_VERBS: Final = CREATE_VERBS | TRANSFORM_VERBS
PROSE_WRITING_VERBS: Final = CREATE_VERBS | WRITE_VERBS | UNDERSTAND_VERBS
CREATIVE_VERBS: Final = CREATE_VERBS | WRITE_VERBS | {"tell"}
VISUAL_OBJECTS: Final = _words(
    "logo poster flyer tattoo outfit banner icon costume garden room kitchen wedding dress interior"
)
IDEATION_WORDS: Final = _words(
    """brainstorm brainstorming ideas idea features feature differentiated differentiate differentiating
    differentiator differentiators roadmap mvp usp"""
)
PRODUCT_NOUNS: Final = _words(
    "app apps application product products platform startup saas tool website site service extension plugin game "
    "dashboard marketplace"
)
MATH_VERBS: Final = _words(
    "solve calculate compute prove derive integrate differentiate simplify factor factorise factorize estimate"
)
MATH_WORDS: Final = _words(
    """equation equations integral integrals derivative derivatives theorem proof lemma probability probabilities
    combinatorics permutation permutations variance deviation bayes bayesian eigenvalue eigenvalues eigenvector
    polynomial logarithm factorial modulo percent percentage odds arithmetic algebra calculus geometry
    trigonometry statistics statistical expectation hypothesis quadratic exponential fraction fractions ratio
    sqrt median"""
)
PUZZLE_WORDS: Final = _words("puzzle riddle paradox brainteaser syllogism dilemma logic")
WH_WORDS: Final = _words("who what when where which whom whose what's whats who's whos where's wheres when's which's")
QUANTITY_WORDS: Final = _words(
    "many much tall old far long big large deep high fast heavy hot cold wide often early late small short"
)
FACT_WORDS: Final = _words(
    """capital population president minister ceo founder founded born died invented inventor discovered located
    height tallest largest biggest longest highest smallest oldest deepest currency symbol year century author
    wrote painted directed won winner champion anniversary abbreviation acronym continent country city river
    mountain ocean planet element atomic chemical"""
)
CONDITIONAL_HEADS: Final = _words("if suppose assume assuming given imagine")
HOWTO_SECOND: Final = _words("do to can would")
OPINION_STARTS: Final = frozenset(
    {("do", "you"), ("would", "you"), ("should", "i"), ("should", "we"), ("can", "you"), ("about",), ("if",)}
)
ADVICE_STARTS: Final = frozenset(
    {("a", "good"), ("the", "best"), ("some", "good"), ("a", "better"), ("the", "right"), ("a", "nice")}
)
"""'what's a good / the best ...' asks for advice, not a fact."""
FILLERS: Final = _words(
    """please pls plz kindly can could would will you u hey hi hello yo so ok okay now also and then just quickly
    briefly i i'd id i'm im i'll like want wanted need needed to me help us let's lets let maybe actually btw next
    alright but however um uh hmm well again quick question q dear know wondering wonder curious try trying sure
    yes yeah no nope thanks thank"""
)
OBJECT_STOPPERS: Final = _words(
    """that which who to for about in on with from of where when so and but using by into as like than if because
    while how what why telling letting asking explaining describing announcing saying introducing declining
    confirming thanking inviting requesting summarizing showing"""
)
STOPWORDS: Final = _words(
    """a an the and or but if then so of to in on at by for with from into about as is are was were be been am do
    does did have has had i me my we us our you your he him his she her it its they them their this that these
    those there here what which who whom whose when where why how can could would should will may might must not
    no yes please just also again now very really some any all one up out it's that's i'm you're"""
)

# ---------------------------------------------------------------------------------------------
# Text scanners (compiled once).

_APOSTROPHES: Final = str.maketrans({"’": "'", "‘": "'"})
_INLINE_CODE_RE: Final = re.compile(r"`[^`\n]+`")
_CODE_LINE_RE: Final = re.compile(
    r"^(?=[^\n]{0,240}$)[ \t]*(?:"  # a line of code is short; long lines are prose and are skipped cheaply
    r"(?:def|class|import|from\s+[\w.]+\s+import|return|elif|else:|try:|except|finally:|raise|yield|async\s+def"
    r"|await|lambda|print\(|console\.|System\.out|fmt\.|func|fn|impl|struct|enum|public|private|protected|static"
    r"|const\s+\w+|let\s+\w+\s*=|var\s+\w+|#include|package\s+\w|using\s+\w|namespace|SELECT|INSERT|UPDATE"
    r"|DELETE|CREATE\s+TABLE|ALTER\s+TABLE|WHERE|JOIN|GROUP\s+BY|ORDER\s+BY|if\s*\(|if\s+.+:|for\s*\("
    r"|for\s+.+\s+in\s+.+:|while\s*\(|while\s+.+:|switch\s*\(|case\s+.+:|@\w+|\$\s|>>>\s|[}\])]+[;,]?)[^\n]*"
    r"|[^\n]*[;{]"
    r"|[\w.\[\]'\"]+\s*(?:[-+*/%|&]?=|:=)\s*[^=\s][^\n]*"
    r"|File\s+\"[^\"\n]*\",\s+line\s+\d+[^\n]*"
    r"|at\s+\S+\([^\n]*\)"
    r"|Traceback\s+\(most\s+recent\s+call\s+last\):?"
    r"|[\w.]*(?:Error|Exception)(?::[^\n]*)?"
    r")[ \t]*$",
    re.MULTILINE,
)
_TRACE_MARKERS: Final = (
    "Traceback (most recent call last)",
    "panicked at",
    "Segmentation fault",
    "core dumped",
    "npm ERR!",
    "Exception in thread",
    "error[E",
)
_TRACE_FRAME_RE: Final = re.compile(
    r'File "[^"\n]+", line \d+|\n[ \t]+at [\w.$<>]+\(|\n[ \t]+at [^\n]+:\d+:\d+\)?[ \t]*(?:\n|$)|error TS\d'
)
_ERROR_NAME_RE: Final = re.compile(r"[A-Z][A-Za-z0-9]*(?:Error|Exception)\b")
_ERROR_PHRASES: Final = (
    "segfault",
    "undefined is not",
    "cannot read propert",
    "null pointer",
    "nullpointer",
    "command not found",
    "permission denied",
    "stack trace",
    "stacktrace",
    "exit code 1",
    "exit status 1",
)
_MATH_RE: Final = re.compile(r"[0-9](?:\s*[-+*/×÷^=<>]\s*[\d(]|\s*[+*/×÷^=]\s*[a-z]\b|(?:\.\d+)?\s*%)")
_MATH_SYMBOL_RE: Final = re.compile(r"[∫∑∏√π∞≤≥≠±]")
_MATH_FUNCTION_RE: Final = re.compile(r"(?:sqrt|log|ln|sin|cos|tan)\s*\(|[a-z]\s*\^\s*\d")
_TOKEN_SEPARATORS: Final = str.maketrans(
    dict.fromkeys('"$%&()*,/<=>@[\\]^`{|}~“”«»', " ") | dict.fromkeys(".!?;:…\n", "\n")
)
"""Everything but letters, digits, ' + # _ - separates tokens ("c++", "c#", "what's", "e-mail" stay whole);
sentence punctuation becomes a newline, so one pass yields both the tokens and the clauses."""
_NUMBER_RE: Final = re.compile(r"\d+(?:[.,]\d+)?")


def _phrase(name: str, anchors: str, pattern: str) -> tuple[str, frozenset[str], re.Pattern[str]]:
    # No leading \b: an alternation that starts with literals lets the regex engine skip ahead fast.
    return name, _words(anchors), re.compile(pattern)


_PHRASES: Final = (
    _phrase(
        "whats_wrong",
        "what's whats what why",
        r"what(?:'s| is|s) (?:wrong|the (?:bug|problem|issue|error))"
        r"|why (?:does|doesn't|does not|is|isn't|am i|do i|did|won't|can't|do|are|would) (?:it|this|my|the|i)\b",
    ),
    _phrase(
        "tech_choice",
        "should which better vs versus when",
        r"should (?:i|we) (?:use|choose|pick|go with|switch to|adopt|migrate to|learn)"
        r"|which (?:one )?(?:is better|should (?:i|we))|better choice|vs\b|versus|or should (?:i|we)"
        r"|when (?:should i|to) use",
    ),
    _phrase(
        "design_howto",
        "design structure organize organise architect model lay scale shard partition",
        r"how (?:should|would|do|can) (?:i|we|you) (?:design|structure|organi[sz]e|architect|model|lay out|scale"
        r"|shard|partition)|best (?:way|practices?) (?:to|for) (?:design|structur|organi[sz]|architect|scal)"
        r"|system design|design (?:a|an|the|my|our) (?:\w+ )?(?:system|service|api|schema|database|architecture"
        r"|pipeline|platform|backend)",
    ),
    _phrase(
        "advice",
        "how what's whats what best should",
        r"how (?:should|would|do|can) (?:i|we) (?:handle|approach|deal with|manage|implement|support|ensure|avoid)"
        r"|should (?:i|we) (?:split|move|migrate|switch|break|merge|keep|go|rewrite|replace)"
        r"|what(?:'s| is|s) (?:a good|the best|the right) (?:way|approach|architecture|design|pattern|strategy|setup)"
        r"|best practices?",
    ),
    _phrase(
        "tradeoffs",
        "tradeoff tradeoffs trade-off trade-offs trade pros advantages",
        r"trade-?offs?|pros and cons|advantages and disadvantages",
    ),
    _phrase(
        "compare",
        "better worse difference differences compare comparison differ",
        r"better than|worse than|differences? between|compare|comparison|differ from",
    ),
    _phrase(
        "stepwise",
        "step step-by-step think reason happen happens intuition come",
        r"step[- ]by[- ]step|think (?:it )?through|reason (?:about|through)|what (?:would happen|happens) if"
        r"|intuition (?:behind|for)|how come",
    ),
    _phrase(
        "math_phrase",
        "expected standard likely chance chances odds rate",
        r"expected value|standard deviation|how likely|chances? (?:of|that)|odds (?:of|that)|rate of change",
    ),
    _phrase(
        "definition",
        "definition meaning stand spell synonym synonyms antonym antonyms",
        r"definition of|meaning of|stand for|how (?:do you|to) spell|synonyms? (?:for|of)|antonyms? (?:for|of)",
    ),
    _phrase(
        "explain_work",
        "work walk eli5 explain",
        r"how (?:does|do|did) [\w' -]{1,60}? work|walk me through|eli5|explain like",
    ),
)
"""Phrase families: (name, anchor words, pattern). A pattern runs only when one of its anchors is a token."""


_PHRASE_HEAD_CHARS: Final = 500
_PHRASE_TAIL_CHARS: Final = 300


def _phrases(prose: str, words: frozenset[str]) -> frozenset[str]:
    """Phrase families present where a request is phrased: the start and the end of the prose."""
    if len(prose) > _PHRASE_HEAD_CHARS + _PHRASE_TAIL_CHARS:
        prose = prose[:_PHRASE_HEAD_CHARS] + "\n" + prose[-_PHRASE_TAIL_CHARS:]
    return frozenset(
        name for name, anchors, pattern in _PHRASES if not words.isdisjoint(anchors) and pattern.search(prose)
    )


def _has_traceback(text: str) -> bool:
    return any(marker in text for marker in _TRACE_MARKERS) or _TRACE_FRAME_RE.search(text) is not None


def _has_error_name(text: str, lowered: str) -> bool:
    if ("Error" in text or "Exception" in text) and _ERROR_NAME_RE.search(text):
        return True
    return any(phrase in lowered for phrase in _ERROR_PHRASES)


def _has_math(text: str) -> bool:
    return (
        _MATH_RE.search(text) is not None
        or (not text.isascii() and _MATH_SYMBOL_RE.search(text) is not None)
        or (("(" in text or "^" in text) and _MATH_FUNCTION_RE.search(text) is not None)
    )


@dataclass(frozen=True, slots=True)
class _Text:
    """Evidence extracted once from one user message (bounded); the rules only read it."""

    words: frozenset[str]
    n_words: int
    heads: tuple[tuple[str, ...], ...]  # first tokens of each clause, leading fillers removed
    verbs: frozenset[str]  # first token of each head
    question: bool
    code_present: bool  # a fenced block or at least two code-like lines
    inline_code: bool
    traceback: bool
    error_name: bool
    math: bool
    numbers: int
    phrases: frozenset[str]
    code_objects: int  # clauses "verb + code noun" ("write a function")
    prose_objects: int  # clauses "verb + prose noun" ("write an email")
    languages: bool
    code_nouns: bool
    deictic_code: bool  # "this function", "my code"
    code_ref: bool  # points at concrete code or names a programming language


def _word_problem_head(heads: Sequence[tuple[str, ...]]) -> bool:
    """A clause opens like a word problem ("if a train ...", "how many ...")."""
    return any(h[0] in CONDITIONAL_HEADS or (h[0] == "how" and len(h) > 1 and h[1] in QUANTITY_WORDS) for h in heads)


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


def _extract(text: str) -> _Text:
    if "~~~" in text:
        text = text.replace("~~~", "```")
    text = _bounded(text)
    unfenced, fence_tags = _split_fences(text) if "```" in text else (text, [])
    inline_code = "`" in unfenced and _INLINE_CODE_RE.search(unfenced) is not None
    if inline_code:
        unfenced = _INLINE_CODE_RE.sub(" ", unfenced)
    # One line cannot make code_present (two code lines needed); skip the scan for one-line messages.
    prose, code_lines = _CODE_LINE_RE.subn("\n", unfenced) if "\n" in unfenced.strip() else (unfenced, 0)
    prose = prose.lower().translate(_APOSTROPHES)
    tokenized = prose.translate(_TOKEN_SEPARATORS)
    word_list = tokenized.split()
    words = frozenset(word_list).union(tag for tag in fence_tags if tag in LANGUAGES)
    words = words.union([w[:-2] for w in words if w.endswith("'s")])  # "python's" also counts as "python"
    code_present = bool(fence_tags) or code_lines >= 2
    languages = not words.isdisjoint(LANGUAGES)
    code_context = code_present or languages or not words.isdisjoint(CODE_CONTEXT)

    clauses = tokenized.split("\n")
    if len(clauses) > _MAX_CLAUSES_HEAD + _MAX_CLAUSES_TAIL:
        clauses = clauses[:_MAX_CLAUSES_HEAD] + clauses[-_MAX_CLAUSES_TAIL:]
    heads: list[tuple[str, ...]] = []
    code_objects = prose_objects = 0
    for clause in clauses:
        toks = clause[:_MAX_CLAUSE_CHARS].split()
        i = 0
        while i < len(toks) and (
            toks[i] in FILLERS or (toks[i] in ("do", "does", "if") and i + 1 < len(toks) and toks[i + 1] == "you")
        ):
            i += 1
        if i == len(toks):
            continue
        head = tuple(toks[i : i + 10])
        heads.append(head)
        if head[0] in ACTION_VERBS:
            kind = _object_kind(head[1:9], code_context)
            code_objects += kind == "code"
            prose_objects += kind == "prose"

    code_nouns = not words.isdisjoint(CODE_NOUNS) or (code_context and not words.isdisjoint(AMBIGUOUS_CODE_NOUNS))
    deictic_code = code_nouns and not words.isdisjoint(DEICTIC)
    unfenced_lower = unfenced.lower()
    return _Text(
        words=words,
        n_words=len(word_list),
        heads=tuple(heads),
        verbs=frozenset(h[0] for h in heads),
        question="?" in prose,
        code_present=code_present,
        inline_code=inline_code,
        traceback=_has_traceback(text),
        error_name=_has_error_name(text, text.lower()),
        math=not code_present and _has_math(unfenced_lower),
        numbers=len(_NUMBER_RE.findall(unfenced_lower)) if not code_present and _word_problem_head(heads) else 0,
        phrases=_phrases(prose, words),
        code_objects=code_objects,
        prose_objects=prose_objects,
        languages=languages,
        code_nouns=code_nouns,
        deictic_code=deictic_code,
        code_ref=code_present or inline_code or languages or deictic_code,
    )


# ---------------------------------------------------------------------------------------------
# Evidence rules. Each returns True when its evidence is present; weights add up per type.


def _first_verb_in(t: _Text, verbs: frozenset[str]) -> bool:
    return not t.verbs.isdisjoint(verbs)


def _creates_code(t: _Text) -> bool:
    return t.code_objects > 0 and _first_verb_in(t, CODE_WRITING_VERBS)


def _creates_code_loosely(t: _Text) -> bool:
    return (
        t.code_objects == 0
        and t.prose_objects == 0
        and _first_verb_in(t, CREATE_VERBS)
        and (t.code_nouns or t.languages)
        and not t.code_present
    )


def _transforms_code(t: _Text) -> bool:
    return _first_verb_in(t, TRANSFORM_VERBS) and t.prose_objects == 0 and (t.code_present or t.inline_code)


def _asks_how_to_in_tool(t: _Text) -> bool:
    howto = any(len(h) > 1 and h[0] == "how" and h[1] in HOWTO_SECOND for h in t.heads)
    tool = t.languages or not t.words.isdisjoint(TECH_TOKENS)
    return howto and tool and not t.traceback and not t.error_name


def _understanding_head(t: _Text) -> bool:
    return _first_verb_in(t, UNDERSTAND_VERBS) or "explain_work" in t.phrases


def _debug_head(t: _Text) -> bool:
    return _first_verb_in(t, DEBUG_VERBS) or "whats_wrong" in t.phrases


def _asks_about_code(t: _Text) -> bool:
    asks = t.question or _understanding_head(t) or _debug_head(t)
    return t.code_present and asks and not _creates_code(t) and not _transforms_code(t)


def _asks_about_snippet(t: _Text) -> bool:
    return t.inline_code and t.question and not _creates_code(t)


def _debugging(t: _Text) -> bool:
    if _creates_code(t) or not (t.code_ref or t.code_nouns):
        return False
    symptoms = not t.words.isdisjoint(DEBUG_WORDS) or "whats_wrong" in t.phrases
    return symptoms and (t.question or _debug_head(t) or _understanding_head(t))


def _explains_code(t: _Text) -> bool:
    return _understanding_head(t) and (t.code_present or t.inline_code or t.deictic_code)


def _language_concept(t: _Text) -> bool:
    return (
        t.languages
        and (t.question or _understanding_head(t))
        and not _creates_code(t)
        and not _asks_how_to_in_tool(t)
        and not t.code_present
    )


def _code_request(t: _Text) -> bool:
    return t.languages and t.code_nouns and not t.code_present and t.prose_objects == 0


def _design_request(t: _Text) -> bool:
    designs = _first_verb_in(t, DESIGN_VERBS) or "design_howto" in t.phrases
    return designs and t.words.isdisjoint(VISUAL_OBJECTS)


def _technical(t: _Text) -> bool:
    return not t.words.isdisjoint(TECH_NAMES) or not t.words.isdisjoint(DESIGN_NOUNS) or t.languages


def _technology_choice(t: _Text) -> bool:
    if "tech_choice" in t.phrases:
        return _technical(t)
    # "Postgres or MongoDB for a catalog?": a question naming two technologies as alternatives.
    named = len(t.words & TECH_NAMES) + len(t.words & LANGUAGES - TECH_NAMES)
    return t.question and "or" in t.words and (named >= 2 or (named == 1 and _design_terms(t) >= 1))


def _approach_question(t: _Text) -> bool:
    return "advice" in t.phrases and (_design_terms(t) >= 1 or not t.words.isdisjoint(TECH_NAMES))


def _tradeoffs(t: _Text) -> bool:
    return "tradeoffs" in t.phrases and _technical(t)


def _design_terms(t: _Text) -> int:
    return len(t.words & DESIGN_NOUNS)


def _product_ideation(t: _Text) -> bool:
    return (
        not t.words.isdisjoint(IDEATION_WORDS)
        and not t.words.isdisjoint(PRODUCT_NOUNS)
        and t.words.isdisjoint(NAMING_NOUNS)
        and not t.code_present
    )


def _math_problem(t: _Text) -> bool:
    verbs = _first_verb_in(t, MATH_VERBS) and not (t.code_ref or t.code_nouns)
    return verbs or not t.words.isdisjoint(MATH_WORDS) or "math_phrase" in t.phrases


def _word_problem(t: _Text) -> bool:
    return t.numbers >= 2 and (t.question or _first_verb_in(t, MATH_VERBS))


def _explains_concept(t: _Text) -> bool:
    why = any(h[0] == "why" for h in t.heads)
    return (_understanding_head(t) or why) and not t.code_ref


def _hypothetical(t: _Text) -> bool:
    return t.question and _first_verb_in(t, CONDITIONAL_HEADS)


def _composes_prose(t: _Text) -> bool:
    return t.prose_objects > 0 and _first_verb_in(t, PROSE_WRITING_VERBS)


def _creative(t: _Text) -> bool:
    return not t.words.isdisjoint(CREATIVE_NOUNS) and _first_verb_in(t, CREATIVE_VERBS)


def _edits_tone(t: _Text) -> bool:
    return not t.words.isdisjoint(TONE_WORDS) and _first_verb_in(t, EDIT_VERBS) and t.code_objects == 0


def _strong_writing_verb(t: _Text) -> bool:
    return _first_verb_in(t, STRONG_WRITING_VERBS) and not t.code_present and t.code_objects == 0


def _naming(t: _Text) -> bool:
    return not t.words.isdisjoint(NAMING_NOUNS) and not t.words.isdisjoint(NAMING_IDEATION)


def _wh_question(head: tuple[str, ...]) -> bool:
    if head[0] in WH_WORDS:
        rest = head[1:]
    elif len(head) > 2 and head[0] == "tell" and head[1] == "me" and head[2] in WH_WORDS:
        rest = head[3:]
    elif (
        len(head) > 1 and head[0] in ("in", "on", "at", "from", "by", "since", "during", "for") and head[1] in WH_WORDS
    ):
        rest = head[2:]
    else:
        return False
    if rest[:2] in OPINION_STARTS or rest[:1] in OPINION_STARTS or "wrong" in rest[:3] or rest[:2] in ADVICE_STARTS:
        return False
    return any(w not in STOPWORDS for w in rest)


def _fact_question(t: _Text) -> bool:
    return not t.code_present and any(_wh_question(h) for h in t.heads)


def _weak_fact_question(t: _Text) -> bool:
    # "what's the difference between ..." and questions about code are not lookups.
    return _fact_question(t) and (t.code_nouns or t.inline_code or "compare" in t.phrases)


def _short_fact_question(t: _Text) -> bool:
    return t.n_words <= 30 and _fact_question(t) and not _weak_fact_question(t)


def _long_fact_question(t: _Text) -> bool:
    return t.n_words > 30 and _fact_question(t) and not _weak_fact_question(t)


def _mentions_fact(t: _Text) -> bool:
    return not t.words.isdisjoint(FACT_WORDS) and not t.code_present


def _mentions_prose(t: _Text) -> bool:
    return not t.words.isdisjoint(PROSE_NOUNS) and not t.code_present


def _puzzle(t: _Text) -> bool:
    return not t.words.isdisjoint(PUZZLE_WORDS) or "stepwise" in t.phrases


def _quantity_question(t: _Text) -> bool:
    return (
        not t.code_present
        and t.n_words <= 30
        and any(len(h) > 1 and h[0] == "how" and h[1] in QUANTITY_WORDS for h in t.heads)
    )


def _definition(t: _Text) -> bool:
    return "definition" in t.phrases or ("define" in t.verbs and t.code_objects == 0)


CU: Final = "code_understanding"
CG: Final = "code_generation"
TD: Final = "technical_design"
AR: Final = "analytical_reasoning"
WR: Final = "writing"
FL: Final = "factual_lookup"


@dataclass(frozen=True, slots=True)
class Rule:
    """One evidence rule: when `test` holds, `weight` points go to `request_type`."""

    id: str
    request_type: str
    weight: int
    test: Callable[[_Text], bool]
    evidence: str


RULES: Final[tuple[Rule, ...]] = (
    Rule("code:traceback", CU, 5, lambda t: t.traceback, "a stack trace"),
    Rule("code:question-about-code", CU, 4, _asks_about_code, "a question about pasted code"),
    Rule("code:question-about-snippet", CU, 3, _asks_about_snippet, "a question about inline code"),
    Rule("code:error-name", CU, 3, lambda t: t.error_name, "an error or exception name"),
    Rule("code:debugging", CU, 3, _debugging, "a bug or failure to diagnose"),
    Rule("code:explain-code", CU, 3, _explains_code, "a request to explain or review code"),
    Rule("code:language-concept", CU, 2, _language_concept, "a question about a programming language"),
    Rule("code:pasted-code", CU, 2, lambda t: t.code_present, "pasted code"),
    Rule("code:write-code", CG, 4, _creates_code, "a request to write code"),
    Rule("code:change-code", CG, 4, _transforms_code, "a request to change given code"),
    Rule("code:implement", CG, 3, lambda t: _first_verb_in(t, STRONG_CODE_VERBS), "an implement/refactor verb"),
    Rule("code:how-to", CG, 3, _asks_how_to_in_tool, "how to do something in a language or tool"),
    Rule("code:write-code-loose", CG, 3, _creates_code_loosely, "a request to write code"),
    Rule("code:code-in-language", CG, 2, _code_request, "a code artifact in a named language"),
    Rule("design:design-request", TD, 4, _design_request, "a request to design a system"),
    Rule("design:technology-choice", TD, 4, _technology_choice, "a choice between technologies"),
    Rule("design:product-ideation", TD, 4, _product_ideation, "ideation on a product's features"),
    Rule("design:tradeoffs", TD, 3, _tradeoffs, "trade-offs of a technical approach"),
    Rule("design:approach", TD, 3, _approach_question, "how to approach a technical concern"),
    Rule("design:architecture-terms", TD, 2, lambda t: _design_terms(t) >= 2, "architecture vocabulary"),
    Rule("design:architecture-terms-many", TD, 1, lambda t: _design_terms(t) >= 3, "much architecture vocabulary"),
    Rule("reasoning:math", AR, 4, lambda t: t.math, "a math expression"),
    Rule("reasoning:word-problem", AR, 4, _word_problem, "a word problem with numbers"),
    Rule("reasoning:math-words", AR, 3, _math_problem, "a math or statistics problem"),
    Rule("reasoning:puzzle", AR, 3, _puzzle, "a puzzle or step-by-step reasoning"),
    Rule("reasoning:explain-concept", AR, 3, _explains_concept, "a why/how explanation of a concept"),
    Rule("reasoning:comparison", AR, 2, lambda t: "compare" in t.phrases, "a comparison"),
    Rule("reasoning:hypothetical", AR, 2, _hypothetical, "a hypothetical question"),
    Rule("writing:compose", WR, 4, _composes_prose, "a request to write prose"),
    Rule("writing:creative", WR, 3, _creative, "a creative-writing request"),
    Rule("writing:edit", WR, 3, _edits_tone, "a request to change tone or wording"),
    Rule("writing:rewording", WR, 3, _strong_writing_verb, "a proofread/paraphrase/summary request"),
    Rule("writing:naming", WR, 3, _naming, "naming or slogan ideas"),
    Rule("writing:prose-noun", WR, 1, _mentions_prose, "a prose artifact"),
    Rule("fact:wh-question", FL, 3, _short_fact_question, "a short who/what/when/where/which question"),
    Rule("fact:wh-question-long", FL, 2, _long_fact_question, "a who/what/when/where/which question"),
    Rule("fact:wh-question-weak", FL, 1, _weak_fact_question, "a wh-question about code or a comparison"),
    Rule("fact:quantity", FL, 3, _quantity_question, "a how-many/how-much question"),
    Rule("fact:definition", FL, 3, _definition, "a definition or spelling question"),
    Rule("fact:fact-words", FL, 1, _mentions_fact, "a fact-seeking keyword"),
)
"""All evidence rules; documented one by one in docs/CLASSIFIER_AND_SIGNALS.md."""

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
    user_texts: list[str] = []
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            user_texts.append(message_text(message))
            if len(user_texts) > MAX_EARLIER_USER_MESSAGES:
                break
    if not user_texts:
        return Classification(GENERAL, "general:no-user-message", "the request has no user message", False)

    for age, text in enumerate(user_texts):
        found = _classify_text(_own_request(text))
        if found is None:
            continue
        if age > 0:
            found = Classification(
                request_type=found.request_type,
                rule=f"inherited:{found.rule}",
                evidence=f"continues user message {age} back ({found.evidence})",
                inherited=True,
            )
        if found.request_type not in request_types:
            return Classification(
                GENERAL,
                found.rule,
                f"{found.evidence}; {found.request_type} is not learned by this router",
                found.inherited,
            )
        return found

    latest = user_texts[0]
    if latest.strip() and not _own_request(latest).strip():
        return Classification(
            GENERAL, "general:feedback-only", "only feedback, and no earlier request to continue", False
        )
    return Classification(GENERAL, "general:no-evidence", "no request-type evidence", False)
