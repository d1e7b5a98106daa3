"""Deterministic rules that recognise the *shape* of a config-injection attempt.

Each rule reads the normalised text (and every decoded payload) and reports `Finding`s with the
span in the original turn and a reason. A finding is *decisive* (`score >= DECISIVE`) only when
two independent cues agree: a forged privileged turn with content after it, a safety key set to
an unlocking value plus wording that says it applies now, an authority claim plus a config
claim. One cue alone (a template token quoted in a question, `System: Ubuntu 22.04` in a bug
report, a JWT someone is debugging) is reported with a low score and left to the classifier:
those are exactly the hard negatives that make regex-only detectors unusable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from cosa_guard.injection.base import Finding
from cosa_guard.normalise import Normalised, normalise
from cosa_guard.taxonomy import CATEGORY_IDS

DECISIVE = 0.95  # a finding at or above this blocks on its own
WEAK = 0.4  # evidence worth reporting, not enough alone

Hit = tuple[int, int, str, float]  # start, end (in the scanned text), reason, score
Rule = Callable[[str], Iterator[Hit]]


@dataclass(frozen=True, slots=True)
class Cue:
    """A rule's pattern plus lower-case words, one of which is inside every match.

    Most traffic never names an authority or a config: on ASCII text a substring test rules the
    pattern out in a fraction of the ~3 µs the regex engine spends trying every position of a
    short turn, which is most of the guard's per-call cost. Non-ASCII text always runs the
    pattern, because IGNORECASE folds a few non-ASCII letters (the Kelvin sign, dotless ı) onto
    ASCII ones where `str.lower` does not. A test checks every match contains one of the words.
    """

    pattern: re.Pattern[str]
    words: tuple[str, ...]

    def finditer(self, text: str, lowered: str) -> Iterator[re.Match[str]]:
        if text.isascii():
            for word in self.words:  # a plain loop: twice as fast as any() over a generator
                if word in lowered:
                    break
            else:
                return iter(())
        return self.pattern.finditer(text)


# --- chat templates -----------------------------------------------------------------------------

_ROLE = r"(system|developer|assistant|model|ipython|tool|user|human)"
_TEMPLATE_TOKENS: dict[str, str] = {
    "ChatML/Qwen": r"<\|im_(?:start|end|sep)\|>",
    "Llama 3": r"<\|(?:begin_of_text|start_header_id|end_header_id|eot_id|eom_id|python_tag)\|>",
    "Llama 2/Mistral": r"\[/?INST\]|<</?SYS>>",
    "Mistral": r"\[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_RESULTS|TOOL_CALLS)\]",
    "Gemma": r"<(?:start|end)_of_turn>",
    "Phi": r"<\|(?:system|user|assistant|end|endoftext)\|>",
    "DeepSeek": r"<\|(?:begin|end)[▁_ ]of[▁_ ]sentence\|>|<\|(?:User|Assistant)\|>",
}
_ANY_TOKEN = re.compile("|".join(f"(?:{p})" for p in _TEMPLATE_TOKENS.values()))
_FAMILY = [(name, re.compile(p)) for name, p in _TEMPLATE_TOKENS.items()]
# Headers that open a turn for a privileged role, per family.
_PRIVILEGED_OPEN = re.compile(
    r"<\|im_start\|>\s*(?P<a>system|developer|assistant)\b"
    r"|<\|start_header_id\|>\s*(?P<b>system|ipython|assistant)\s*<\|end_header_id\|>"
    r"|(?P<c><<SYS>>)"
    r"|(?P<d>\[SYSTEM_PROMPT\])"
    r"|<start_of_turn>\s*(?P<e>system|model)\b"
    r"|<\|(?P<f>system|assistant)\|>"
    r"|<\|(?P<g>Assistant)\|>"
    r"|<\|begin[▁_ ]of[▁_ ]sentence\|>(?P<h>)"
    r"|(?P<i>\[/INST\])",
    re.IGNORECASE,
)
_TURN_CLOSE = re.compile(r"<\|im_end\|>|<\|eot_id\|>|<end_of_turn>|<\|end\|>|\[/INST\]|</s>")
_TOKEN_AT_END = re.compile(f"(?:{_ANY_TOKEN.pattern})\\s*$")
_SYS_CLOSE = re.compile(r"<</SYS>>|\[/SYSTEM_PROMPT\]")
_TEMPLATING = re.compile(r"\{\{|\{%|\$\{|%\(")


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Spans inside ``` fences or `inline code`: quoting a token is how people ask about it."""
    spans = [m.span() for m in re.finditer(r"```.*?(?:```|\Z)", text, re.DOTALL)]
    spans += [m.span() for m in re.finditer(r"`[^`\n]+`", text)]
    return spans


def _inside(spans: list[tuple[int, int]], pos: int) -> bool:
    return any(s <= pos < e for s, e in spans)


def chat_template(text: str) -> Iterator[Hit]:
    if "<" not in text and "[" not in text:
        return
    code = _code_spans(text)
    opened = hit = False
    for m in _PRIVILEGED_OPEN.finditer(text):
        role = next((v for v in m.groupdict().values() if v is not None), "")
        role = {"": "system", "<<SYS>>": "system", "[SYSTEM_PROMPT]": "system", "[/INST]": "assistant"}.get(
            role, role.lower()
        )
        nxt = _ANY_TOKEN.search(text, m.end())
        body = text[m.end() : nxt.start() if nxt else len(text)]
        letters = sum(c.isalpha() for c in body)
        family = next((name for name, p in _FAMILY if p.search(m.group(0))), "chat template")
        hit = True
        line_before = text[text.rfind("\n", 0, m.start()) + 1 : m.start()]
        opens_turn = not line_before.strip() or bool(_TOKEN_AT_END.search(line_before))
        closed = nxt is not None and bool(
            _TURN_CLOSE.match(text, nxt.start()) or _SYS_CLOSE.match(text, nxt.start())
        )
        if _inside(code, m.start()) or _TEMPLATING.search(body) or letters < 12 or not (opens_turn or closed):
            yield m.start(), m.end(), f"{family} {role} header without a forged turn after it", WEAK
            continue
        opened = True
        yield m.start(), m.end() + len(body), f"forged {role} turn in {family} template syntax", DECISIVE
    if opened:
        return
    for m in _TURN_CLOSE.finditer(text):
        nxt = _ANY_TOKEN.search(text, m.end())
        if nxt and not _inside(code, m.start()) and text[m.end() : nxt.start()].strip() == "":
            yield m.start(), nxt.end(), "turn boundary forged with chat-template tokens", DECISIVE
            return
    first = None if hit else _ANY_TOKEN.search(text)
    if first:
        family = next((name for name, p in _FAMILY if p.search(first.group(0))), "chat template")
        yield first.start(), first.end(), f"{family} template token", WEAK


