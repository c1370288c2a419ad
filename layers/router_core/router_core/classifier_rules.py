"""The classifier's rules as data: word families, patterns, phrase families and the rule table.

`classifier.py` is the engine. It reads the latest user message once into `Features` (section
4) using the word families and patterns here, then adds up the points of every rule of `RULES`
(section 6) whose test holds; the type with the most points wins. Everything the classifier
knows about English requests is in this module, read top to bottom:

1. word families: sets of lower-case tokens ("c++", "c#", "what's", "e-mail" stay whole);
2. structural patterns: code lines, stack traces, error names, math expressions;
3. phrase families: patterns for multi-word phrases, each run only when an anchor word is present;
4. `Features`: what the engine extracts from one message, the only input of a rule;
5. rule tests: small predicates over `Features`;
6. `RULES`: one row per rule: id, request type, points, test, and the phrase logged as evidence.

`docs/CLASSIFIER_AND_SIGNALS.md` explains every rule with examples. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ---------------------------------------------------------------------------------------------
# 1. Word families (lower-case tokens).

LANGUAGES: Final = _words(
    """python py javascript js typescript ts rust golang java kotlin swift c++ cpp c# csharp ruby php sql sqlite
    plpgsql t-sql bash shell zsh powershell haskell scala elixir erlang perl lua matlab julia dart flutter html css
    scss sass jsx tsx react vue angular svelte django flask fastapi node nodejs deno pandas numpy pytorch tensorflow
    terraform ansible solidity cobol fortran assembly verilog vhdl ocaml clojure groovy regex regexp jq awk sed vba
    latex jquery laravel nextjs webpack cmake dockerfile makefile yaml json xml objective-c f# asyncio pytest jest
    junit mocha gradle maven npm"""
)
"""Programming languages, frameworks and code tools: naming one points at code."""
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
"""Code artifacts a verb can act on ("write a function", "fix this bug")."""
AMBIGUOUS_CODE_NOUNS: Final = _words("script scripts program programs workflow workflows pipeline config configuration")
"""Code only when other code context is present ("a bash script"), else prose ("a video script")."""
CODE_CONTEXT: Final = _words(
    """file files cli terminal command commands input output automate automates automatically parse parses csv
    api directory folder folders rename download downloads scrape server database loop prints print string
    integer integers numbers array list lists json run runs compile"""
)
"""Words that make an ambiguous noun code ("a script that renames files")."""
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
"""Prose artifacts a verb can act on ("write an email", "draft a memo")."""
CREATIVE_NOUNS: Final = _words(
    "poem poems haiku limerick sonnet story stories joke jokes pun puns lyrics song rap verse ode fable fairytale "
    "screenplay tale"
)
"""Creative-writing forms."""
NAMING_NOUNS: Final = _words(
    "names slogan slogans tagline taglines titles headline headlines motto catchphrase name title"
)
"""Short texts asked for as options: names, slogans, taglines, titles."""
NAMING_IDEATION: Final = _words(
    "ideas suggestions suggest brainstorm options some catchy creative good names list alternatives"
)
"""Words that ask for options ("some catchy names", "ideas for a slogan")."""
TONE_WORDS: Final = _words(
    """concise formal informal casual professional friendly persuasive polite shorter longer clearer warmer
    punchier catchy tone grammar spelling typos wording engaging brief succinct readable flow simpler friendlier
    funnier wittier empathetic diplomatic assertive"""
)
"""Qualities of wording that a text is edited toward."""
CREATE_VERBS: Final = _words(
    """write create generate implement build make produce develop give show draft compose craft code scaffold
    construct prepare define set put whip spin come"""
)
"""Verbs that ask for something new to be made."""
WRITE_VERBS: Final = _words(
    """write draft compose rewrite edit proofread polish rephrase reword paraphrase summarize summarise shorten
    condense expand translate tighten improve revise craft pen redraft copyedit tweak create generate make produce
    give prepare come put respond reply answer turn"""
)
"""Verbs that ask for text to be written or reworked."""
STRONG_WRITING_VERBS: Final = _words("proofread paraphrase rephrase reword summarize summarise copyedit tldr translate")
"""Verbs that mean prose work on their own."""
TRANSFORM_VERBS: Final = _words(
    """refactor convert port translate rewrite optimize optimise vectorize parallelize modify change update extend
    add rename migrate clean simplify speed annotate memoize rework restructure turn"""
)
"""Verbs that change something given (code, when code is given)."""
STRONG_CODE_VERBS: Final = _words("implement refactor vectorize parallelize memoize")
"""Verbs that mean code work on their own."""
UNDERSTAND_VERBS: Final = _words(
    "explain describe understand review critique analyze analyse interpret clarify annotate walk break elaborate teach"
)
"""Verbs that ask for an explanation or a review."""
DEBUG_VERBS: Final = _words("debug fix diagnose troubleshoot trace resolve repair")
"""Verbs that ask for a fault to be found or fixed."""
EDIT_VERBS: Final = _words(
    "make rewrite rephrase reword edit polish improve fix shorten tighten proofread revise adjust change keep "
    "simplify clean tone turn"
)
"""Verbs that open an edit of wording ("make it shorter", "keep it brief")."""
DEBUG_WORDS: Final = _words(
    """bug bugs buggy broken crash crashes crashing crashed error errors exception exceptions fails failing failed
    wrong segfault traceback stacktrace hangs freezes leak leaks undefined nan doesn't isn't won't incorrect
    unexpected expected instead debug debugging always never"""
)
"""Symptoms of a failure."""
DEICTIC: Final = _words("this that these those my our following below above attached here's here")
"""Words that point at something given ("this function", "my code")."""
TECH_NAMES: Final = _words(
    """postgres postgresql mysql sqlite mongodb mongo dynamodb redis kafka rabbitmq sqs sns cassandra elasticsearch
    opensearch s3 aurora bigquery snowflake spark flink airflow django flask fastapi rails spring express nextjs
    react vue angular svelte kubernetes k8s docker terraform aws gcp azure lambda ecs eks nginx graphql grpc rest
    restful celery supabase firebase vercel heroku neo4j clickhouse timescaledb influxdb memcached etcd consul
    istio serverless microservices monolith nosql sql orm crud cqrs event-sourcing"""
)
"""Named technologies: databases, queues, clouds, frameworks, architectural styles."""
TECH_TOKENS: Final = _words(
    """git docker npm pip div css html regex api json csv xml yaml sql terminal command cli linux unix vim emacs
    vscode kubectl kubernetes k8s aws s3 ssh curl http excel spreadsheet formula conda venv virtualenv cron bash
    shell powershell github gitlab makefile cmake gradle maven cargo webpack"""
)
"""Tools and formats whose how-to questions are answered with code or commands."""
DESIGN_NOUNS: Final = _words(
    """architecture architectures microservice microservices monolith monolithic scalability scalable scaling
    infrastructure database databases schema schemas datastore cache caching queue queues broker sharding shard
    replication replicas consistency availability latency throughput tradeoff tradeoffs trade-off trade-offs
    event-driven pubsub cqrs rest restful grpc graphql websocket websockets protocol framework frameworks backend
    frontend serverless kubernetes k8s deployment multi-tenant multitenant tenancy idempotency idempotent
    load-balancer cdn api apis system systems service services pipeline pipelines etl warehouse orm authentication
    authorization oauth sso rbac fault-tolerant failover redundancy partitioning indexing modular layered stack"""
)
"""Architecture vocabulary."""
DESIGN_VERBS: Final = _words("design architect")
"""Verbs that open a design request."""
ACTION_VERBS: Final = CREATE_VERBS | WRITE_VERBS | TRANSFORM_VERBS | UNDERSTAND_VERBS
"""Verbs whose object noun decides between code and prose ("write a function" / "write an email")."""
CODE_WRITING_VERBS: Final = CREATE_VERBS | TRANSFORM_VERBS
"""Verbs that ask for code when their object is code."""
PROSE_WRITING_VERBS: Final = CREATE_VERBS | WRITE_VERBS | UNDERSTAND_VERBS
"""Verbs that ask for prose when their object is prose."""
CREATIVE_VERBS: Final = CREATE_VERBS | WRITE_VERBS | {"tell"}
"""Verbs that open a creative-writing request."""
VISUAL_OBJECTS: Final = _words(
    "logo poster flyer tattoo outfit banner icon costume garden room kitchen wedding dress interior"
)
"""Things designed visually, not as systems ("design a logo")."""
IDEATION_WORDS: Final = _words(
    """brainstorm brainstorming ideas idea features feature differentiated differentiate differentiating
    differentiator differentiators roadmap mvp usp"""
)
"""Words of product ideation."""
PRODUCT_NOUNS: Final = _words(
    "app apps application product products platform startup saas tool website site service extension plugin game "
    "dashboard marketplace"
)
"""Software products that ideation is about."""
MATH_VERBS: Final = _words(
    "solve calculate compute prove derive integrate differentiate simplify factor factorise factorize estimate"
)
"""Verbs that open a math task."""
MATH_WORDS: Final = _words(
    """equation equations integral integrals derivative derivatives theorem proof lemma probability probabilities
    combinatorics permutation permutations variance deviation bayes bayesian eigenvalue eigenvalues eigenvector
    polynomial logarithm factorial modulo percent percentage odds arithmetic algebra calculus geometry
    trigonometry statistics statistical expectation hypothesis quadratic exponential fraction fractions ratio
    sqrt median"""
)
"""Math and statistics vocabulary."""
PUZZLE_WORDS: Final = _words("puzzle riddle paradox brainteaser syllogism dilemma logic")
"""Logic puzzles."""
WH_WORDS: Final = _words("who what when where which whom whose what's whats who's whos where's wheres when's which's")
"""Question words of a fact question, contractions included."""
QUANTITY_WORDS: Final = _words(
    "many much tall old far long big large deep high fast heavy hot cold wide often early late small short"
)
"""The word after "how" in a quantity question ("how many", "how tall")."""
FACT_WORDS: Final = _words(
    """capital population president minister ceo founder founded born died invented inventor discovered located
    height tallest largest biggest longest highest smallest oldest deepest currency symbol year century author
    wrote painted directed won winner champion anniversary abbreviation acronym continent country city river
    mountain ocean planet element atomic chemical"""
)
"""Words typical of fact questions."""
CONDITIONAL_HEADS: Final = _words("if suppose assume assuming given imagine")
"""Clause openings of hypotheticals and word problems."""
HOWTO_SECOND: Final = _words("do to can would")
"""The word after "how" in a how-to question ("how do", "how to")."""
OPINION_STARTS: Final = frozenset(
    {("do", "you"), ("would", "you"), ("should", "i"), ("should", "we"), ("can", "you"), ("about",), ("if",)}
)
"""Continuations of a wh-word that ask for an opinion ("what do you think", "what if")."""
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
"""Words skipped at the start of a clause to find its head ("please", "can you", "I need to")."""
OBJECT_STOPPERS: Final = _words(
    """that which who to for about in on with from of where when so and but using by into as like than if because
    while how what why telling letting asking explaining describing announcing saying introducing declining
    confirming thanking inviting requesting summarizing showing"""
)
"""Words that end a verb's object phrase ("write an email to the Python team")."""
STOPWORDS: Final = _words(
    """a an the and or but if then so of to in on at by for with from into about as is are was were be been am do
    does did have has had i me my we us our you your he him his she her it its they them their this that these
    those there here what which who whom whose when where why how can could would should will may might must not
    no yes please just also again now very really some any all one up out it's that's i'm you're"""
)
"""Words without content: a wh-question needs at least one other word."""

