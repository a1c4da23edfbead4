"""Every domain and ledger error leaves the API as the same problem+json bytes as before the error
policy moved to one table (the expected bodies were produced by the code before the move), except
where a refusal echoed what the request carried (issue 13; tests/api/test_payload_echo.py):
unknown-project, unknown-polling-point, bad-signature, unknown-key, role-forbidden,
wrong-election and wrong-type no longer repeat the value sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api.messages import MESSAGES
from api.problems import to_problem
from ledger import errors as L
from votes import errors as V
from votes.errors import DomainError

KYIV = timezone(timedelta(hours=3))
OPENS = datetime(2018, 10, 1, 9, 0, tzinfo=KYIV)
CLOSES = datetime(2018, 10, 25, 23, 59, 59, tzinfo=KYIV)
LATE = datetime(2018, 10, 30, 12, 30, tzinfo=KYIV)
CLERK = "clerk.olena+0123abcd"
SEALED_UNTIL = datetime(2018, 10, 10, 23, 59, 59, tzinfo=KYIV)
COST = "1 600 000.00 UAH exceeds the category's maximum 1 500 000.00 UAH"

SAMPLES: dict[str, DomainError] = {
    "limit-exceeded": V.LimitExceededError("large", 2, 1, 2),
    "limit-exceeded-default": V.LimitExceededError("малі", 3, 3),
    "project-repeated": V.ProjectRepeatedError("L01"),
    "outside-window": V.OutsideWindowError(LATE, OPENS, CLOSES),
    "unknown-project": V.UnknownProjectError("L99"),
    "nonce-reused": V.NonceReusedError("0f8fad5b-d9cb-469f-a165-70867728950e"),
    "already-voted": V.AlreadyVotedError(),
    "empty-ballot": V.EmptyBallotError(),
    "bad-identity": V.BadIdentityError(),
    "unknown-polling-point": V.UnknownPollingPointError("home"),
    "paper-deadline-passed": V.PaperDeadlinePassedError(CLOSES),
    "void-refused-void-of-void": V.VoidRefusedError(3, "void-of-void"),
    "void-refused-unknown-entry": V.VoidRefusedError(40, "unknown-entry"),
    "void-refused-already-voided": V.VoidRefusedError(3, "already-voided"),
    "void-refused-not-voidable": V.VoidRefusedError(0, "not-voidable"),
    "bad-payload": V.BadPayloadError("voter", "is required"),
    "bad-election": V.ElectionDefinitionError("projects[12].cost", COST),
    "election-frozen": V.ElectionFrozenError(OPENS),
    "same-clerk": V.SameClerkError(CLERK),
    "paper-disputed": V.DisputedPaperBallotError((5, 6)),
    "vote-refused": V.VoteRefusedError(),
    "ledger-error": L.LedgerError("the log is shutting down"),
    "bad-envelope": L.EnvelopeError("payload: does not survive a JSON round trip: 'x'"),
    "bad-key": L.KeyFormatError("expected a vkey string, got 'junk'"),
    "bad-batch": L.BadBatchError("a batch is a non-empty list of signed envelopes"),
    "batch-too-large": L.BatchTooLargeError(65, 64),
    "bad-signature": L.BadSignatureError(CLERK),
    "unknown-key": L.UnknownKeyError(CLERK),
    "key-revoked": L.KeyRevokedError(CLERK, 17),
    "role-forbidden": L.RoleForbiddenError(CLERK, "clerk", "election-amended"),
    "wrong-election": L.WrongLogError("zhytomyr-2019", "kyiv-2019"),
    "condition-failed": L.ConditionFailedError(41),
    "condition-failed-none": L.ConditionFailedError(None),
    "not-initialised": L.LogNotInitialisedError("the first entry must define the election"),
    "store-unavailable": L.StoreUnavailableError("PostgreSQL: connection refused"),
    "schema-missing": L.SchemaMissingError("PostgreSQL: this database has no uchast schema"),
    "read-only": L.StoreReadOnlyError("POST"),
    "log-rolled-back": L.LogRolledBackError("zhytomyr-2018", 1207, 6, "shorter"),
    "log-rolled-back-forked": L.LogRolledBackError(
        "zhytomyr-2018", 1207, 1210, "different-history"
    ),
    "bad-proof": L.ProofError("the log has 3 entries, not 9"),
    "bad-inclusion-proof": L.InclusionProofError("leaf index 9 is not in a tree of size 3"),
    "bad-consistency-proof": L.ConsistencyProofError("consistency proof: the proof is empty"),
    "bad-checkpoint": L.CheckpointError("note carries no signature by a known key"),
    "log-state": L.LogStateError("the election is already defined in this log"),
    "unknown-election": L.UnknownElectionError("kyiv-2019"),
    "busy": L.CastingBusyError(),
    "not-initialised-empty": L.ElectionEmptyError("zhytomyr-2019"),
    "wrong-type": V.WrongEntryTypeError(("ballot", "paper-ballot"), "void"),
    "wrong-type-none": V.WrongEntryTypeError(("voter-token",), None),
    "wrong-polling-point": V.WrongPollingPointError("dilnytsia-1"),
    "results-sealed": V.ResultsSealedError(SEALED_UNTIL, "Europe/Kyiv"),
    "entry-too-large": L.EntryTooLargeError(70123, 65535),
    # issue 11: one code per ballot-kind limit.
    "too-few-picks": V.TooFewPicksError("czyzyny", 3, 2),
    "over-cost-limit": V.CostLimitExceededError("bemowo", 100000000, 120000000),
    "under-cost-minimum": V.CostTooLowError("bemowo", 50000000, 12000000),
    "too-many-points-for-project": V.ProjectPointsExceededError("toulouse", "P7", 3, 4),
    "too-many-points": V.PointsLimitExceededError("toulouse", 7, 5, 9),
    "too-few-points": V.TooFewPointsError("gdansk", 5, 3),
    "ranking-exists": V.RankingExistsError("czyzyny"),
    "too-many-categories": V.GroupLimitExceededError("districts", 1, ("north", "south")),
    "wrong-ballot-field": V.WrongBallotFieldError(
        "P7", "projects", "toulouse", "cumulative", "points"
    ),
}

# (status, body) of each sample as the API answered before the move, byte for byte.
EXPECTED: dict[str, tuple[int, str]] = {
    "limit-exceeded": (
        409,
        '{"type": "urn:uchast:problem:limit-exceeded", "title": "Limit exceeded",'
        ' "status": 409, "code": "limit-exceeded", "detail": "Category \'large\' al'
        "lows at most 2 project(s) per voter; this voter already has 1 and the ba"
        'llot adds 2.", "message_en": "Category \'large\' allows at most 2 project('
        's) per voter; this voter already has 1 and the ballot adds 2.", "message'
        '_uk": "У категорії «large» виборець може підтримати не більше 2 проєкт(і'
        'в); цей виборець уже має 1, а бюлетень додає 2.", "category": "large", "'
        'limit": 2, "already": 1, "adding": 2}',
    ),
    "limit-exceeded-default": (
        409,
        '{"type": "urn:uchast:problem:limit-exceeded", "title": "Limit exceeded",'
        ' "status": 409, "code": "limit-exceeded", "detail": "Category \'малі\' all'
        "ows at most 3 project(s) per voter; this voter already has 3 and the bal"
        'lot adds 0.", "message_en": "Category \'малі\' allows at most 3 project(s)'
        ' per voter; this voter already has 3 and the ballot adds 0.", "message_u'
        'k": "У категорії «малі» виборець може підтримати не більше 3 проєкт(ів);'
        ' цей виборець уже має 3, а бюлетень додає 0.", "category": "малі", "limi'
        't": 3, "already": 3, "adding": 0}',
    ),
    "project-repeated": (
        409,
        '{"type": "urn:uchast:problem:project-repeated", "title": "Project repeat'
        'ed", "status": 409, "code": "project-repeated", "detail": "Project \'L01\''
        " appears twice on the ballot or is already supported by this voter; a vo"
        'ter supports each project at most once.", "message_en": "Project \'L01\' a'
        "ppears twice on the ballot or is already supported by this voter; a vote"
        'r supports each project at most once.", "message_uk": "Проєкт «L01» повт'
        "орюється в бюлетені або вже підтриманий цим виборцем; кожен проєкт можна"
        ' підтримати лише один раз.", "project": "L01"}',
    ),
    "outside-window": (
        403,
        '{"type": "urn:uchast:problem:outside-window", "title": "Outside window",'
        ' "status": 403, "code": "outside-window", "detail": "Cast at 2018-10-30T'
        "12:30:00+03:00, outside the voting window 2018-10-01T09:00:00+03:00 – 20"
        '18-10-25T23:59:59+03:00.", "message_en": "Cast at 2018-10-30T12:30:00+03'
        ":00, outside the voting window 2018-10-01T09:00:00+03:00 – 2018-10-25T23"
        ':59:59+03:00.", "message_uk": "Час голосування 2018-10-30T12:30:00+03:00'
        " поза періодом голосування 2018-10-01T09:00:00+03:00 – 2018-10-25T23:59:"
        '59+03:00.", "cast_at": "2018-10-30T12:30:00+03:00", "opens": "2018-10-01'
        'T09:00:00+03:00", "closes": "2018-10-25T23:59:59+03:00"}',
    ),
    "unknown-project": (
        422,
        '{"type": "urn:uchast:problem:unknown-project", "title": "Unknown project'
        '", "status": 422, "code": "unknown-project", "detail": "A project on the'
        ' ballot is not on this election\'s ballot; check the project numbers.", "'
        'message_en": "A project on the ballot is not on this election\'s ballot; '
        'check the project numbers.", "message_uk": "Одного з проєктів немає в бю'
        'летені цих виборів; перевірте номери проєктів."}',
    ),
    "nonce-reused": (
        409,
        '{"type": "urn:uchast:problem:nonce-reused", "title": "Nonce reused", "st'
        'atus": 409, "code": "nonce-reused", "detail": "Nonce 0f8fad5b-d9cb-469f-'
        "a165-70867728950e was already used for a different entry; a retry must r"
        'epeat the original payload exactly, and a new entry needs a new nonce.",'
        ' "message_en": "Nonce 0f8fad5b-d9cb-469f-a165-70867728950e was already u'
        "sed for a different entry; a retry must repeat the original payload exac"
        'tly, and a new entry needs a new nonce.", "message_uk": "Ідентифікатор з'
        "апиту (nonce) 0f8fad5b-d9cb-469f-a165-70867728950e уже використано для і"
        "ншого запису; повторний запит має точно збігатися з першим, а новий запи"
        'с потребує нового nonce.", "nonce": "0f8fad5b-d9cb-469f-a165-70867728950'
        'e"}',
    ),
    "already-voted": (
        409,
        '{"type": "urn:uchast:problem:already-voted", "title": "Already voted", "'
        'status": 409, "code": "already-voted", "detail": "This voter has already'
        ' voted; this election allows one ballot per voter.", "message_en": "This'
        ' voter has already voted; this election allows one ballot per voter.", "'
        'message_uk": "Цей виборець уже проголосував; на цих виборах дозволено ли'
        'ше один бюлетень."}',
    ),
    "empty-ballot": (
        422,
        '{"type": "urn:uchast:problem:empty-ballot", "title": "Empty ballot", "st'
        'atus": 422, "code": "empty-ballot", "detail": "The ballot supports no pr'
        'oject; record a blank paper ballot as spoiled.", "message_en": "The ball'
        'ot supports no project; record a blank paper ballot as spoiled.", "messa'
        'ge_uk": "Бюлетень не підтримує жодного проєкту; порожній паперовий бюлет'
        'ень внесіть як зіпсований."}',
    ),
    "bad-identity": (
        422,
        '{"type": "urn:uchast:problem:bad-identity", "title": "Bad identity", "st'
        'atus": 422, "code": "bad-identity", "detail": "The identity number must '
        "be 8 to 12 digits (spaces and dashes are ignored); check what was typed."
        '", "message_en": "The identity number must be 8 to 12 digits (spaces and'
        ' dashes are ignored); check what was typed.", "message_uk": "Номер докум'
        "ента має складатися з 8–12 цифр (пробіли й дефіси не враховуються); пере"
        'вірте введене."}',
    ),
    "unknown-polling-point": (
        422,
        '{"type": "urn:uchast:problem:unknown-polling-point", "title": "Unknown p'
        'olling point", "status": 422, "code": "unknown-polling-point", "detail":'
        ' "The polling point named is not defined for this election.", "message_e'
        'n": "The polling point named is not defined for this election.", "messag'
        'e_uk": "Такий пункт голосування не визначено для цих виборів."}',
    ),
    "paper-deadline-passed": (
        403,
        '{"type": "urn:uchast:problem:paper-deadline-passed", "title": "Paper dea'
        'dline passed", "status": 403, "code": "paper-deadline-passed", "detail":'
        ' "Paper ballots could be entered until 2018-10-25T23:59:59+03:00; that h'
        'as passed.", "message_en": "Paper ballots could be entered until 2018-10'
        '-25T23:59:59+03:00; that has passed.", "message_uk": "Паперові бюлетені '
        'можна було внести до 2018-10-25T23:59:59+03:00; цей строк минув.", "dead'
        'line": "2018-10-25T23:59:59+03:00"}',
    ),
    "void-refused-void-of-void": (
        409,
        '{"type": "urn:uchast:problem:void-refused", "title": "Void refused", "st'
        'atus": 409, "code": "void-refused", "detail": "Void refused: entry 3 is '
        'itself a void; a void cannot be voided.", "message_en": "Void refused: e'
        'ntry 3 is itself a void; a void cannot be voided.", "message_uk": "Анулю'
        "вання відхилено: запис 3 сам є анулюванням; анулювання не можна анулюват"
        'и.", "entry": 3, "reason": "void-of-void"}',
    ),
    "void-refused-unknown-entry": (
        409,
        '{"type": "urn:uchast:problem:void-refused", "title": "Void refused", "st'
        'atus": 409, "code": "void-refused", "detail": "Void refused: there is no'
        ' entry 40 in this election\'s log.", "message_en": "Void refused: there i'
        's no entry 40 in this election\'s log.", "message_uk": "Анулювання відхил'
        'ено: запису 40 немає в журналі цих виборів.", "entry": 40, "reason": "un'
        'known-entry"}',
    ),
    "void-refused-already-voided": (
        409,
        '{"type": "urn:uchast:problem:void-refused", "title": "Void refused", "st'
        'atus": 409, "code": "void-refused", "detail": "Void refused: entry 3 is '
        'already voided.", "message_en": "Void refused: entry 3 is already voided'
        '.", "message_uk": "Анулювання відхилено: запис 3 уже анульовано.", "entr'
        'y": 3, "reason": "already-voided"}',
    ),
    "void-refused-not-voidable": (
        409,
        '{"type": "urn:uchast:problem:void-refused", "title": "Void refused", "st'
        'atus": 409, "code": "void-refused", "detail": "Void refused: entry 0 is '
        'not a ballot, paper ballot or spoiled ballot.", "message_en": "Void refu'
        'sed: entry 0 is not a ballot, paper ballot or spoiled ballot.", "message'
        '_uk": "Анулювання відхилено: запис 0 не є бюлетенем, паперовим чи зіпсов'
        'аним бюлетенем.", "entry": 0, "reason": "not-voidable"}',
    ),
    "bad-payload": (
        422,
        '{"type": "urn:uchast:problem:bad-payload", "title": "Bad payload", "stat'
        'us": 422, "code": "bad-payload", "detail": "voter: is required", "messag'
        'e_en": "voter: is required", "message_uk": "Некоректний запит, поле «vot'
        'er»: is required", "field": "voter", "problem": "is required"}',
    ),
    "bad-election": (
        422,
        '{"type": "urn:uchast:problem:bad-election", "title": "Bad election", "st'
        'atus": 422, "code": "bad-election", "detail": "projects[12].cost: 1 600 '
        '000.00 UAH exceeds the category\'s maximum 1 500 000.00 UAH", "message_en'
        '": "projects[12].cost: 1 600 000.00 UAH exceeds the category\'s maximum 1'
        ' 500 000.00 UAH", "message_uk": "Помилка у визначенні виборів, поле «pro'
        "jects[12].cost»: 1 600 000.00 UAH exceeds the category's maximum 1 500 0"
        '00.00 UAH", "field": "projects[12].cost", "problem": "1 600 000.00 UAH e'
        "xceeds the category's maximum 1 500 000.00 UAH\"}",
    ),
    "election-frozen": (
        409,
        '{"type": "urn:uchast:problem:election-frozen", "title": "Election frozen'
        '", "status": 409, "code": "election-frozen", "detail": "Voting opened at'
        ' 2018-10-01T09:00:00+03:00; the election can no longer be amended.", "me'
        'ssage_en": "Voting opened at 2018-10-01T09:00:00+03:00; the election can'
        ' no longer be amended.", "message_uk": "Голосування розпочалося 2018-10-'
        '01T09:00:00+03:00; змінювати вибори вже не можна.", "opens": "2018-10-01'
        'T09:00:00+03:00"}',
    ),
    "same-clerk": (
        409,
        '{"type": "urn:uchast:problem:same-clerk", "title": "Same clerk", "status'
        '": 409, "code": "same-clerk", "detail": "This voter\'s paper ballot is wa'
        "iting for its second keying, which must come from a different clerk than"
        ' clerk.olena+0123abcd.", "message_en": "This voter\'s paper ballot is wai'
        "ting for its second keying, which must come from a different clerk than "
        'clerk.olena+0123abcd.", "message_uk": "Паперовий бюлетень цього виборця '
        "чекає на повторне внесення, яке має зробити інший оператор, ніж clerk.ol"
        'ena+0123abcd.", "key": "clerk.olena+0123abcd"}',
    ),
    "paper-disputed": (
        409,
        '{"type": "urn:uchast:problem:paper-disputed", "title": "Paper disputed",'
        ' "status": 409, "code": "paper-disputed", "detail": "The keyings of this'
        " voter's paper ballot disagree (entries 5, 6); a supervisor must void th"
        'e wrong one before anything else is entered for this voter.", "message_e'
        'n": "The keyings of this voter\'s paper ballot disagree (entries 5, 6); a'
        " supervisor must void the wrong one before anything else is entered for "
        'this voter.", "message_uk": "Внесення паперового бюлетеня цього виборця '
        "не збігаються (записи 5, 6); супервізор має анулювати хибне, перш ніж вн"
        'осити щось іще для цього виборця.", "entries": [5, 6]}',
    ),
    "vote-refused": (
        422,
        '{"type": "urn:uchast:problem:vote-refused", "title": "Vote refused", "st'
        'atus": 422, "code": "vote-refused", "detail": "The request was refused."'
        ', "message_en": "The request was refused.", "message_uk": "Запит відхиле'
        'но."}',
    ),
    "ledger-error": (
        400,
        '{"type": "urn:uchast:problem:ledger-error", "title": "Ledger error", "st'
        'atus": 400, "code": "ledger-error", "detail": "the log is shutting down"'
        ', "message_en": "the log is shutting down", "message_uk": "the log is sh'
        'utting down"}',
    ),
    "bad-envelope": (
        400,
        '{"type": "urn:uchast:problem:bad-envelope", "title": "Bad envelope", "st'
        'atus": 400, "code": "bad-envelope", "detail": "payload: does not survive'
        ' a JSON round trip: \'x\'", "message_en": "payload: does not survive a JSO'
        'N round trip: \'x\'", "message_uk": "Запит має неправильну форму підписано'
        'го конверта."}',
    ),
    "bad-key": (
        400,
        '{"type": "urn:uchast:problem:bad-key", "title": "Bad key", "status": 400'
        ', "code": "bad-key", "detail": "expected a vkey string, got \'junk\'", "me'
        'ssage_en": "expected a vkey string, got \'junk\'", "message_uk": "Ключ зап'
        'исано неправильно."}',
    ),
    "bad-batch": (
        400,
        '{"type": "urn:uchast:problem:bad-batch", "title": "Bad batch", "status":'
        ' 400, "code": "bad-batch", "detail": "a batch is a non-empty list of sig'
        'ned envelopes", "message_en": "a batch is a non-empty list of signed env'
        'elopes", "message_uk": "Пакет має бути {\\"envelopes\\": [конверт, ...]}."'
        "}",
    ),
    "batch-too-large": (
        413,
        '{"type": "urn:uchast:problem:batch-too-large", "title": "Batch too large'
        '", "status": 413, "code": "batch-too-large", "detail": "a batch holds at'
        " most 64 envelopes; this one holds 65. Nothing was written; send them in"
        ' smaller batches", "message_en": "a batch holds at most 64 envelopes; th'
        'is one holds 65. Nothing was written; send them in smaller batches", "me'
        'ssage_uk": "Пакет містить щонайбільше 64 конвертів, а цей — 65. Нічого н'
        'е записано; надішліть їх меншими пакетами.", "count": 65, "most": 64}',
    ),
    "bad-signature": (
        401,
        '{"type": "urn:uchast:problem:bad-signature", "title": "Bad signature", "'
        'status": 401, "code": "bad-signature", "detail": "the signature does not'
        ' verify under the key the envelope names", "message_en": "the signature '
        'does not verify under the key the envelope names", "message_uk": "Підпис'
        ' не збігається з ключем."}',
    ),
    "unknown-key": (
        401,
        '{"type": "urn:uchast:problem:unknown-key", "title": "Unknown key", "stat'
        'us": 401, "code": "unknown-key", "detail": "the key the envelope names i'
        's not registered in this log", "message_en": "the key the envelope names'
        ' is not registered in this log", "message_uk": "Цей ключ не зареєстрован'
        'о для голосування."}',
    ),
    "key-revoked": (
        403,
        '{"type": "urn:uchast:problem:key-revoked", "title": "Key revoked", "stat'
        'us": 403, "code": "key-revoked", "detail": "key clerk.olena+0123abcd was'
        ' revoked at log position 17", "message_en": "key clerk.olena+0123abcd wa'
        's revoked at log position 17", "message_uk": "Цей ключ відкликано; зверн'
        'іться до адміністратора."}',
    ),
    "role-forbidden": (
        403,
        '{"type": "urn:uchast:problem:role-forbidden", "title": "Role forbidden",'
        ' "status": 403, "code": "role-forbidden", "detail": "key clerk.olena+012'
        "3abcd has role 'clerk', which may not write entries of this type\", \"mess"
        "age_en\": \"key clerk.olena+0123abcd has role 'clerk', which may not write"
        ' entries of this type", "message_uk": "Цей ключ не має права на таку дію'
        '."}',
    ),
    "wrong-election": (
        422,
        '{"type": "urn:uchast:problem:wrong-election", "title": "Wrong election",'
        ' "status": 422, "code": "wrong-election", "detail": "the payload names a'
        'nother election; this log is \'zhytomyr-2019\'", "message_en": "the payloa'
        'd names another election; this log is \'zhytomyr-2019\'", "message_uk": "З'
        'апит стосується іншого голосування."}',
    ),
    "condition-failed": (
        409,
        '{"type": "urn:uchast:problem:condition-failed", "title": "Condition fail'
        'ed", "status": 409, "code": "condition-failed", "detail": "entries match'
        'ing the append condition exist after position 41", "message_en": "entrie'
        's matching the append condition exist after position 41", "message_uk": '
        '"Дані виборця змінилися під час запиту; повторіть спробу."}',
    ),
    "condition-failed-none": (
        409,
        '{"type": "urn:uchast:problem:condition-failed", "title": "Condition fail'
        'ed", "status": 409, "code": "condition-failed", "detail": "entries match'
        'ing the append condition exist after position None", "message_en": "entr'
        'ies matching the append condition exist after position None", "message_u'
        'k": "Дані виборця змінилися під час запиту; повторіть спробу."}',
    ),
    "not-initialised": (
        409,
        '{"type": "urn:uchast:problem:not-initialised", "title": "Not initialised'
        '", "status": 409, "code": "not-initialised", "detail": "the first entry '
        'must define the election", "message_en": "the first entry must define th'
        'e election", "message_uk": "Голосування ще не створено."}',
    ),
    "log-rolled-back": (
        500,
        '{"type": "urn:uchast:problem:log-rolled-back", "title": "Log rolled back'
        '", "status": 500, "code": "log-rolled-back", "detail": "The log of zhyto'
        "myr-2018 was rolled back: this server published a checkpoint of 1207 ent"
        "ries, and its database holds only 6 entries. No writes are accepted unti"
        'l the database is restored; reads still answer.", "message_en": "The log'
        " of zhytomyr-2018 was rolled back: this server published a checkpoint of"
        " 1207 entries, and its database holds only 6 entries. No writes are acce"
        'pted until the database is restored; reads still answer.", "message_uk":'
        ' "Журнал zhytomyr-2018 відкочено: сервер уже оприлюднив контрольну точку'
        " на 1207 записів, а база даних їй не відповідає. Запис неможливий, доки "
        'базу не відновлять; читання працює.", "election": "zhytomyr-2018", "publ'
        'ished": 1207, "size": 6, "reason": "shorter"}',
    ),
    "log-rolled-back-forked": (
        500,
        '{"type": "urn:uchast:problem:log-rolled-back", "title": "Log rolled back'
        '", "status": 500, "code": "log-rolled-back", "detail": "The log of zhyto'
        "myr-2018 was rolled back: this server published a checkpoint of 1207 ent"
        "ries, and its database holds a different history at size 1207. No writes"
        ' are accepted until the database is restored; reads still answer.", "mes'
        'sage_en": "The log of zhytomyr-2018 was rolled back: this server publish'
        "ed a checkpoint of 1207 entries, and its database holds a different hist"
        "ory at size 1207. No writes are accepted until the database is restored;"
        ' reads still answer.", "message_uk": "Журнал zhytomyr-2018 відкочено: се'
        "рвер уже оприлюднив контрольну точку на 1207 записів, а база даних їй не"
        ' відповідає. Запис неможливий, доки базу не відновлять; читання працює."'
        ', "election": "zhytomyr-2018", "published": 1207, "size": 1210, "reason"'
        ': "different-history"}',
    ),
    "store-unavailable": (
        503,
        '{"type": "urn:uchast:problem:store-unavailable", "title": "Store unavail'
        'able", "status": 503, "code": "store-unavailable", "detail": "PostgreSQL'
        ': connection refused", "message_en": "PostgreSQL: connection refused", "'
        'message_uk": "База даних тимчасово недоступна; спробуйте за хвилину."}',
    ),
    "schema-missing": (
        503,
        '{"type": "urn:uchast:problem:store-unavailable", "title": "Store unavaila'
        'ble", "status": 503, "code": "store-unavailable", "detail": "PostgreSQL: '
        'this database has no uchast schema", "message_en": "PostgreSQL: this data'
        'base has no uchast schema", "message_uk": "База даних тимчасово недоступн'
        'а; спробуйте за хвилину."}',
    ),
    "read-only": (
        503,
        '{"type": "urn:uchast:problem:read-only", "title": "Read only", "status": '
        '503, "code": "read-only", "detail": "this server reads a replica of the e'
        "lection's database and writes nothing (POST refused, nothing was written)"
        '; send writes to the primary\'s servers", "message_en": "this server reads'
        " a replica of the election's database and writes nothing (POST refused, n"
        'othing was written); send writes to the primary\'s servers", "message_uk":'
        ' "Цей сервер читає копію бази даних і нічого не записує; надсилайте запит'
        'и на запис до серверів основної бази."}',
    ),
    "bad-proof": (
        400,
        '{"type": "urn:uchast:problem:bad-proof", "title": "Bad proof", "status":'
        ' 400, "code": "bad-proof", "detail": "the log has 3 entries, not 9", "me'
        'ssage_en": "the log has 3 entries, not 9", "message_uk": "Неможливо нада'
        'ти доказ для цих розмірів журналу."}',
    ),
    "bad-inclusion-proof": (
        400,
        '{"type": "urn:uchast:problem:bad-inclusion-proof", "title": "Bad inclusi'
        'on proof", "status": 400, "code": "bad-inclusion-proof", "detail": "leaf'
        ' index 9 is not in a tree of size 3", "message_en": "leaf index 9 is not'
        ' in a tree of size 3", "message_uk": "Доказ включення не підтверджується'
        '."}',
    ),
    "bad-consistency-proof": (
        400,
        '{"type": "urn:uchast:problem:bad-consistency-proof", "title": "Bad consi'
        'stency proof", "status": 400, "code": "bad-consistency-proof", "detail":'
        ' "consistency proof: the proof is empty", "message_en": "consistency pro'
        'of: the proof is empty", "message_uk": "Доказ узгодженості не підтверджу'
        'ється."}',
    ),
    "bad-checkpoint": (
        400,
        '{"type": "urn:uchast:problem:bad-checkpoint", "title": "Bad checkpoint",'
        ' "status": 400, "code": "bad-checkpoint", "detail": "note carries no sig'
        'nature by a known key", "message_en": "note carries no signature by a kn'
        'own key", "message_uk": "note carries no signature by a known key"}',
    ),
    "log-state": (
        409,
        '{"type": "urn:uchast:problem:log-state", "title": "Log state", "status":'
        ' 409, "code": "log-state", "detail": "the election is already defined in'
        ' this log", "message_en": "the election is already defined in this log",'
        ' "message_uk": "Запис не відповідає стану журналу."}',
    ),
    # Raised as the API's own ProblemError before the move (api/service.py, api/vote_routes.py).
    "unknown-election": (
        404,
        '{"type": "urn:uchast:problem:unknown-election", "title": "Unknown electi'
        'on", "status": 404, "code": "unknown-election", "detail": "no election \''
        'kyiv-2019\' here", "message_en": "no election \'kyiv-2019\' here", "message'
        '_uk": "голосування \'kyiv-2019\' не знайдено"}',
    ),
    "busy": (
        503,
        '{"type": "urn:uchast:problem:busy", "title": "Busy", "status": 503, "cod'
        'e": "busy", "detail": "too many concurrent ballots for this voter; retry'
        ' with the same nonce", "message_en": "too many concurrent ballots for th'
        'is voter; retry with the same nonce", "message_uk": "забагато одночасних'
        ' бюлетенів цього виборця; повторіть з тим самим nonce"}',
    ),
    "not-initialised-empty": (
        409,
        '{"type": "urn:uchast:problem:not-initialised", "title": "Not initialised'
        '", "status": 409, "code": "not-initialised", "detail": "election \'zhytom'
        'yr-2019\' is empty", "message_en": "election \'zhytomyr-2019\' is empty", "'
        'message_uk": "election \'zhytomyr-2019\' is empty"}',
    ),
    "wrong-type": (
        422,
        '{"type": "urn:uchast:problem:wrong-type", "title": "Wrong type", "status'
        '": 422, "code": "wrong-type", "detail": "this endpoint takes payloads of'
        ' type ballot or paper-ballot", "message_en": "this endpoint takes payloa'
        'ds of type ballot or paper-ballot", "message_uk": "ця адреса приймає лиш'
        'е ballot або paper-ballot"}',
    ),
    "wrong-type-none": (
        422,
        '{"type": "urn:uchast:problem:wrong-type", "title": "Wrong type", "status'
        '": 422, "code": "wrong-type", "detail": "this endpoint takes payloads of'
        ' type voter-token", "message_en": "this endpoint takes payloads of type '
        'voter-token", "message_uk": "ця адреса приймає лише voter-token"}',
    ),
    "wrong-polling-point": (
        403,
        '{"type": "urn:uchast:problem:wrong-polling-point", "title": "Wrong polli'
        'ng point", "status": 403, "code": "wrong-polling-point", "detail": "this'
        ' clerk key serves polling point \'dilnytsia-1\'", "message_en": "this cler'
        'k key serves polling point \'dilnytsia-1\'", "message_uk": "цей ключ реєст'
        "ратора належить дільниці 'dilnytsia-1'\"}",
    ),
    "results-sealed": (
        403,
        '{"type": "urn:uchast:problem:results-sealed", "title": "Results sealed'
        '", "status": 403, "code": "results-sealed", "detail": "The results of '
        "this election are sealed until voting closes at 2018-10-10 23:59:59 (E"
        "urope/Kyiv): until then the log's entries and the totals are not serve"
        'd, only turnout, checkpoints, proofs and receipts.", "message_en": "Th'
        "e results of this election are sealed until voting closes at 2018-10-1"
        "0 23:59:59 (Europe/Kyiv): until then the log's entries and the totals "
        'are not served, only turnout, checkpoints, proofs and receipts.", "mes'
        'sage_uk": "Результати цього голосування запечатано до завершення голос'
        "ування 2018-10-10 23:59:59 (Europe/Kyiv): доти записи журналу й підсум"
        "ки не оприлюднюються, лише явка, контрольні точки, докази й квитанції."
        '", "results_open_at": "2018-10-10T23:59:59+03:00", "timezone": "Europe'
        '/Kyiv"}',
    ),
    "entry-too-large": (
        413,
        '{"type": "urn:uchast:problem:entry-too-large", "title": "Entry too lar'
        'ge", "status": 413, "code": "entry-too-large", "detail": "The entry wo'
        "uld be 70123 bytes; the log takes entries of at most 65535 bytes (C2SP"
        " entry bundles give each entry a 16-bit length). Nothing was written; "
        'an election definition this large needs fewer or shorter texts.", "mes'
        'sage_en": "The entry would be 70123 bytes; the log takes entries of at'
        " most 65535 bytes (C2SP entry bundles give each entry a 16-bit length)"
        ". Nothing was written; an election definition this large needs fewer o"
        'r shorter texts.", "message_uk": "Запис займав би 70123 байтів; журнал'
        " приймає записи до 65535 байтів (у пакетах записів C2SP довжину кожног"
        "о запису подано 16 бітами). Нічого не записано; визначенню виборів так"
        'ого розміру потрібно менше текстів або коротші.", "size": 70123, "limi'
        't": 65535}',
    ),
    "too-few-picks": (
        409,
        '{"type": "urn:uchast:problem:too-few-picks", "title": "Too few picks", '
        '"status": 409, "code": "too-few-picks", "detail": "Category \'czyzyny\' n'
        "eeds at least 3 project(s) per voter; with this ballot the voter would "
        'have 2. Add projects to the ballot.", "message_en": "Category \'czyzyny\''
        " needs at least 3 project(s) per voter; with this ballot the voter woul"
        'd have 2. Add projects to the ballot.", "message_uk": "У категорії «czy'
        "zyny» виборець має обрати щонайменше 3 проєкт(ів); з цим бюлетенем у нь"
        'ого було б 2. Додайте проєкти до бюлетеня.", "category": "czyzyny", "mi'
        'nimum": 3, "chosen": 2}',
    ),
    "over-cost-limit": (
        409,
        '{"type": "urn:uchast:problem:over-cost-limit", "title": "Over cost limi'
        't", "status": 409, "code": "over-cost-limit", "detail": "In category \'b'
        "emowo' the projects a voter chooses may cost at most 1 000 000.00 UAH t"
        "ogether; with this ballot they would cost 1 200 000.00 UAH. Remove a pr"
        'oject from the ballot.", "message_en": "In category \'bemowo\' the projec'
        "ts a voter chooses may cost at most 1 000 000.00 UAH together; with thi"
        "s ballot they would cost 1 200 000.00 UAH. Remove a project from the ba"
        'llot.", "message_uk": "У категорії «bemowo» обрані виборцем проєкти раз'
        "ом можуть коштувати не більше 1 000 000.00 грн; з цим бюлетенем вони ко"
        'штували б 1 200 000.00 грн. Приберіть проєкт із бюлетеня.", "category":'
        ' "bemowo", "max_total_cost_kopecks": 100000000, "total_cost_kopecks": 1'
        "20000000}",
    ),
    "under-cost-minimum": (
        409,
        '{"type": "urn:uchast:problem:under-cost-minimum", "title": "Under cost '
        'minimum", "status": 409, "code": "under-cost-minimum", "detail": "In ca'
        "tegory 'bemowo' the projects a voter chooses must cost at least 500 000"
        ".00 UAH together; with this ballot they would cost 120 000.00 UAH. Add "
        'a project to the ballot.", "message_en": "In category \'bemowo\' the proj'
        "ects a voter chooses must cost at least 500 000.00 UAH together; with t"
        "his ballot they would cost 120 000.00 UAH. Add a project to the ballot."
        '", "message_uk": "У категорії «bemowo» обрані виборцем проєкти мають ра'
        "зом коштувати щонайменше 500 000.00 грн; з цим бюлетенем вони коштували"
        ' б 120 000.00 грн. Додайте проєкт до бюлетеня.", "category": "bemowo", '
        '"min_total_cost_kopecks": 50000000, "total_cost_kopecks": 12000000}',
    ),
    "too-many-points-for-project": (
        409,
        '{"type": "urn:uchast:problem:too-many-points-for-project", "title": "To'
        'o many points for project", "status": 409, "code": "too-many-points-for'
        '-project", "detail": "Category \'toulouse\' allows at most 3 point(s) per'
        " project; the ballot gives project 'P7' 4. Lower its points.\", \"message"
        "_en\": \"Category 'toulouse' allows at most 3 point(s) per project; the b"
        'allot gives project \'P7\' 4. Lower its points.", "message_uk": "У катего'
        "рії «toulouse» одному проєкту можна дати не більше 3 бал(ів); бюлетень "
        'дає проєкту «P7» 4. Зменште його бали.", "category": "toulouse", "proje'
        'ct": "P7", "limit": 3, "points": 4}',
    ),
    "too-many-points": (
        409,
        '{"type": "urn:uchast:problem:too-many-points", "title": "Too many point'
        's", "status": 409, "code": "too-many-points", "detail": "Category \'toul'
        "ouse' allows at most 7 point(s) per voter in all; this voter already ga"
        've 5 and with this ballot would give 9. Lower the points.", "message_en'
        "\": \"Category 'toulouse' allows at most 7 point(s) per voter in all; thi"
        "s voter already gave 5 and with this ballot would give 9. Lower the poi"
        'nts.", "message_uk": "У категорії «toulouse» виборець може розподілити '
        "не більше 7 бал(ів); цей виборець уже дав 5, а з цим бюлетенем дав би 9"
        '. Зменште бали.", "category": "toulouse", "limit": 7, "already": 5, "to'
        'tal": 9}',
    ),
    "too-few-points": (
        409,
        '{"type": "urn:uchast:problem:too-few-points", "title": "Too few points"'
        ', "status": 409, "code": "too-few-points", "detail": "Category \'gdansk\''
        " needs at least 5 point(s) per voter in all; with this ballot the voter"
        ' would have given 3. Add points.", "message_en": "Category \'gdansk\' nee'
        "ds at least 5 point(s) per voter in all; with this ballot the voter wou"
        'ld have given 3. Add points.", "message_uk": "У категорії «gdansk» вибо'
        "рець має розподілити щонайменше 5 бал(ів); з цим бюлетенем він дав би 3"
        '. Додайте бали.", "category": "gdansk", "minimum": 5, "total": 3}',
    ),
    "ranking-exists": (
        409,
        '{"type": "urn:uchast:problem:ranking-exists", "title": "Ranking exists"'
        ', "status": 409, "code": "ranking-exists", "detail": "This voter alread'
        "y has a ranking in category 'czyzyny'; rankings do not combine, so a se"
        "cond one is refused. To replace it, a supervisor voids the first ballot"
        '.", "message_en": "This voter already has a ranking in category \'czyzyn'
        "y'; rankings do not combine, so a second one is refused. To replace it,"
        ' a supervisor voids the first ballot.", "message_uk": "Цей виборець уже'
        " має рейтинг у категорії «czyzyny»; рейтинги не поєднуються, тож другий"
        ' відхилено. Щоб замінити його, супервізор анулює перший бюлетень.", "ca'
        'tegory": "czyzyny"}',
    ),
    "too-many-categories": (
        409,
        '{"type": "urn:uchast:problem:too-many-categories", "title": "Too many c'
        'ategories", "status": 409, "code": "too-many-categories", "detail": "A '
        "voter takes part in at most 1 categories of group 'districts'; with thi"
        "s ballot this voter would take part in 2 (north, south). Remove the pro"
        'jects of one of these categories from the ballot.", "message_en": "A vo'
        "ter takes part in at most 1 categories of group 'districts'; with this "
        "ballot this voter would take part in 2 (north, south). Remove the proje"
        'cts of one of these categories from the ballot.", "message_uk": "Виборе'
        "ць може брати участь щонайбільше в 1 категоріях групи «districts»; з ци"
        "м бюлетенем цей виборець брав би участь у 2 (north, south). Приберіть і"
        'з бюлетеня проєкти однієї з цих категорій.", "group": "districts", "lim'
        'it": 1, "categories": ["north", "south"]}',
    ),
    "wrong-ballot-field": (
        422,
        '{"type": "urn:uchast:problem:wrong-ballot-field", "title": "Wrong ballo'
        't field", "status": 422, "code": "wrong-ballot-field", "detail": "Proje'
        "ct 'P7' is in category 'toulouse', which takes a cumulative ballot: giv"
        "e it under 'points', not under 'projects'.\", \"message_en\": \"Project 'P7"
        "' is in category 'toulouse', which takes a cumulative ballot: give it u"
        "nder 'points', not under 'projects'.\", \"message_uk\": \"Проєкт «P7» належ"
        "ить до категорії «toulouse» з бюлетенем типу cumulative: вкажіть його в"
        ' «points», а не в «projects».", "project": "P7", "field": "projects", "'
        'category": "toulouse", "ballot": "cumulative", "expected": "points"}',
    ),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_problem_body_is_unchanged(name: str) -> None:
    """Same status, same members in the same order, same texts, byte for byte."""
    response = to_problem(SAMPLES[name])
    assert response is not None
    status, body = EXPECTED[name]
    assert response.status == status
    assert response.body == body.encode()
    # Retry-After on every 503 but a read-only server's refusal: retrying there never helps.
    retry = status == 503 and name != "read-only"
    assert response.headers.get("Retry-After") == ("5" if retry else None)


def _error_types(base: type[DomainError]) -> list[type[DomainError]]:
    below = base.__subclasses__()
    return [base, *(t for sub in below for t in _error_types(sub))]


ERROR_TYPES = _error_types(DomainError)


def test_every_code_has_a_row() -> None:
    """Each error type of votes/ and ledger/ renders through the table: no code is left out."""
    assert {t.__module__ for t in ERROR_TYPES} >= {"votes.errors", "ledger.errors"}
    missing = {t.code for t in ERROR_TYPES if t is not DomainError} - set(MESSAGES)
    assert missing == set()


def test_every_error_type_has_a_sample() -> None:
    """So the byte-for-byte test above covers every error type there is."""
    sampled = {type(error) for error in SAMPLES.values()}
    assert [t.__name__ for t in ERROR_TYPES if t not in sampled] == ["DomainError"]


def test_domain_errors_say_nothing_of_http() -> None:
    """The errors carry a code and facts; status and texts are the API's."""
    for error in SAMPLES.values():
        assert isinstance(error, DomainError)
        for name in ("status", "message_en", "message_uk"):
            assert not hasattr(error, name), (type(error).__name__, name)