# --- role headers -------------------------------------------------------------------------------

_SAFETY_WORDS = re.compile(
    r"\b(?:safety|safe|guard ?rails?|content (?:filter|policy|policies)|moderation|filters?|censor\w*|"
    r"restrict\w*|refus\w*|polic(?:y|ies)|config(?:uration)?|guidelines?|rules|unrestricted|unfiltered|"
    r"uncensored|jailbr\w*|harm\w*|allow\w*|permit\w*|disabled?|override|developer mode|instructions?)\b",
    re.IGNORECASE,
)
_ROLE_HEADER = re.compile(
    r"^[ \t>*#\[(<-]*(?:new |updated |override |real |true |actual )?"
    r"(system|developer|admin(?:istrator)?|operator|root|sysadmin)"
    r"(?: ?(?:message|prompt|instructions?|override|update|notice|note|directive|config))?"
    r"[ \t*\])>]*[:：]\s*(?P<body>.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_XML_ROLE = re.compile(
    r"<(?P<tag>system(?:[_-]?(?:prompt|message|instructions?|override))?|developer|admin|policy_override)>"
    r"(?P<body>.*?)(?:</(?P=tag)>|\Z)",
    re.IGNORECASE | re.DOTALL,
)


def role_header(text: str) -> Iterator[Hit]:
    for m in _ROLE_HEADER.finditer(text) if ":" in text or "：" in text else ():
        role = m.group(1).lower()
        if _SAFETY_WORDS.search(m.group("body")) and len(_SAFETY_WORDS.findall(m.group("body"))) >= 2:
            yield m.start(), m.end(), f"'{role}:' header carrying safety instructions", DECISIVE
        else:
            yield m.start(), m.end(), f"'{role}:' header", WEAK
    for m in _XML_ROLE.finditer(text) if "<" in text else ():
        tag = m.group("tag").lower()
        if len(_SAFETY_WORDS.findall(m.group("body"))) >= 2:
            yield m.start(), m.end(), f"<{tag}> block carrying safety instructions", DECISIVE
        else:
            yield m.start(), m.end(), f"<{tag}> block", WEAK


# --- fake config blocks -------------------------------------------------------------------------

_PROTECTIVE_KEYS = re.compile(
    r"(?:safety|safe_?mode|safety_?(?:filter|checks?|mode|config|settings|level|guard|policy)|"
    r"guard_?rails?|content_?(?:filter(?:ing)?|policy|moderation|restrictions?)|moderation|filter(?:s|ing)?|"
    r"censor(?:ship)?|restrictions?|refusals?|refuse|ethics|ethical_?guidelines|alignment|"
    r"harm_?filter|nsfw_?filter|block_?harmful|enforce_?policy|policy_?enforcement|floor)"
)
_PERMISSIVE_KEYS = re.compile(
    r"(?:allow(?:ed)?(?:_?(?:categories|topics|content|harms|all|everything|list))?|allowlist|"
    r"unrestricted(?:_?mode)?|developer_?mode|dev_?mode|jailbreak(?:_?mode)?|dan(?:_?mode)?|god_?mode|"
    r"nsfw|explicit(?:_?content)?|uncensored|override(?:_?safety)?|bypass(?:_?safety|_?filters?)?|"
    r"permitted(?:_?categories)?|risk_?categories|mode|admin_?mode|trust_?level|privilege(?:s|_?level)?)"
)
_SWITCH_KEYS = re.compile(r"(?:enabled?|active|on|enforced?|strict|level|status|value)")
_OFF = re.compile(r"(?:false|off|no|none|null|nil|0|disabled?|\[\s*\]|\{\s*\}|bypass(?:ed)?|removed|lifted|"
                  r"inactive|suspended|permissive|minimal|low|lowest)")  # fmt: skip
_ON = re.compile(
    r"(?:true|on|yes|enabled?|1|all|\*|everything|any|unrestricted|unlimited|unfiltered|uncensored|"
    r"granted|full|max(?:imum)?|root|admin|god|developer|dan|jailbreak|active|permissive)"
)
_CATEGORY_WORDS = set(CATEGORY_IDS) | {"weapons", "drugs", "violence", "sexual", "self_harm", "hate", "crime"}
_KV = re.compile(
    r"""(?<![\w.-])(?P<q>["']?)(?P<key>[A-Za-z][\w.-]{1,40})(?P=q)[ \t]*(?:[:=]|=>)[ \t]*"""
    r"""(?P<value>\[[^\]\n]{0,300}\]|"[^"\n]{0,120}"|'[^'\n]{0,120}'|[^\s,;{}#"'][^\s,;}#]{0,59})""",
    re.MULTILINE,
)
_XML_KV = re.compile(r"<(?P<key>[A-Za-z][\w.-]{1,40})(?:\s[^>]*)?>(?P<value>[^<]{1,120})</(?P=key)>")
_ASSERTION = re.compile(
    r"\b(?:new|updated|revised|replacement|override|overriding|effective (?:immediately|now)|from now on|"
    r"apply|applies|applied|load(?:ed)?|active|current|replaces?|use this|following (?:config|policy)|"
    r"takes? (?:effect|precedence)|supersedes?|as of now|now|installed|activated?|deploy(?:ed)?)\b",
    re.IGNORECASE,
)
_SAFETY_HEADING = re.compile(
    r"^\s*(?:#{1,6}|\*\*|\[|<)?\s*(?:new |updated |revised |override |active )?"
    r"(?:safety|content|moderation|system|cosa) ?(?:config(?:uration)?|polic(?:y|ies)|settings|rules)\b",
    re.IGNORECASE | re.MULTILINE,
)


def _key(raw: str) -> str:
    return re.sub(r"[\s.-]+", "_", raw.strip().strip("\"'")).lower()


