"""The one table of the error policy: each domain or ledger error ``code`` → its HTTP status and
the English and Ukrainian sentences a clerk or an integrator reads.

The errors themselves (:mod:`votes.errors`, :mod:`ledger.errors`) carry only their ``code`` and
their facts (``data``); a template here is a :meth:`str.format` string over those facts, or a
function of them where a sentence needs more than substitution. The texts are the HTTP contract:
``tests/api/test_problems.py`` holds every problem body byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from votes.errors import DomainError
from votes.money import Kopecks, format_uah

__all__ = ["MESSAGES", "Message", "Rendered", "english", "render"]

Facts = Mapping[str, Any]
Template = str | Callable[[Facts], str]


@dataclass(frozen=True, slots=True)
class Message:
    """How one code leaves the API.

    ``uk`` None: the Ukrainian text is the English one (never translated so far).
    ``members``: the error's ``data`` become problem+json extension members, in order.
    """

    status: int
    en: Template
    uk: Template | None = None
    members: bool = False


@dataclass(frozen=True, slots=True)
class Rendered:
    """An error as the API answers it."""

    status: int
    code: str
    en: str
    uk: str
    members: dict[str, Any]


def _fill(template: Template, facts: Facts) -> str:
    return template.format_map(facts) if isinstance(template, str) else template(facts)


_VOID_EN = {
    "void-of-void": "entry {entry} is itself a void; a void cannot be voided",
    "unknown-entry": "there is no entry {entry} in this election's log",
    "already-voided": "entry {entry} is already voided",
    "not-voidable": "entry {entry} is not a ballot, paper ballot or spoiled ballot",
}
_VOID_UK = {
    "void-of-void": "запис {entry} сам є анулюванням; анулювання не можна анулювати",
    "unknown-entry": "запису {entry} немає в журналі цих виборів",
    "already-voided": "запис {entry} уже анульовано",
    "not-voidable": "запис {entry} не є бюлетенем, паперовим чи зіпсованим бюлетенем",
}


def _void_en(facts: Facts) -> str:
    reason: str = facts["reason"]
    why = _VOID_EN.get(reason, reason)
    return "Void refused: " + why.format_map(facts) + "."


def _void_uk(facts: Facts) -> str:
    reason: str = facts["reason"]
    why = _VOID_UK.get(reason, reason)
    return "Анулювання відхилено: " + why.format_map(facts) + "."


def _rolled_back_en(facts: Facts) -> str:
    found = (
        f"holds only {facts['size']} entries"
        if facts["reason"] == "shorter"
        else f"holds a different history at size {facts['published']}"
    )
    return (
        f"The log of {facts['election']} was rolled back: this server published a checkpoint of"
        f" {facts['published']} entries, and its database {found}. No writes are accepted until"
        " the database is restored; reads still answer."
    )


def _rolled_back_uk(facts: Facts) -> str:
    return (
        f"Журнал {facts['election']} відкочено: сервер уже оприлюднив контрольну точку на"
        f" {facts['published']} записів, а база даних їй не відповідає. Запис неможливий, доки"
        " базу не відновлять; читання працює."
    )


def _entries(facts: Facts) -> str:
    return ", ".join(str(p) for p in facts["entries"])


def _disputed_en(facts: Facts) -> str:
    return (
        f"The keyings of this voter's paper ballot disagree (entries {_entries(facts)}); a "
        "supervisor must void the wrong one before anything else is entered for this voter."
    )


def _disputed_uk(facts: Facts) -> str:
    return (
        f"Внесення паперового бюлетеня цього виборця не збігаються (записи {_entries(facts)}); "
        "супервізор має анулювати хибне, перш ніж вносити щось іще для цього виборця."
    )


def _wrong_type_en(facts: Facts) -> str:
    expected = " or ".join(facts["expected"])
    return f"this endpoint takes payloads of type {expected}"


def _wrong_type_uk(facts: Facts) -> str:
    return f"ця адреса приймає лише {' або '.join(facts['expected'])}"


# Two errors answer ``not-initialised``: a log whose first entry is not an election definition
# (a sentence of the ledger's, with a Ukrainian one) and an empty log (which was never translated).
def _not_initialised_en(facts: Facts) -> str:
    if "election" in facts:
        return f"election {facts['election']!r} is empty"
    return str(facts["message"])


def _not_initialised_uk(facts: Facts) -> str:
    if "election" in facts:
        return _not_initialised_en(facts)
    return "Голосування ще не створено."


def _local(facts: Facts) -> str:
    """The moment results open, as a reader in the election's zone says it."""
    return f"{datetime.fromisoformat(facts['results_open_at']):%Y-%m-%d %H:%M:%S}"


