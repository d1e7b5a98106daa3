"""Which risk categories a rule's text concerns: a keyword lexicon a reviewer can read and edit.

Each category of `cosa_guard.taxonomy` lists the words that signal it in policy text, drawn
from the category definitions (the paper's and this project's). A word ending in `*` matches any
ending ("kill*": kill, killing, killers); a space matches a space or a hyphen ("self harm":
self-harm). Matching is case-insensitive on whole words. The lexicon reads policy text, not
answers: it only proposes categories, which the reviewer confirms before signing.

`other` collects harms no config may allow (terrorism, extremism, cruelty to animals ...), so a
rule forbidding them is still tied to a category.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# One string per category, words separated by commas (see the module docstring for `*`).
_WORDS: Mapping[str, str] = {
    "financial_crime": (
        "fraud*, scam*, theft*, thief, thieves, steal*, stole*, shoplift*, robber*, burglar*, "
        "embezzl*, launder*, tax evasion, evading tax*, insider trading, brib*, forger*, forging, "
        "counterfeit*, hack*, cybercrime*, phish*, account takeover*, money mule*, skimm*, "
        "financial crime*, criminal financial, ponzi, extort*"
    ),
    "discrimination": (
        "discriminat*, hate, hateful, hatred, hate crime*, racis*, racial*, race, races, ethnic*, "
        "religio*, slur*, stereotyp*, insult*, harass*, bully*, bullie*, demean*, derogatory, "
        "humiliat*, nationalit*, bias*, sexis*, homophob*, transphob*, xenophob*, misogyn*, "
        "profanit*, curse, cursing, swear*, abusive language, verbal abuse, name calling, offensive, "
        "disrespect*, minority group*"
    ),
    "violence": (
        "violen*, kill*, murder*, assault*, gore, gory, blood*, fight*, war, wars, warfare, battle*, "
        "combat*, tortur*, kidnap*, attack*, stab*, shooting*, beat* up, beating*, injur*, wound*, "
        "dead bod*, corpse*, severed, dismember*, limb, limbs, behead*, threat*, self harm*, "
        "suicid*, hurt*, choke*, choking, poison*, atrocit*, massacre*, genocide, child abuse, "
        "physical harm"
    ),
    "drugs": (
        "drug*, narcotic*, cocaine, heroin, meth, methamphetamine, cannabis, marijuana, opioid*, "
        "opiate*, fentanyl, ecstasy, mdma, lsd, alcohol*, drunk*, smoking, cigarette*, vaping, "
        "overdos*, dose, doses, dosing, substance*, intoxicat*, inhalant*, drug checking, safer use"
    ),
    "privacy": (
        "privacy, personal information, personal data, personal details, private information, "
        "contact details, home address*, addresses, phone number*, doxx*, dox, stalk*, surveil*, "
        "spy on, spying on, confidential*, identity number*, social security, medical record*, "
        "health record*, location data, living people, real people"
    ),
    "sexual": (
        "sexual*, sexually, sex act*, sex scene*, sex work*, have sex, nud*, naked, porn*, erotic*, "
        "explicit content, revealing outfit*, infidelit*, an affair, cheat* on, adulter*, seduc*, "
        "prostitut*, human trafficking, sex trafficking, trafficking of, exploitation of minors, "
        "groom*, molest*, rape*, romantic"
    ),
    "weapons": (
        "weapon*, gun, guns, handgun*, firearm*, rifle*, pistol*, ammunition, ammo, explosive*, "
        "bomb*, grenade*, arson*, incendiar*, detonat*, molotov, knife, knives, ghost gun*, "
        "background check*"
    ),
    "other": (
        "terroris*, extremis*, propaganda, radicali*, evad* law enforcement, evad* police, "
        "dangerous activit*, unsafe practice*, dangerous medical, medical advice, animal cruelty, "
        "poach*, wildlife trade, environmental crime*, illegal logging, slavery"
    ),
}
LEXICON: Mapping[str, tuple[str, ...]] = {
    c: tuple(w.strip() for w in s.split(",")) for c, s in _WORDS.items()
}


def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    parts = (re.escape(w).replace(r"\*", r"\w*").replace(r"\ ", r"[\s-]+") for w in words)
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b", re.IGNORECASE)


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((c, _pattern(w)) for c, w in LEXICON.items())


def categories_of(text: str) -> tuple[str, ...]:
    """The category ids whose words occur in `text`, in taxonomy order."""
    return tuple(category for category, pattern in _PATTERNS if pattern.search(text))