def _unlocks(key: str, value: str, before: str) -> str | None:
    """Why `key: value` would loosen a safety setting, or None."""
    value = value.strip().strip("\"'").lower()
    leaf = key.rsplit("_", 1)[-1] if "_" in key else key
    if _PROTECTIVE_KEYS.fullmatch(key) and _OFF.fullmatch(value):
        return f"{key}: {value}"
    scope = key + before[-80:].lower()
    if (
        _SWITCH_KEYS.fullmatch(leaf)
        and _OFF.fullmatch(value)
        and re.search(r"(safety|filter|moderation|guard|censor|restrict|polic|refus)", scope)
    ):
        return f"safety {key}: {value}"
    if _PERMISSIVE_KEYS.fullmatch(key):
        words = set(re.findall(r"[a-z_]+", value))
        if key == "mode" and not words & {
            "unrestricted",
            "developer",
            "dan",
            "jailbreak",
            "god",
            "uncensored",
        }:
            return None
        if _ON.fullmatch(value) or (value.startswith("[") and len(words & _CATEGORY_WORDS) >= 2):
            return f"{key}: {value[:40]}"
    return None


def config_block(text: str) -> Iterator[Hit]:
    if ":" not in text and "=" not in text and "<" not in text:
        return
    unlocks: list[tuple[int, int, str]] = []
    for m in _KV.finditer(text):
        why = _unlocks(_key(m.group("key")), m.group("value"), text[: m.start()])
        if why:
            unlocks.append((m.start(), m.end(), why))
    for m in _XML_KV.finditer(text):
        why = _unlocks(_key(m.group("key")), m.group("value"), text[: m.start()])
        if why:
            unlocks.append((m.start(), m.end(), why))
    if not unlocks:
        return
    start, end = min(u[0] for u in unlocks), max(u[1] for u in unlocks)
    reasons = "; ".join(u[2] for u in unlocks[:3])
    asserted = _ASSERTION.search(text) or _SAFETY_HEADING.search(text)
    if len(unlocks) >= 2 or asserted:
        yield start, end, f"config block loosening safety settings ({reasons})", DECISIVE
    else:
        yield start, end, f"safety setting in a pasted config ({reasons})", WEAK


# --- signed-looking blobs -----------------------------------------------------------------------

_BLOB = re.compile(
    r"-----BEGIN [A-Z0-9 ]*(?:SIGNATURE|SIGNED MESSAGE|PGP)[A-Z0-9 ]*-----"
    r"|\b(?:signature|sig|signed(?:_by)?|hmac|digest|ed25519|rsa|key_?id|signer|attestation|seal|"
    r"auth(?:orization)?_?token|approval_?token)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9+/=_.:-]{16,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    re.IGNORECASE,
)
_POLICY_WORDS = re.compile(
    r"\b(?:safety|polic(?:y|ies)|guard ?rails?|moderation|allow(?:ed|s)?|unrestricted|restrictions?|"
    r"categor(?:y|ies)|reviewer|authori[sz]ed|approved|cosa)\b",
    re.IGNORECASE,
)


def signed_blob(text: str) -> Iterator[Hit]:
    if not ("-----" in text or ":" in text or "=" in text or not text.isascii() or "eyj" in text.lower()):
        return
    for m in _BLOB.finditer(text):
        if len(_POLICY_WORDS.findall(text)) >= 2:
            yield m.start(), m.end(), "signature-looking blob vouching for a safety config", DECISIVE
        else:
            yield m.start(), m.end(), "signature-looking blob", WEAK
        return


# --- authority claims and override directives ---------------------------------------------------