def _sealed_en(facts: Facts) -> str:
    return (
        f"The results of this election are sealed until voting closes at {_local(facts)} "
        f"({facts['timezone']}): until then the log's entries and the totals are not served, "
        "only turnout, checkpoints, proofs and receipts."
    )


def _sealed_uk(facts: Facts) -> str:
    return (
        f"Результати цього голосування запечатано до завершення голосування {_local(facts)} "
        f"({facts['timezone']}): доти записи журналу й підсумки не оприлюднюються, лише явка, "
        "контрольні точки, докази й квитанції."
    )


def _uah(facts: Facts, name: str) -> str:
    return format_uah(Kopecks(facts[name]))


def _over_cost_en(facts: Facts) -> str:
    return (
        f"In category {facts['category']!r} the projects a voter chooses may cost at most "
        f"{_uah(facts, 'max_total_cost_kopecks')} UAH together; with this ballot they would cost "
        f"{_uah(facts, 'total_cost_kopecks')} UAH. Remove a project from the ballot."
    )


def _over_cost_uk(facts: Facts) -> str:
    return (
        f"У категорії «{facts['category']}» обрані виборцем проєкти разом можуть коштувати не "
        f"більше {_uah(facts, 'max_total_cost_kopecks')} грн; з цим бюлетенем вони коштували б "
        f"{_uah(facts, 'total_cost_kopecks')} грн. Приберіть проєкт із бюлетеня."
    )


def _under_cost_en(facts: Facts) -> str:
    return (
        f"In category {facts['category']!r} the projects a voter chooses must cost at least "
        f"{_uah(facts, 'min_total_cost_kopecks')} UAH together; with this ballot they would cost "
        f"{_uah(facts, 'total_cost_kopecks')} UAH. Add a project to the ballot."
    )


def _under_cost_uk(facts: Facts) -> str:
    return (
        f"У категорії «{facts['category']}» обрані виборцем проєкти мають разом коштувати "
        f"щонайменше {_uah(facts, 'min_total_cost_kopecks')} грн; з цим бюлетенем вони "
        f"коштували б {_uah(facts, 'total_cost_kopecks')} грн. Додайте проєкт до бюлетеня."
    )


def _group_en(facts: Facts) -> str:
    chosen = ", ".join(facts["categories"])
    return (
        f"A voter takes part in at most {facts['limit']} categories of group {facts['group']!r}; "
        f"with this ballot this voter would take part in {len(facts['categories'])} ({chosen}). "
        "Remove the projects of one of these categories from the ballot."
    )


def _group_uk(facts: Facts) -> str:
    chosen = ", ".join(facts["categories"])
    return (
        f"Виборець може брати участь щонайбільше в {facts['limit']} категоріях групи "
        f"«{facts['group']}»; з цим бюлетенем цей виборець брав би участь у "
        f"{len(facts['categories'])} ({chosen}). Приберіть із бюлетеня проєкти однієї з цих "
        "категорій."
    )