# ---------------------------------------------------------------------------------------------
# 2. Structural patterns: code lines, stack traces, error names, math (compiled once).

CODE_LINE_RE: Final = re.compile(
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
"""A line that looks like code: a keyword opening, a `;`/`{` end, an assignment, a stack frame or an
error line. Two such lines (or one fence) mean code is present; they are taken out of the prose."""
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


def has_traceback(text: str) -> bool:
    """A stack trace: a marker line or a stack frame (Python, Java/JS, TypeScript errors)."""
    return any(marker in text for marker in _TRACE_MARKERS) or _TRACE_FRAME_RE.search(text) is not None


def has_error_name(text: str, lowered: str) -> bool:
    """An exception class name (`KeyError`, `NullPointerException`) or a well-known error phrase."""
    if ("Error" in text or "Exception" in text) and _ERROR_NAME_RE.search(text):
        return True
    return any(phrase in lowered for phrase in _ERROR_PHRASES)


def has_math(text: str) -> bool:
    """A math expression (`2x + 3 = 11`, `15%`, `x^2`, `sqrt(`, `∫`) in lower-cased prose."""
    return (
        _MATH_RE.search(text) is not None
        or (not text.isascii() and _MATH_SYMBOL_RE.search(text) is not None)
        or (("(" in text or "^" in text) and _MATH_FUNCTION_RE.search(text) is not None)
    )


def word_problem_head(heads: Sequence[tuple[str, ...]]) -> bool:
    """A clause opens like a word problem ("if a train ...", "how many ...")."""
    return any(h[0] in CONDITIONAL_HEADS or (h[0] == "how" and len(h) > 1 and h[1] in QUANTITY_WORDS) for h in heads)


# ---------------------------------------------------------------------------------------------
# 3. Phrase families: multi-word phrases, each searched only when one of its anchor words is a token.


@dataclass(frozen=True, slots=True)
class PhraseFamily:
    """Phrases that name one kind of request; `pattern` runs only if a word of `anchors` is present."""

    name: str
    anchors: frozenset[str]
    pattern: re.Pattern[str]
    description: str


def _family(name: str, anchors: str, pattern: str, description: str) -> PhraseFamily:
    # No leading \b: an alternation that starts with literals lets the regex engine skip ahead fast.
    return PhraseFamily(name, _words(anchors), re.compile(pattern), description)


PHRASE_FAMILIES: Final[tuple[PhraseFamily, ...]] = (
    _family(
        "whats_wrong",
        "what's whats what why",
        r"what(?:'s| is|s) (?:wrong|the (?:bug|problem|issue|error))"
        r"|why (?:does|doesn't|does not|is|isn't|am i|do i|did|won't|can't|do|are|would) (?:it|this|my|the|i)\b",
        "what is wrong with something, or why it misbehaves",
    ),
    _family(
        "tech_choice",
        "should which better vs versus when",
        r"should (?:i|we) (?:use|choose|pick|go with|switch to|adopt|migrate to|learn)"
        r"|which (?:one )?(?:is better|should (?:i|we))|better choice|vs\b|versus|or should (?:i|we)"
        r"|when (?:should i|to) use",
        "which technology to choose",
    ),
    _family(
        "design_howto",
        "design structure organize organise architect model lay scale shard partition",
        r"how (?:should|would|do|can) (?:i|we|you) (?:design|structure|organi[sz]e|architect|model|lay out|scale"
        r"|shard|partition)|best (?:way|practices?) (?:to|for) (?:design|structur|organi[sz]|architect|scal)"
        r"|system design|design (?:a|an|the|my|our) (?:\w+ )?(?:system|service|api|schema|database|architecture"
        r"|pipeline|platform|backend)",
        "how to design or structure a system",
    ),
    _family(
        "advice",
        "how what's whats what best should",
        r"how (?:should|would|do|can) (?:i|we) (?:handle|approach|deal with|manage|implement|support|ensure|avoid)"
        r"|should (?:i|we) (?:split|move|migrate|switch|break|merge|keep|go|rewrite|replace)"
        r"|what(?:'s| is|s) (?:a good|the best|the right) (?:way|approach|architecture|design|pattern|strategy|setup)"
        r"|best practices?",
        "how to approach or handle a technical concern",
    ),
    _family(
        "tradeoffs",
        "tradeoff tradeoffs trade-off trade-offs trade pros advantages",
        r"trade-?offs?|pros and cons|advantages and disadvantages",
        "trade-offs, pros and cons",
    ),
    _family(
        "compare",
        "better worse difference differences compare comparison differ",
        r"better than|worse than|differences? between|compare|comparison|differ from",
        "a comparison of two things",
    ),
    _family(
        "stepwise",
        "step step-by-step think reason happen happens intuition come",
        r"step[- ]by[- ]step|think (?:it )?through|reason (?:about|through)|what (?:would happen|happens) if"
        r"|intuition (?:behind|for)|how come",
        "step-by-step reasoning, or what would happen if",
    ),
    _family(
        "math_phrase",
        "expected standard likely chance chances odds rate",
        r"expected value|standard deviation|how likely|chances? (?:of|that)|odds (?:of|that)|rate of change",
        "a probability or statistics phrase",
    ),
    _family(
        "definition",
        "definition meaning stand spell synonym synonyms antonym antonyms",
        r"definition of|meaning of|stand for|how (?:do you|to) spell|synonyms? (?:for|of)|antonyms? (?:for|of)",
        "a meaning, an abbreviation, a spelling or a synonym",
    ),
    _family(
        "explain_work",
        "work walk eli5 explain",
        r"how (?:does|do|did) [\w' -]{1,60}? work|walk me through|eli5|explain like",
        "how something works, or a walk-through",
    ),
)
"""Every phrase family, in the order they are searched. `docs/CLASSIFIER_AND_SIGNALS.md` §1.2 gives examples."""


# ---------------------------------------------------------------------------------------------
# 4. Features: what the engine (classifier._extract) reads from one message, once.


@dataclass(frozen=True, slots=True)
class Features:
    """Evidence extracted once from one user message (bounded); the rules only read it."""

    words: frozenset[str]  # the prose's tokens (code removed), plus fence language tags
    n_words: int  # how many tokens the prose has
    heads: tuple[tuple[str, ...], ...]  # first tokens of each clause, leading fillers removed
    verbs: frozenset[str]  # first token of each head
    question: bool  # the prose has a question mark
    code_present: bool  # a fenced block or at least two code-like lines
    inline_code: bool  # an inline `code` span
    traceback: bool  # a stack trace (has_traceback)
    error_name: bool  # an exception name or an error phrase (has_error_name)
    math: bool  # a math expression outside code (has_math)
    numbers: int  # numbers in a clause that opens like a word problem, else 0
    phrases: frozenset[str]  # names of the phrase families found
    code_objects: int  # clauses "verb + code noun" ("write a function")
    prose_objects: int  # clauses "verb + prose noun" ("write an email")
    languages: bool  # a word of LANGUAGES
    code_nouns: bool  # a word of CODE_NOUNS, or an ambiguous code noun with code context
    deictic_code: bool  # "this function", "my code"
    code_ref: bool  # points at concrete code or names a programming language


# ---------------------------------------------------------------------------------------------
# 5. Rule tests. Each returns True when its evidence is present.


def _first_verb_in(t: Features, verbs: frozenset[str]) -> bool:
    return not t.verbs.isdisjoint(verbs)


def _creates_code(t: Features) -> bool:
    return t.code_objects > 0 and _first_verb_in(t, CODE_WRITING_VERBS)


def _creates_code_loosely(t: Features) -> bool:
    return (
        t.code_objects == 0
        and t.prose_objects == 0
        and _first_verb_in(t, CREATE_VERBS)
        and (t.code_nouns or t.languages)
        and not t.code_present
    )


def _transforms_code(t: Features) -> bool:
    return _first_verb_in(t, TRANSFORM_VERBS) and t.prose_objects == 0 and (t.code_present or t.inline_code)


def _asks_how_to_in_tool(t: Features) -> bool:
    howto = any(len(h) > 1 and h[0] == "how" and h[1] in HOWTO_SECOND for h in t.heads)
    tool = t.languages or not t.words.isdisjoint(TECH_TOKENS)
    return howto and tool and not t.traceback and not t.error_name


def _understanding_head(t: Features) -> bool:
    return _first_verb_in(t, UNDERSTAND_VERBS) or "explain_work" in t.phrases


def _debug_head(t: Features) -> bool:
    return _first_verb_in(t, DEBUG_VERBS) or "whats_wrong" in t.phrases


def _asks_about_code(t: Features) -> bool:
    asks = t.question or _understanding_head(t) or _debug_head(t)
    return t.code_present and asks and not _creates_code(t) and not _transforms_code(t)


def _asks_about_snippet(t: Features) -> bool:
    return t.inline_code and t.question and not _creates_code(t)


def _debugging(t: Features) -> bool:
    if _creates_code(t) or not (t.code_ref or t.code_nouns):
        return False
    symptoms = not t.words.isdisjoint(DEBUG_WORDS) or "whats_wrong" in t.phrases
    return symptoms and (t.question or _debug_head(t) or _understanding_head(t))


def _explains_code(t: Features) -> bool:
    return _understanding_head(t) and (t.code_present or t.inline_code or t.deictic_code)


def _language_concept(t: Features) -> bool:
    return (
        t.languages
        and (t.question or _understanding_head(t))
        and not _creates_code(t)
        and not _asks_how_to_in_tool(t)
        and not t.code_present
    )


def _code_request(t: Features) -> bool:
    return t.languages and t.code_nouns and not t.code_present and t.prose_objects == 0


def _design_request(t: Features) -> bool:
    designs = _first_verb_in(t, DESIGN_VERBS) or "design_howto" in t.phrases
    return designs and t.words.isdisjoint(VISUAL_OBJECTS)


def _technical(t: Features) -> bool:
    return not t.words.isdisjoint(TECH_NAMES) or not t.words.isdisjoint(DESIGN_NOUNS) or t.languages


def _technology_choice(t: Features) -> bool:
    if "tech_choice" in t.phrases:
        return _technical(t)
    # "Postgres or MongoDB for a catalog?": a question naming two technologies as alternatives.
    named = len(t.words & TECH_NAMES) + len(t.words & LANGUAGES - TECH_NAMES)
    return t.question and "or" in t.words and (named >= 2 or (named == 1 and _design_terms(t) >= 1))


def _approach_question(t: Features) -> bool:
    return "advice" in t.phrases and (_design_terms(t) >= 1 or not t.words.isdisjoint(TECH_NAMES))


def _tradeoffs(t: Features) -> bool:
    return "tradeoffs" in t.phrases and _technical(t)


def _design_terms(t: Features) -> int:
    return len(t.words & DESIGN_NOUNS)


def _product_ideation(t: Features) -> bool:
    return (
        not t.words.isdisjoint(IDEATION_WORDS)
        and not t.words.isdisjoint(PRODUCT_NOUNS)
        and t.words.isdisjoint(NAMING_NOUNS)
        and not t.code_present
    )


def _math_problem(t: Features) -> bool:
    verbs = _first_verb_in(t, MATH_VERBS) and not (t.code_ref or t.code_nouns)
    return verbs or not t.words.isdisjoint(MATH_WORDS) or "math_phrase" in t.phrases


def _word_problem(t: Features) -> bool:
    return t.numbers >= 2 and (t.question or _first_verb_in(t, MATH_VERBS))


def _explains_concept(t: Features) -> bool:
    why = any(h[0] == "why" for h in t.heads)
    return (_understanding_head(t) or why) and not t.code_ref


def _hypothetical(t: Features) -> bool:
    return t.question and _first_verb_in(t, CONDITIONAL_HEADS)


def _composes_prose(t: Features) -> bool:
    return t.prose_objects > 0 and _first_verb_in(t, PROSE_WRITING_VERBS)


def _creative(t: Features) -> bool:
    return not t.words.isdisjoint(CREATIVE_NOUNS) and _first_verb_in(t, CREATIVE_VERBS)


def _edits_tone(t: Features) -> bool:
    return not t.words.isdisjoint(TONE_WORDS) and _first_verb_in(t, EDIT_VERBS) and t.code_objects == 0


def _strong_writing_verb(t: Features) -> bool:
    return _first_verb_in(t, STRONG_WRITING_VERBS) and not t.code_present and t.code_objects == 0


def _naming(t: Features) -> bool:
    return not t.words.isdisjoint(NAMING_NOUNS) and not t.words.isdisjoint(NAMING_IDEATION)


_WH_PREPOSITIONS: Final = ("in", "on", "at", "from", "by", "since", "during", "for")


def _after_wh_word(head: tuple[str, ...]) -> tuple[str, ...] | None:
    """The words after the wh-word of a clause head that asks a wh-question, else None.

    "what is ...", "tell me who ...", "in what year ..." all count.
    """
    if head[0] in WH_WORDS:
        return head[1:]
    if len(head) > 2 and head[0] == "tell" and head[1] == "me" and head[2] in WH_WORDS:
        return head[3:]
    if len(head) > 1 and head[0] in _WH_PREPOSITIONS and head[1] in WH_WORDS:
        return head[2:]
    return None


def _asks_opinion_or_advice(rest: tuple[str, ...]) -> bool:
    """'what do you think', 'what if', 'what's wrong', 'what's a good ...': not a lookup."""
    return rest[:2] in OPINION_STARTS or rest[:1] in OPINION_STARTS or "wrong" in rest[:3] or rest[:2] in ADVICE_STARTS


def _wh_question(head: tuple[str, ...]) -> bool:
    rest = _after_wh_word(head)
    if rest is None or _asks_opinion_or_advice(rest):
        return False
    return any(w not in STOPWORDS for w in rest)


def _fact_question(t: Features) -> bool:
    return not t.code_present and any(_wh_question(h) for h in t.heads)


def _weak_fact_question(t: Features) -> bool:
    # "what's the difference between ..." and questions about code are not lookups.
    return _fact_question(t) and (t.code_nouns or t.inline_code or "compare" in t.phrases)


def _short_fact_question(t: Features) -> bool:
    return t.n_words <= 30 and _fact_question(t) and not _weak_fact_question(t)


def _long_fact_question(t: Features) -> bool:
    return t.n_words > 30 and _fact_question(t) and not _weak_fact_question(t)


def _mentions_fact(t: Features) -> bool:
    return not t.words.isdisjoint(FACT_WORDS) and not t.code_present


def _mentions_prose(t: Features) -> bool:
    return not t.words.isdisjoint(PROSE_NOUNS) and not t.code_present


def _puzzle(t: Features) -> bool:
    return not t.words.isdisjoint(PUZZLE_WORDS) or "stepwise" in t.phrases


def _quantity_question(t: Features) -> bool:
    return (
        not t.code_present
        and t.n_words <= 30
        and any(len(h) > 1 and h[0] == "how" and h[1] in QUANTITY_WORDS for h in t.heads)
    )


def _definition(t: Features) -> bool:
    return "definition" in t.phrases or ("define" in t.verbs and t.code_objects == 0)


# ---------------------------------------------------------------------------------------------
# 6. The rules. When `test` holds, `weight` points go to `request_type`; points add up per type.

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
    """Logged as the decision's `rule` when this is the strongest rule of the winning type."""
    request_type: str
    weight: int
    test: Callable[[Features], bool]
    evidence: str
    """What the rule saw, in one line; logged, so it is a fixed phrase and never user text."""


RULES: Final[tuple[Rule, ...]] = (
    # code_understanding: code, errors or a language, and a question about them
    Rule("code:traceback", CU, 5, lambda t: t.traceback, "a stack trace"),
    Rule("code:question-about-code", CU, 4, _asks_about_code, "a question about pasted code"),
    Rule("code:question-about-snippet", CU, 3, _asks_about_snippet, "a question about inline code"),
    Rule("code:error-name", CU, 3, lambda t: t.error_name, "an error or exception name"),
    Rule("code:debugging", CU, 3, _debugging, "a bug or failure to diagnose"),
    Rule("code:explain-code", CU, 3, _explains_code, "a request to explain or review code"),
    Rule("code:language-concept", CU, 2, _language_concept, "a question about a programming language"),
    Rule("code:pasted-code", CU, 2, lambda t: t.code_present, "pasted code"),
    # code_generation: code to be written or changed
    Rule("code:write-code", CG, 4, _creates_code, "a request to write code"),
    Rule("code:change-code", CG, 4, _transforms_code, "a request to change given code"),
    Rule("code:implement", CG, 3, lambda t: _first_verb_in(t, STRONG_CODE_VERBS), "an implement/refactor verb"),
    Rule("code:how-to", CG, 3, _asks_how_to_in_tool, "how to do something in a language or tool"),
    Rule("code:write-code-loose", CG, 3, _creates_code_loosely, "a request to write code"),
    Rule("code:code-in-language", CG, 2, _code_request, "a code artifact in a named language"),
    # technical_design: systems, technology choices, product features
    Rule("design:design-request", TD, 4, _design_request, "a request to design a system"),
    Rule("design:technology-choice", TD, 4, _technology_choice, "a choice between technologies"),
    Rule("design:product-ideation", TD, 4, _product_ideation, "ideation on a product's features"),
    Rule("design:tradeoffs", TD, 3, _tradeoffs, "trade-offs of a technical approach"),
    Rule("design:approach", TD, 3, _approach_question, "how to approach a technical concern"),
    Rule("design:architecture-terms", TD, 2, lambda t: _design_terms(t) >= 2, "architecture vocabulary"),
    Rule("design:architecture-terms-many", TD, 1, lambda t: _design_terms(t) >= 3, "much architecture vocabulary"),
    # analytical_reasoning: math, puzzles, explanations of why and how
    Rule("reasoning:math", AR, 4, lambda t: t.math, "a math expression"),
    Rule("reasoning:word-problem", AR, 4, _word_problem, "a word problem with numbers"),
    Rule("reasoning:math-words", AR, 3, _math_problem, "a math or statistics problem"),
    Rule("reasoning:puzzle", AR, 3, _puzzle, "a puzzle or step-by-step reasoning"),
    Rule("reasoning:explain-concept", AR, 3, _explains_concept, "a why/how explanation of a concept"),
    Rule("reasoning:comparison", AR, 2, lambda t: "compare" in t.phrases, "a comparison"),
    Rule("reasoning:hypothetical", AR, 2, _hypothetical, "a hypothetical question"),
    # writing: prose to be written, edited or named
    Rule("writing:compose", WR, 4, _composes_prose, "a request to write prose"),
    Rule("writing:creative", WR, 3, _creative, "a creative-writing request"),
    Rule("writing:edit", WR, 3, _edits_tone, "a request to change tone or wording"),
    Rule("writing:rewording", WR, 3, _strong_writing_verb, "a proofread/paraphrase/summary request"),
    Rule("writing:naming", WR, 3, _naming, "naming or slogan ideas"),
    Rule("writing:prose-noun", WR, 1, _mentions_prose, "a prose artifact"),
    # factual_lookup: who / what / when / where, quantities, definitions
    Rule("fact:wh-question", FL, 3, _short_fact_question, "a short who/what/when/where/which question"),
    Rule("fact:wh-question-long", FL, 2, _long_fact_question, "a who/what/when/where/which question"),
    Rule("fact:wh-question-weak", FL, 1, _weak_fact_question, "a wh-question about code or a comparison"),
    Rule("fact:quantity", FL, 3, _quantity_question, "a how-many/how-much question"),
    Rule("fact:definition", FL, 3, _definition, "a definition or spelling question"),
    Rule("fact:fact-words", FL, 1, _mentions_fact, "a fact-seeking keyword"),
)
"""Every evidence rule, grouped by type; the first of equal weights is the one logged. Documented one by one,
with examples, in docs/CLASSIFIER_AND_SIGNALS.md §1.3."""