_AUTHORITY = Cue(
    re.compile(
        r"\b(?:i am|i'm|this is|message from|sent by|on behalf of|speaking as|as|signed,?)\s+"
        r"(?:the |your |an? |its )?(?:system |lead |chief |head |senior )?"
        r"(?:admin(?:istrator)?|developer|operator|owner|creator|reviewer|safety team|trust (?:and|&) safety|"
        r"security team|openai|anthropic|deployment owner|compliance (?:team|officer)|moderator|root|"
        r"sysadmin|policy team|red team|engineer who (?:built|deployed) you)\b",
        re.IGNORECASE,
    ),
    (
        "admin",
        "developer",
        "operator",
        "owner",
        "creator",
        "reviewer",
        "team",
        "trust",
        "openai",
        "anthropic",
        "compliance",
        "moderator",
        "root",
        "engineer",
    ),
)
_CONFIG_CLAIM = Cue(
    re.compile(
        r"\b(?:new|updated|revised|amended|replacement|emergency|temporary|override|overriding|corrected|"
        r"latest|signed|approved|authori[sz]ed)\s+(?:safety |content |system |cosa |moderation )?"
        r"(?:config(?:uration)?|polic(?:y|ies)|guidelines?|rules|settings|instructions|system prompt|"
        r"directive)\b",
        re.IGNORECASE,
    ),
    ("config", "polic", "guideline", "rule", "setting", "instruction", "prompt", "directive"),
)
_STATE_CLAIM = Cue(
    re.compile(
        r"\b(?:safety|content|moderation|cosa)\s+(?:config(?:uration)?|polic(?:y|ies)|filters?|guidelines?|"
        r"settings|restrictions|rules|mode|guard ?rails?)\s+"
        r"(?:(?:has|have)\s+been|(?:is|are)(?:\s+now)?|were)\s+"
        r"(?:disabled|removed|lifted|revoked|updated|changed|suspended|turned off|replaced|overridden|"
        r"deactivated|switched off|relaxed|expired|off|null and void|void)\b",
        re.IGNORECASE,
    ),
    ("safety", "content", "moderation", "cosa"),
)
_SAFETY_SETUP = (
    r"(?:safety|content|moderation|cosa)\s+(?:config(?:uration)?|polic(?:y|ies)|filters?|guidelines?|"
    r"settings|restrictions|rules|guard ?rails?)"
)
# Says the config has lapsed without naming a change: "the safety config no longer applies",
# "these instructions take precedence over the safety policy".
_LAPSE = Cue(
    re.compile(
        rf"\b{_SAFETY_SETUP}(?:\s+(?:above|here))?\s+(?:(?:does|do|will|shall)\s+not|doesn't|don't|won't|no\s+longer)"
        r"\s+appl(?:y|ies)\b"
        rf"|\b{_SAFETY_SETUP}\s+(?:is|are)\s+no\s+longer\s+(?:in\s+effect|in\s+force|valid|active|binding|enforced)\b"
        rf"|\bnothing\s+in\s+(?:the\s+|your\s+|this\s+)?{_SAFETY_SETUP}(?:\s+above)?\s+appl(?:y|ies)\b"
        r"|\b(?:these|my|our|the following|this message's|this prompt's)\s+"
        r"(?:instructions|rules|directions)\s+"
        rf"(?:supersede|override|outrank|take\s+precedence\s+over)\s+(?:the\s+|your\s+|any\s+|all\s+)?{_SAFETY_SETUP}",
        re.IGNORECASE,
    ),
    ("safety", "content", "moderation", "cosa"),
)
_SETUP_CLAIM = re.compile(r"safety|content|moderation|cosa|system|config|polic", re.IGNORECASE)
_OVERRIDE = Cue(
    re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass|disable|deactivate|turn off|switch off|lift|suspend|"
        r"circumvent|throw out|abandon)\s+"
        r"(?P<quals>(?:(?:all|any|the|your|its|these|those|every|previous|prior|above|earlier|existing|current|"
        r"original|safety|content|system|of|that)\s+){0,4})"
        r"(?P<target>instructions?|rules|guidelines|restrictions|settings|config(?:uration)?|polic(?:y|ies)|"
        r"filters?|guard ?rails?|system prompt|programming|constraints|limitations|moderation|censorship)\b",
        re.IGNORECASE,
    ),
    (
        "instruction",
        "rule",
        "guideline",
        "restriction",
        "setting",
        "config",
        "polic",
        "filter",
        "guard",
        "prompt",
        "programming",
        "constraint",
        "limitation",
        "moderation",
        "censorship",
    ),
)
# "Ignore the rules of chess", "disable the config cache": generic nouns need a qualifier that
# points at the assistant's own setup; these targets only ever mean it.
_OWN_SETUP = frozenset(
    {
        "all", "any", "your", "its", "these", "those", "every", "previous", "prior", "above",
        "earlier", "existing", "current", "original", "safety", "content", "system",
    }
)  # fmt: skip
_ALWAYS_SETUP = re.compile(r"guard ?rails?|system prompt|programming|moderation|censorship", re.IGNORECASE)
_GRANT = Cue(
    re.compile(
        r"\b(?:all|every|any)\s+(?:risk |harm |content )?categor(?:y|ies)\s+(?:are|is)\s+(?:now\s+)?"
        r"(?:allowed|permitted|enabled|unlocked)\b"
        r"|\byou(?: are|'re) now (?:unrestricted|unfiltered|uncensored|jailbroken|free of|"
        r"in (?:developer|god|dan) mode)"
        r"|\b(?:developer|god|dan|jailbreak|unrestricted|unfiltered) mode(?: is)? (?:enabled|activated|on)\b"
        r"|\beverything is (?:now )?(?:allowed|permitted)\b",
        re.IGNORECASE,
    ),
    ("categor", "now", "mode", "everything"),
)
# The same directives in other languages, the scripts the issue names first (the English-only
# classifier cannot read them: a Russian or Arabic "ignore your safety settings" scores 0 there).
# Each names what is set aside (instructions, rules, *safety* settings) or which setting changed:
# "игнорируй его" (ignore him), "忽略所有的噪音" (ignore all the noise), "我忘记设置闹钟了" (I forgot
# to set the alarm) and "vergeet de regels niet" (don't forget the rules) are everyday sentences.
_IGNORE_VERBS = (
    r"ignor(?:a|e|ez|iere|ieren|ate)|olvida|oublie[zr]?|vergiss|dimentica|esque[çc]a|zignoruj|ignoruj|pomiń"
)
_MULTILINGUAL_ORDERS = (
    # es, fr, de, it, pt, pl: an order naming instructions or rules, or a *safety* setting
    r"ignor(?:a|e|ez|iere|ieren)\s+(?:todas\s+|toutes\s+|alle\s+|tutte\s+)?(?:las\s+|les\s+|die\s+|le\s+|as\s+)?"
    r"(?:instrucciones|instructions|anweisungen|istruzioni|instruções|regeln|reglas|règles|regole)",
    rf"(?:{_IGNORE_VERBS})\s+(?:(?:todas|toutes|alle|tutte|wszystkie|tu|ta|tes|tus|deine|ihre|tua|tue|sua|suas|votre|"
    r"vos|las|les|die|le|la|as|a|swoje|twoje)\s+){0,2}"
    r"(?:(?:configuración|política|politique|configuration|paramètres|règles|reglas|configurazione|impostazioni|"
    r"regole|configuração|regras|konfigurację|ustawienia|politykę|zasady|ograniczenia)\s+(?:de\s+|di\s+)?"
    r"(?:seguridad|sécurité|sicurezza|segurança|bezpieczeństwa)"
    r"|sicherheits(?:richtlinien?|konfiguration|einstellungen|regeln)"
    r"|(?:poprzednie\s+)?(?:instrukcje|polecenia))",
    # nl
    r"negeer\s+(?:al\s+)?(?:je\s+|jouw\s+|uw\s+|de\s+|alle\s+)?(?:vorige\s+|eerdere\s+)?(?:instructies|regels)"
    r"|(?:negeer|vergeet)\s+(?:al\s+)?(?:je\s+|jouw\s+|uw\s+|de\s+|alle\s+)?"
    r"(?:(?:vorige|eerdere)\s+instructies|veiligheids(?:instellingen|beleid|regels|configuratie))",
    # ru, uk
    r"игнорир(?:уй|уйте|овать)\s+(?:все\s+)?(?:предыдущие\s+|прошлые\s+|эти\s+|свои\s+)?"
    r"(?:инструкции|правила|указания|ограничения)",
    r"(?:про)?игнорируй(?:те)?\s+(?:все\s+|свою\s+|свои\s+|твою\s+|твои\s+|вашу\s+|ваши\s+){0,2}"
    r"(?:конфигурацию|настройки|политику|фильтры)\s+безопасности"
    r"|забудь(?:те)?\s+(?:все\s+|свою\s+|свои\s+|твою\s+|твои\s+|вашу\s+|ваши\s+){0,2}"
    r"(?:(?:конфигурацию|настройки|политику|правила|ограничения|фильтры)\s+безопасности"
    r"|(?:предыдущие|прошлые)\s+(?:инструкции|указания))",
    r"(?:про)?ігноруй(?:те)?\s+(?:всі\s+|свою\s+|свої\s+|твою\s+|твої\s+|попередні\s+){0,2}"
    r"(?:інструкції|вказівки|(?:налаштування|політику|конфігурацію|обмеження|правила)\s+безпеки)"
    r"|забудь(?:те)?\s+(?:всі\s+|свою\s+|свої\s+|твою\s+|твої\s+){0,2}"
    r"(?:попередні\s+інструкції|(?:налаштування|політику|конфігурацію|обмеження|правила)\s+безпеки)",
    # zh (simplified and traditional)
    r"(?:忽略|无视|無視)(?:之前|以上|先前|所有|全部)?的?(?:所有|全部)?的?(?:指令|指示|规则|規則|设定|設定|提示词|系统提示)",
    r"(?:忽略|无视|無視|忘记|忘記|忘掉|不要理会|不要理會|不要遵守|别管|別管)(?:掉)?"
    r"(?:你的|您的|你|之前的?|以上的?|先前的?|所有的?|全部的?|这些|這些|上面的?){0,3}"
    r"(?:内容|內容)?安全(?:配置|设置|設置|設定|设定|策略|政策|规则|規則|限制|过滤器?|過濾器?|准则|準則)",
    # ja
    r"(?:セキュリティ|安全)の?(?:設定|ポリシー|ルール|制限|フィルター?|構成)を?(?:すべて|全て)?(?:無視|忘れ|解除|無効)"
    r"|(?:以前|これまで|前|上記|すべて|全て)の(?:指示|命令|ルール|指令)を?(?:すべて|全て)?(?:無視|忘れ)",
    # ko
    r"(?:보안|안전)\s?(?:설정|정책|규칙|구성|제한|필터)(?:을|를|은|는)?\s?(?:모두\s?|전부\s?)?(?:무시|잊어|해제|비활성화)"
    r"|(?:이전|앞의|위의|모든|기존)\s?(?:지시사항|지시|지침|명령|규칙)(?:을|를|은|는)?\s?(?:모두\s?|전부\s?)?(?:무시|잊어)",
    # ar
    r"(?:تجاهل|تجاهلي|تجاهلوا|انس|انسى|انسي)[\u064b-\u0652]*\s+(?:كل\s+|جميع\s+)?"  # harakat optional
    r"(?:(?:إعدادات|اعدادات|سياسة|سياسات|قواعد|تعليمات|قيود|ضوابط|إرشادات|ارشادات|تكوين)\s+(?:ال)?(?:أمان|امان|سلامة|أمن|امن)"
    r"|(?:ال)?(?:تعليمات|قواعد|إرشادات|ارشادات|أوامر|اوامر)\s+(?:ال)?(?:سابقة|الخاصة\s+بك))",
    # fa (object first: "... را نادیده بگیر")
    r"(?:تنظیمات|سیاست|قوانین|قواعد|محدودیت|دستورالعمل|دستورات|پیکربندی)(?:[\u200c ]?(?:ها|های))?\s*"
    r"(?:امنیتی|ایمنی|امنیت|قبلی|پیشین)\s*(?:خود|خودت|خودتان)?\s*(?:را|رو)\s*"
    r"(?:نادیده\s*بگیر|فراموش\s*کن|کنار\s*بگذار)",
    # ur
    r"(?:سیکیورٹی|سکیورٹی|حفاظتی|سیفٹی|پچھلی|سابقہ|تمام)\s+"
    r"(?:سیٹنگز|سیٹنگ|ترتیبات|پالیسی|قوانین|ہدایات|ہدایتوں|پابندیوں|پابندیاں)\s+(?:کو\s+)?(?:نظر\s*انداز|بھول)",
    # hi (nukta letters either precomposed or decomposed)
    r"(?:सुरक्षा|सेफ्टी|पिछले|पहले\s+के|सभी|पुराने)\s+"
    r"(?:नीति|नीतियों|सेटिंग्स|सेटिंग|नियमों|नियम|कॉन्फ़िगरेशन|कॉन्फिगरेशन|निर्देशों|निर्देश|आदेशों|प्रतिबंधों)\s+"
    r"(?:को\s+)?(?:अनदेखा|(?:नज|नज़|ऩज)\u093c?रअंदाज|भूल)",
    # el
    r"(?:αγνόησε|αγνοήστε|ξέχασε|ξεχάστε)\s+(?:όλες\s+|όλους\s+|όλα\s+)?(?:τις\s+|τους\s+|την\s+|το\s+|τα\s+)?"
    r"(?:προηγούμενες\s+|προηγούμενους\s+)?(?:οδηγίες|κανόνες|εντολές|(?:ρυθμίσεις|πολιτική|διαμόρφωση|περιορισμούς)\s+ασφαλείας)",
    # tr
    r"(?:güvenlik|önceki|tüm|bütün)\s+(?:yapılandırmanı|yapılandırmasını|ayarlarını|politikanı|politikasını|"
    r"kurallarını|kuralları|kısıtlamalarını|filtrelerini|talimatları|talimatlarını|komutları)\s+(?:tamamen\s+)?"
    r"(?:yok\s+say|görmezden\s+gel|unut)",
    # vi
    r"(?:bỏ\s+qua|phớt\s+lờ|quên|lờ\s+đi)\s+(?:tất\s+cả\s+)?(?:các\s+|những\s+)?"
    r"(?:hướng\s+dẫn|chỉ\s+dẫn|quy\s+tắc|cấu\s+hình|cài\s+đặt|chính\s+sách|giới\s+hạn)\s+"
    r"(?:an\s+toàn|bảo\s+mật|trước\s+đó|của\s+bạn)",
    # id / ms
    r"(?:abaikan|lupakan)\s+(?:semua\s+)?(?:instruksi|aturan|konfigurasi|pengaturan|kebijakan|petunjuk|batasan)\s+"
    r"(?:keamanan|sebelumnya|kamu|anda)",
    # he
    r"(?:התעלם|התעלמי|התעלמו|שכח|שכחי)\s+(?:מכל\s+|מ)?ה?(?:הוראות|כללי|כללים|הגדרות|מדיניות)\s*ה?(?:אבטחה|בטיחות|קודמות)",
    # th
    r"(?:เพิกเฉย|ละเว้น|ไม่ต้องสนใจ|ลืม)(?:ต่อ)?(?:การ)?(?:ตั้งค่า|นโยบาย|กฎ|ข้อจำกัด|คำสั่ง)(?:ด้าน)?ความปลอดภัย"
    r"|(?:เพิกเฉย|ละเว้น|ไม่ต้องสนใจ|ลืม)(?:ต่อ)?คำสั่ง(?:ก่อนหน้า|ทั้งหมด)",
)  # fmt: skip
_MULTILINGUAL = Cue(
    re.compile("|".join(_MULTILINGUAL_ORDERS), re.IGNORECASE),
    (
        "ignor",
        "olvida",
        "oublie",
        "vergiss",
        "dimentica",
        "esque",
        "pomi",
        "negeer",
        "vergeet",
        "abaikan",
        "lupakan",
    ),
)
# "The safety settings are off", "the admin has allowed everything" in other languages: a
# declaration that restrictions were lifted, as `_GRANT` and `_STATE_CLAIM` are in English.
_EVERYTHING = (
    r"(?:todo|todas\s+las\s+categorías|tout|toutes\s+les\s+catégories|alles|alle\s+kategorien|tutto|tudo)"
)
_PERMITTED = (
    r"(?:permitido|autorizado|habilitado|liberado|autorisé|erlaubt|freigegeben|consentito|permesso|sbloccato)"
)
_LIFTED_CLAIMS = (
    rf"(?:administrador|administrateur|administrator|amministratore|admin)\s+(?:\S+\s+){{0,2}}"
    rf"(?:{_PERMITTED}\s+{_EVERYTHING}|{_EVERYTHING}\s+(?:\S+\s+)?{_PERMITTED})",
    r"(?:администратор|админ)\s+(?:уже\s+)?(?:разрешил|снял|отключил)\s+(?:всё|все(?:\s+ограничения)?|ограничения)"
    r"|(?:ограничения|(?:настройки|фильтры|политика)\s+безопасности)\s+(?:были\s+|уже\s+)?(?:сняты|отключены|удалены|отменены|отменена)"
    r"|все\s+категории\s+(?:теперь\s+)?разрешены",
    r"(?:адміністратор|адмін)\s+(?:вже\s+)?(?:дозволив|зняв)\s+(?:все|всі\s+обмеження)",
    r"安全(?:配置|设置|設置|設定|限制|过滤|過濾|策略|规则|規則)(?:已经|已經|已)?(?:被)?(?:禁用|关闭|關閉|解除|取消|移除|失效|作废|作廢)"
    r"|(?:管理员|管理員)(?:已经|已經|已)?(?:允许|允許|开放|開放|解除)了?(?:所有|全部|一切)"
    r"|所有(?:的)?(?:类别|類別|内容|內容)(?:都)?(?:已经|已經|已)?(?:被)?(?:允许|允許)",
    r"管理者が(?:すべて|全て|全部)(?:の[^。]{0,12})?を?許可|(?:すべて|全て)の(?:カテゴリー?|内容|コンテンツ)が(?:許可|解禁)",
    r"관리자가\s?(?:모든\s?것을|모두|전부)\s?(?:허용|허락)|모든\s?(?:카테고리|범주)(?:가|이)?\s?허용",
    r"(?:المسؤول|المشرف|الأدمن|الادمن)\s+(?:قد\s+)?(?:سمح|أذن|اذن)\s+ب(?:كل|جميع)"
    r"|(?:سمح|أذن|اذن)\s+(?:ال)?(?:مسؤول|مشرف|أدمن|ادمن)\s+ب(?:كل|جميع)"
    r"|(?:إعدادات|اعدادات|قيود)\s+(?:ال)?(?:أمان|امان|سلامة)\s+(?:تم\s+)?(?:تعطيل|إلغاء|الغاء|إيقاف|ايقاف|معطلة|ملغاة)",
    r"(?:ایڈمن|منتظم)\s+نے\s+(?:سب\s+کچھ|سب)\s+(?:کی\s+)?اجازت",
    r"(?:एडमिन|व्यवस्थापक|एडमिनिस्ट्रेटर)\s+ने\s+(?:सब\s+कुछ|सबकी|सभी)\s+(?:की\s+)?(?:अनुमति|इजाजत|इजाज\u093cत)",
)  # fmt: skip
_MULTILINGUAL_LIFTED = Cue(re.compile("|".join(_LIFTED_CLAIMS), re.IGNORECASE), ("admin", "amministr"))
# An authority claim or a new config named in another language is a claim, as in English: alone it
# is weak ("я администратор сайта", "la nueva política de seguridad de la UE"), with a second cue
# it decides.
_MULTILINGUAL_AUTHORITY = Cue(
    re.compile(
        "|".join((
            r"\b(?:soy|sou)\s+(?:el\s+|o\s+|tu\s+|seu\s+)?(?:administrador|desarrollador|desenvolvedor|operador)\b",
            r"\bje\s+suis\s+(?:l'|ton\s+|votre\s+|le\s+)?(?:administrateur|développeur|opérateur)",
            r"\bich\s+bin\s+(?:der\s+|dein\s+|ihr\s+)?(?:administrator|entwickler|betreiber)\b",
            r"\bsono\s+(?:l'|il\s+tuo\s+|il\s+)?(?:amministratore|sviluppatore)\b",
            r"\bjestem\s+(?:twoim\s+)?(?:administratorem|deweloperem|twórcą)",
            r"\bik\s+ben\s+(?:de\s+|je\s+)?(?:beheerder|ontwikkelaar)\b",
            r"я\s+(?:—\s+|-\s+)?(?:твой\s+|ваш\s+)?(?:администратор|разработчик|админ|оператор)"
            r"|я\s+(?:твій\s+|ваш\s+)?(?:адміністратор|розробник)",
            r"我是(?:你的|您的)?(?:系统)?(?:管理员|管理員|开发者|開發者|开发人员|開發人員|运营者|運營者)",
            r"(?:私|僕|俺)は(?:あなたの)?(?:管理者|開発者|運営者)",
            r"(?:저는|나는|제가)\s(?:당신의\s)?(?:관리자|개발자|운영자)",
            r"أنا\s+(?:ال)?(?:مسؤول|مشرف|مطور|أدمن|ادمن)|أنا\s+مطورك",
            r"من\s+(?:مدیر|ادمین|توسعه[\u200c ]?دهنده)\s+(?:سیستم\s+)?(?:هستم|ام)",
            r"میں\s+(?:ایڈمن|منتظم|ڈویلپر)\s+ہوں",
            r"मैं\s+(?:एडमिन|व्यवस्थापक|डेवलपर|एडमिनिस्ट्रेटर)\s+हू[ँं]",
            r"είμαι\s+ο\s+(?:διαχειριστής|προγραμματιστής)",
            r"\bben\s+(?:senin\s+)?(?:yönetici|geliştirici|admin)(?:yim|iyim|im)?\b|\b(?:yöneticiyim|geliştiriciyim)\b",
            r"\btôi\s+là\s+(?:quản\s+trị\s+viên|nhà\s+phát\s+triển)",
            r"\bsaya\s+(?:adalah\s+)?(?:admin|administrator|pengembang)\b",
        )),
        re.IGNORECASE,
    ),
    ("soy", "sou", "je suis", "ich bin", "sono", "jestem", "ik ben", "ben ", "saya"),
)  # fmt: skip
_MULTILINGUAL_CONFIG = Cue(
    re.compile(
        r"(?:nueva|nouvelle|neue|nuova|nova)\s+(?:configuración|configuration|konfiguration|configurazione|"
        r"configuração|política|politique|richtlinie)(?:\s+de|\s+di)?\s*(?:seguridad|sécurité|sicherheit|"
        r"sicurezza|segurança)?"
        r"|neuen?\s+sicherheits(?:richtlinien?|konfiguration|einstellungen|regeln)"
        r"|新的?安全(?:配置|策略|设置|設定|政策)|新しい(?:セキュリティ|安全)(?:ポリシー|設定|ルール)"
        r"|새로운?\s?(?:보안|안전)\s?(?:정책|설정|규칙)"
        r"|нов(?:ая|ые|ую)\s+(?:политик[аиу]|конфигураци[яю]|настройки|правила)\s+безопасности"
        r"|нов(?:а|і|у)\s+(?:політик[аиу]|конфігураці[яю]|налаштування|правила)\s+безпеки"
        r"|(?:سياسة|إعدادات|اعدادات|قواعد)\s+(?:ال)?(?:أمان|امان|سلامة)\s+(?:ال)?جديدة"
        r"|(?:سیاست|تنظیمات|قوانین)\s+(?:امنیتی|ایمنی)\s+جدید|نئی\s+(?:سیکیورٹی|حفاظتی)\s+(?:پالیسی|ترتیبات)"
        r"|नई\s+सुरक्षा\s+(?:नीति|सेटिंग्स|नियम)|νέ(?:α|ες)\s+(?:πολιτική|ρυθμίσεις)\s+ασφαλείας"
        r"|yeni\s+güvenlik\s+(?:politikası|yapılandırması|ayarları|kuralları)"
        r"|(?:chính\s+sách|cấu\s+hình|quy\s+tắc)\s+(?:an\s+toàn|bảo\s+mật)\s+mới"
        r"|(?:kebijakan|konfigurasi|aturan)\s+keamanan\s+baru"
        r"|now(?:a|e|ą)\s+(?:polityka|konfiguracja|ustawienia|zasady)\s+bezpieczeństwa"
        r"|nieuwe?\s+veiligheids(?:beleid|instellingen|configuratie)",
        re.IGNORECASE,
    ),
    ("nueva", "nouvelle", "neue", "nuova", "nova", "yeni", "kebijakan", "konfigurasi", "aturan", "nieuw"),
)
_QUESTION_START = re.compile(
    r"^\s*(?:how|what|why|when|where|which|who|can|could|should|would|is|are|does|do|did|has|have|"
    r"explain|tell me (?:how|why|what)|i(?:'m| am) (?:curious|wondering|trying to understand))\b",
    re.IGNORECASE,
)
_OWN = re.compile(r"\b(?:my|our|i (?:gave|wrote|said|sent|asked))\b", re.IGNORECASE)