MESSAGES: dict[str, Message] = {
    # votes/errors.py: their facts are extension members of the problem.
    "vote-refused": Message(422, "The request was refused.", "Запит відхилено.", members=True),
    "limit-exceeded": Message(
        409,
        "Category {category!r} allows at most {limit} project(s) per voter; "
        "this voter already has {already} and the ballot adds {adding}.",
        "У категорії «{category}» виборець може підтримати не більше {limit} "
        "проєкт(ів); цей виборець уже має {already}, а бюлетень додає {adding}.",
        members=True,
    ),
    "too-few-picks": Message(
        409,
        "Category {category!r} needs at least {minimum} project(s) per voter; with this "
        "ballot the voter would have {chosen}. Add projects to the ballot.",
        "У категорії «{category}» виборець має обрати щонайменше {minimum} проєкт(ів); з цим "
        "бюлетенем у нього було б {chosen}. Додайте проєкти до бюлетеня.",
        members=True,
    ),
    "over-cost-limit": Message(409, _over_cost_en, _over_cost_uk, members=True),
    "under-cost-minimum": Message(409, _under_cost_en, _under_cost_uk, members=True),
    "too-many-points-for-project": Message(
        409,
        "Category {category!r} allows at most {limit} point(s) per project; the ballot gives "
        "project {project!r} {points}. Lower its points.",
        "У категорії «{category}» одному проєкту можна дати не більше {limit} бал(ів); "
        "бюлетень дає проєкту «{project}» {points}. Зменште його бали.",
        members=True,
    ),
    "too-many-points": Message(
        409,
        "Category {category!r} allows at most {limit} point(s) per voter in all; this voter "
        "already gave {already} and with this ballot would give {total}. Lower the points.",
        "У категорії «{category}» виборець може розподілити не більше {limit} бал(ів); цей "
        "виборець уже дав {already}, а з цим бюлетенем дав би {total}. Зменште бали.",
        members=True,
    ),
    "too-few-points": Message(
        409,
        "Category {category!r} needs at least {minimum} point(s) per voter in all; with this "
        "ballot the voter would have given {total}. Add points.",
        "У категорії «{category}» виборець має розподілити щонайменше {minimum} бал(ів); з "
        "цим бюлетенем він дав би {total}. Додайте бали.",
        members=True,
    ),
    "ranking-exists": Message(
        409,
        "This voter already has a ranking in category {category!r}; rankings do not combine, "
        "so a second one is refused. To replace it, a supervisor voids the first ballot.",
        "Цей виборець уже має рейтинг у категорії «{category}»; рейтинги не поєднуються, тож "
        "другий відхилено. Щоб замінити його, супервізор анулює перший бюлетень.",
        members=True,
    ),
    "too-many-categories": Message(409, _group_en, _group_uk, members=True),
    "wrong-ballot-field": Message(
        422,
        "Project {project!r} is in category {category!r}, which takes a {ballot} ballot: "
        "give it under {expected!r}, not under {field!r}.",
        "Проєкт «{project}» належить до категорії «{category}» з бюлетенем типу {ballot}: "
        "вкажіть його в «{expected}», а не в «{field}».",
        members=True,
    ),
    "project-repeated": Message(
        409,
        "Project {project!r} appears twice on the ballot or is already supported by "
        "this voter; a voter supports each project at most once.",
        "Проєкт «{project}» повторюється в бюлетені або вже підтриманий цим виборцем; "
        "кожен проєкт можна підтримати лише один раз.",
        members=True,
    ),
    "outside-window": Message(
        403,
        "Cast at {cast_at}, outside the voting window {opens} – {closes}.",
        "Час голосування {cast_at} поза періодом голосування {opens} – {closes}.",
        members=True,
    ),
    "unknown-project": Message(
        422,
        "A project on the ballot is not on this election's ballot; check the project numbers.",
        "Одного з проєктів немає в бюлетені цих виборів; перевірте номери проєктів.",
    ),
    "nonce-reused": Message(
        409,
        "Nonce {nonce} was already used for a different entry; a retry must repeat the "
        "original payload exactly, and a new entry needs a new nonce.",
        "Ідентифікатор запиту (nonce) {nonce} уже використано для іншого запису; "
        "повторний запит має точно збігатися з першим, а новий запис потребує нового nonce.",
        members=True,
    ),
    "already-voted": Message(
        409,
        "This voter has already voted; this election allows one ballot per voter.",
        "Цей виборець уже проголосував; на цих виборах дозволено лише один бюлетень.",
        members=True,
    ),
    "empty-ballot": Message(
        422,
        "The ballot supports no project; record a blank paper ballot as spoiled.",
        "Бюлетень не підтримує жодного проєкту; порожній паперовий бюлетень внесіть як зіпсований.",
        members=True,
    ),
    "bad-identity": Message(
        422,
        "The identity number must be 8 to 12 digits (spaces and dashes are ignored); "
        "check what was typed.",
        "Номер документа має складатися з 8–12 цифр (пробіли й дефіси не враховуються); "
        "перевірте введене.",
        members=True,
    ),
    "unknown-polling-point": Message(
        422,
        "The polling point named is not defined for this election.",
        "Такий пункт голосування не визначено для цих виборів.",
    ),
    "paper-deadline-passed": Message(
        403,
        "Paper ballots could be entered until {deadline}; that has passed.",
        "Паперові бюлетені можна було внести до {deadline}; цей строк минув.",
        members=True,
    ),
    "void-refused": Message(409, _void_en, _void_uk, members=True),
    "bad-payload": Message(
        422,
        "{field}: {problem}",
        "Некоректний запит, поле «{field}»: {problem}",
        members=True,
    ),
    "bad-election": Message(
        422,
        "{field}: {problem}",
        "Помилка у визначенні виборів, поле «{field}»: {problem}",
        members=True,
    ),
    "election-frozen": Message(
        409,
        "Voting opened at {opens}; the election can no longer be amended.",
        "Голосування розпочалося {opens}; змінювати вибори вже не можна.",
        members=True,
    ),
    "same-clerk": Message(
        409,
        "This voter's paper ballot is waiting for its second keying, which must come from a "
        "different clerk than {key}.",
        "Паперовий бюлетень цього виборця чекає на повторне внесення, яке має зробити "
        "інший оператор, ніж {key}.",
        members=True,
    ),
    "paper-disputed": Message(409, _disputed_en, _disputed_uk, members=True),
    "results-sealed": Message(403, _sealed_en, _sealed_uk, members=True),
    # votes/errors.py, answered without extension members.
    "wrong-type": Message(422, _wrong_type_en, _wrong_type_uk),
    "wrong-polling-point": Message(
        403,
        "this clerk key serves polling point {polling_point!r}",
        "цей ключ реєстратора належить дільниці {polling_point!r}",
    ),
    # ledger/errors.py. Ukrainian first: the clerks' language.
    "ledger-error": Message(400, "{message}"),
    "bad-envelope": Message(400, "{message}", "Запит має неправильну форму підписаного конверта."),
    "bad-key": Message(400, "{message}", "Ключ записано неправильно."),
    "bad-batch": Message(400, "{message}", 'Пакет має бути {{"envelopes": [конверт, ...]}}.'),
    "batch-too-large": Message(
        413,
        "a batch holds at most {most} envelopes; this one holds {count}. Nothing was written;"
        " send them in smaller batches",
        "Пакет містить щонайбільше {most} конвертів, а цей — {count}. Нічого не записано;"
        " надішліть їх меншими пакетами.",
        members=True,
    ),
    "bad-signature": Message(
        401,
        "the signature does not verify under the key the envelope names",
        "Підпис не збігається з ключем.",
    ),
    "unknown-key": Message(
        401,
        "the key the envelope names is not registered in this log",
        "Цей ключ не зареєстровано для голосування.",
    ),
    "key-revoked": Message(
        403,
        "key {key} was revoked at log position {at}",
        "Цей ключ відкликано; зверніться до адміністратора.",
    ),
    "role-forbidden": Message(
        403,
        "key {key} has role {role!r}, which may not write entries of this type",
        "Цей ключ не має права на таку дію.",
    ),
    "wrong-election": Message(
        422,
        "the payload names another election; this log is {expected!r}",
        "Запит стосується іншого голосування.",
    ),
    "condition-failed": Message(
        409,
        "entries matching the append condition exist after position {after}",
        "Дані виборця змінилися під час запиту; повторіть спробу.",
    ),
    "busy": Message(
        503,
        "too many concurrent ballots for this voter; retry with the same nonce",
        "забагато одночасних бюлетенів цього виборця; повторіть з тим самим nonce",
    ),
    "unknown-election": Message(
        404, "no election {election!r} here", "голосування {election!r} не знайдено"
    ),
    "log-state": Message(409, "{message}", "Запис не відповідає стану журналу."),
    "not-initialised": Message(409, _not_initialised_en, _not_initialised_uk),
    "bad-proof": Message(400, "{message}", "Неможливо надати доказ для цих розмірів журналу."),
    "bad-inclusion-proof": Message(400, "{message}", "Доказ включення не підтверджується."),
    "bad-consistency-proof": Message(400, "{message}", "Доказ узгодженості не підтверджується."),
    "bad-checkpoint": Message(400, "{message}"),
    "entry-too-large": Message(
        413,
        "The entry would be {size} bytes; the log takes entries of at most {limit} bytes "
        "(C2SP entry bundles give each entry a 16-bit length). Nothing was written; an election "
        "definition this large needs fewer or shorter texts.",
        "Запис займав би {size} байтів; журнал приймає записи до {limit} байтів (у пакетах "
        "записів C2SP довжину кожного запису подано 16 бітами). Нічого не записано; визначенню "
        "виборів такого розміру потрібно менше текстів або коротші.",
        members=True,
    ),
    "store-unavailable": Message(
        503, "{message}", "База даних тимчасово недоступна; спробуйте за хвилину."
    ),
    # 503 without Retry-After (api/problems.py): this server will never take the write, the
    # primary's servers do; a load balancer may pass it on, a client must not retry it here.
    "read-only": Message(
        503,
        "this server reads a replica of the election's database and writes nothing ({method}"
        " refused, nothing was written); send writes to the primary's servers",
        "Цей сервер читає копію бази даних і нічого не записує; надсилайте запити на запис до"
        " серверів основної бази.",
    ),
    # 500, not 503: nothing transient to wait out (no Retry-After), the operator must restore the
    # database; and not 409, since nothing in the request is at fault and changing it cannot help.
    "log-rolled-back": Message(
        500,
        _rolled_back_en,
        _rolled_back_uk,
        members=True,
    ),
}


def render(error: DomainError) -> Rendered | None:
    """``error`` as the API answers it, or None if its code has no row (a bug: answered 500)."""
    message = MESSAGES.get(error.code)
    if message is None:
        return None
    facts = error.data
    en = _fill(message.en, facts)
    uk = en if message.uk is None else _fill(message.uk, facts)
    return Rendered(message.status, error.code, en, uk, facts if message.members else {})


def english(error: DomainError) -> str:
    """The English sentence of ``error`` (the problem's ``detail``), for the CLI and logs."""
    rendered = render(error)
    return str(error) if rendered is None else rendered.en