_SENTENCE_ENDS = ".!?\n。؟۔।"  # the cleaned text is NFKC: fullwidth ！ and ？ are already ASCII


def _sentence(text: str, start: int, end: int) -> str:
    lo = max(text.rfind(c, 0, start) for c in _SENTENCE_ENDS) + 1
    his = [i for i in (text.find(c, end) for c in _SENTENCE_ENDS) if i >= 0]
    hi = min(his) + 1 if his else len(text)
    return text[lo:hi]


def _asks_about(text: str, start: int, end: int) -> bool:
    """A question about the thing ("how do I disable the safety filter in diffusers?"), not an order."""
    sentence = _sentence(text, start, end)
    return sentence.rstrip().endswith(("?", "؟")) or bool(_QUESTION_START.match(sentence))


OverrideFilter = Callable[[str, re.Match[str]], bool]


def _overrides_own_setup(text: str, m: re.Match[str]) -> bool:
    """In a user turn: "ignore your previous instructions", not "ignore my last message"."""
    return (
        bool(_ALWAYS_SETUP.fullmatch(m.group("target")) or _OWN_SETUP & set(m.group("quals").lower().split()))
        and not _OWN.search(text[max(0, m.start() - 5) : m.end() + 25])
        and not re.match(
            r"\s+(?:about|on|regarding|for) (?:the )?(?:format|tone|style|length)", text[m.end() :]
        )
    )


def _claims(text: str, override: OverrideFilter) -> Iterator[Hit]:
    lowered = text.lower()
    claims = [(m, "authority claim") for m in _AUTHORITY.finditer(text, lowered)]
    claims += [(m, "authority claim (non-English)") for m in _MULTILINGUAL_AUTHORITY.finditer(text, lowered)]
    configs = [(m, "claims a new config") for m in _CONFIG_CLAIM.finditer(text, lowered)]
    configs = [(m, why) for m, why in configs if _SETUP_CLAIM.search(m.group(0))]
    configs += [
        (m, "claims a new config (non-English)") for m in _MULTILINGUAL_CONFIG.finditer(text, lowered)
    ]
    states = [
        (m, "claims the safety settings changed")
        for m in _STATE_CLAIM.finditer(text, lowered)
        if not _OWN.search(text[max(0, m.start() - 12) : m.start()])
    ]
    grants = [(m, "declares restrictions lifted") for m in _GRANT.finditer(text, lowered)]
    grants += [(m, "declares the safety config void") for m in _LAPSE.finditer(text, lowered)]
    grants += [
        (m, "declares restrictions lifted (non-English)")
        for m in _MULTILINGUAL_LIFTED.finditer(text, lowered)
    ]
    overrides = [
        (m, f"orders to override {m.group('target').lower()}")
        for m in _OVERRIDE.finditer(text, lowered)
        if override(text, m)
    ]
    multi = [(m, "override directive (non-English)") for m in _MULTILINGUAL.finditer(text, lowered)]
    directives = states + grants + overrides + multi
    # An order stands alone; a claim needs a second cue ("I am the admin" + "new safety config").
    strong = {m.span() for m, _ in directives if not _asks_about(text, *m.span())}
    if (claims and (configs or directives)) or (configs and (states or grants)):
        strong |= {m.span() for m, _ in claims + configs if not _asks_about(text, *m.span())}
    for m, why in claims + configs + directives:
        yield m.start(), m.end(), why, DECISIVE if m.span() in strong else WEAK


def authority(text: str) -> Iterator[Hit]:
    return _claims(text, _overrides_own_setup)


# --- application instructions -------------------------------------------------------------------
#
# An application's own system prompt is not a user turn: it gives orders by design, and the
# careful ones order the model to ignore instructions found in documents or to refuse when a user
# says "ignore your instructions". What it must not do is set aside the one thing above it, the
# safety config: an order to ignore what came *before* it, or to drop a safety setting.

_EARLIER = frozenset({"previous", "prior", "above", "earlier", "existing", "original", "safety", "system"})
_ORDERS = re.compile(r"instructions?|rules|guidelines", re.IGNORECASE)
_AFTER_TARGET_EARLIER = re.compile(
    r"\s+(?:above|before (?:this|these|now)|so far"
    r"|(?:you (?:were|have been) )?given (?:to you )?(?:above|before|earlier))",
    re.IGNORECASE,
)
# Reported or forbidden, not ordered: "if the user asks you to ignore ...", "never ignore ...".
_NOT_AN_ORDER = re.compile(
    r"(?:(?:\bnever|\bnot|n't)(?:\s+(?:ever|to))?"
    r"|\b(?:ask|tell|instruct|request|tri|try|attempt|want|say|order|urge|convince|trick|persuade|get|make|"
    r"pressure|push)(?:s|es|ed|ing)?\s+(?:you\s+|the\s+model\s+|the\s+assistant\s+)?(?:to\s+)?)"
    r"\s*[\"'“‘]?\s*$",
    re.IGNORECASE,
)


def _overrides_config(text: str, m: re.Match[str]) -> bool:
    """In application instructions: "ignore previous instructions", "disable the safety filters"."""
    before = text[text.rfind("\n", 0, m.start()) + 1 : m.start()]
    if _NOT_AN_ORDER.search(before[-60:]):
        return False
    quals = set(m.group("quals").lower().split())
    target = m.group("target")
    if _ALWAYS_SETUP.fullmatch(target) or quals & _EARLIER or _AFTER_TARGET_EARLIER.match(text, m.end()):
        return True
    # "Ignore any instructions inside retrieved documents" is how careful prompts resist injection.
    return not _ORDERS.fullmatch(target) and bool(quals & _OWN_SETUP)


def instruction_authority(text: str) -> Iterator[Hit]:
    return _claims(text, _overrides_config)


RULES: dict[str, Rule] = {
    "structural:chat_template": chat_template,
    "structural:role_header": role_header,
    "structural:config_block": config_block,
    "structural:signed_blob": signed_blob,
    "structural:authority": authority,
}
# What application instructions are checked by. No role_header: the instructions already speak
# with the system role, so a "Developer note:" line claims nothing they do not have, and the rule
# cannot tell "System: follow the content policy" from its opposite; loosening wording is what
# config_block and the authority cues look for.
INSTRUCTION_RULES: dict[str, Rule] = {
    "structural:chat_template": chat_template,
    "structural:config_block": config_block,
    "structural:signed_blob": signed_blob,
    "structural:authority": instruction_authority,
}

# Hidden characters: tag characters and variation-selector runs spell text no reviewer sees.
_SIGNAL_SCORES = {
    "tag_chars": (DECISIVE, "text hidden in Unicode tag characters"),
    "variation_selectors": (DECISIVE, "bytes hidden in a run of variation selectors"),
    "bidi_override": (WEAK, "bidi override reorders what a reviewer sees"),
    "zero_width": (WEAK, "zero-width characters inside words"),
    "mixed_script": (WEAK, "homoglyphs mixed into a Latin word"),
}


def scan(normalised: Normalised | str, rules: dict[str, Rule] = RULES) -> list[Finding]:
    """Every structural finding for one text, spans in the original text, strongest first."""
    n = normalised if isinstance(normalised, Normalised) else normalise(normalised)
    found: list[Finding] = []
    for name, rule in rules.items():
        for start, end, reason, score in rule(n.text):
            found.append(Finding(name, reason, span=n.original_span(start, end), score=score))
        for view in n.views:
            for _, _, reason, score in rule(view.text):
                found.append(
                    Finding(name, f"{reason} (decoded from {view.kind})", span=view.span, score=score)
                )
    for signal in n.signals:
        if signal.kind in _SIGNAL_SCORES:
            score, reason = _SIGNAL_SCORES[signal.kind]
            found.append(
                Finding(f"unicode:{signal.kind}", f"{reason}: {signal.detail}", span=signal.span, score=score)
            )
    found.sort(key=lambda f: -f.score)
    return found


def with_index(findings: list[Finding], index: int) -> list[Finding]:
    return [replace(f, message_index=index) for f in findings]
