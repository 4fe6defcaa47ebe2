"""Secrets: masking them out of text, the one HMAC, and the files that hold them (foundation).

* ``text`` is the one place text is cleaned of secrets before it reaches a message, a log line or a
  reply (below);
* ``signature`` is the one HMAC-SHA256 petguard computes: agents sign their requests with it
  (``sign``, over ``signed_string``), the API checks them, webhooks sign deliveries;
* the one rule for secret files (``too_open``, ``read_private``): API tokens, agent and webhook keys,
  BMC password files, inventories with inline passwords and clouds.yaml may be read by their owner
  and their group only (0600 or 0640), never written by the group, never touched by others; every
  reader refuses the same way, with the same sentence. ``load_secrets`` reads token and key files
  (one secret, or ``NAME SECRET`` lines); ``bound_host`` says which compute host a key named
  ``agent-<host>`` speaks for.

Masking: ``text(message, *secrets)`` masks, in this order:

1. every known secret given (a BMC password, a webhook key) wherever it appears;
2. what ``oslo_utils.strutils.mask_password`` misses and petguard's peers produce: YAML-ish
   ``password: value`` (quoted, with spaces or commas, or plain to the end of the line), any key
   name containing password, passwd, token, secret or credential, quoted values with escapes;
3. what ``oslo_utils.strutils.mask_password`` recognises (``'password': '...'``, ``password=...``,
   ``<password>...</password>``, ``--password ...``, many key names OpenStack uses);
4. ``Bearer`` tokens and Fernet tokens (``gAAAAA...``).

If a known secret can still be found in the result (a one-character password, or masking that
joined its neighbours into it), the whole message is withheld: no output of ``text`` contains a
secret it was given (property-tested in tests/unit/test_secrets.py, SECRET-03). Messages are built
without secrets in the first place; this is defence in depth, applied where text comes from a
peer (Keystone, Nova, a BMC, a fence agent, a child process).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from typing import Final

from oslo_utils import strutils

from petguard.errors import ConfigError

MASK: Final = "***"
WITHHELD: Final = "(message withheld: it contained a secret)"

_KEY: Final = r"[\w.-]*(?:password|passwd|token|secret|credential)[\w.-]*"
#: ``key: value`` / ``key = value`` with the key optionally quoted; the value single-quoted (YAML ''
#: escape or backslash), double-quoted (backslash escapes), or plain: after ``:`` to the end of the
#: line or mapping (YAML plain scalars hold spaces and commas), after ``=`` to the next space.
_KEY_VALUE: Final = re.compile(
    rf"""(?P<key>["']?{_KEY}["']?\s*)
         (?:
            (?P<colon>:\s*)(?P<cq>'(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.)*"?|[^\s'"][^\r\n}}]*)
          | (?P<equals>=\s*)(?P<eq>'(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.)*"?|[^\s'"]\S*)
         )""",
    re.IGNORECASE | re.VERBOSE,
)
_BEARER: Final = re.compile(r"(\bBearer\s+)[^\s,;'\"]+", re.IGNORECASE)
_FERNET: Final = re.compile(r"gAAAAA[\w\-=]{20,}")


def text(message: str, *secrets: str) -> str:
    """``message`` with every secret in ``secrets`` and anything that looks like one masked."""
    known = [s for s in secrets if s]
    for secret in sorted(known, key=len, reverse=True):  # longest first: one may contain another
        message = message.replace(secret, MASK)
    # petguard's own shapes first: they know quoted values with escapes, which oslo's stop inside
    message = _KEY_VALUE.sub(_mask_value, message)
    message = strutils.mask_password(message, secret=MASK)
    message = _BEARER.sub(rf"\g<1>{MASK}", message)
    message = _FERNET.sub(MASK, message)
    if any(secret in message for secret in known):
        return WITHHELD
    return message


def _mask_value(match: re.Match[str]) -> str:
    separator = match.group("colon") or match.group("equals")
    value = match.group("cq") if match.group("colon") is not None else match.group("eq")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{separator}{quote}{MASK}{quote}"


#: A quoted fragment of the input in a parser's message (``found undefined alias 'hunter2'``).
_QUOTED: Final = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
#: Fragments a parser's message may keep: one character (``expected ',' or '}'``), an escape such as
#: ``'\t'`` or a token name such as ``'<scalar>'``; none of them can carry a secret.
_HARMLESS: Final = re.compile(r"^.(?:.|\\[a-z]|\\x[0-9a-f]{2}|<[a-z ]+>)?.$", re.IGNORECASE | re.DOTALL)


def parser_problem(problem: str) -> str:
    """A parser's own description of a problem, without the pieces of the input it quotes."""
    return _QUOTED.sub(lambda m: m.group(0) if _HARMLESS.match(m.group(0)) else "(a value, not shown)", problem)


def yaml_error(exc: Exception) -> str:
    """``line L, column C: what`` for a PyYAML error, never the offending line or a value of it.

    PyYAML's own text quotes the line of the input (a password, when it is on that line); this
    keeps its position and its problem only. Read by duck typing, so callers need not import yaml.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    said = "; ".join(parser_problem(str(p)) for p in parts if p) or type(exc).__name__
    return f"{where}: {said}"


def config_error(exc: Exception) -> str:
    """An oslo.config error said without the text of the file.

    oslo.config quotes a line it cannot parse (``Unexpected continuation line: ' connection =
    mysql://petguard:PASSWORD@db'``) and a value it cannot convert; a password on that line would be
    printed. This keeps the file, the line number and the problem, and masks quoted values. Read by
    duck typing (``ConfigFileParseError.config_file``, its cause's ``lineno`` and ``msg``).
    """
    cause = exc.__context__
    config_file = getattr(exc, "config_file", None)
    lineno, problem = getattr(cause, "lineno", None), getattr(cause, "msg", None)
    if config_file is not None and lineno is not None and problem is not None:
        return f"cannot parse {config_file}, line {lineno}: {parser_problem(str(problem))} (the line is not shown)"
    # "from LocationInfo(location=<...>, detail='/etc/petguard/petguard.conf')": the file, said plainly
    said = _LOCATION.sub(lambda m: f"in {m.group(1)}", str(exc))
    return parser_problem(said)


_LOCATION: Final = re.compile(r"from LocationInfo\(location=<[^>]*>, detail='([^'\n]*)'\)")


# -- the one HMAC ---------------------------------------------------------------------------------
#: Every petguard signature (agents' requests, webhook deliveries) is ``sha256=<hex>``.
SIGNATURE_PREFIX: Final = "sha256="


def signature(key: bytes, message: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(key, message): the one signature petguard makes and checks."""
    return SIGNATURE_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()


def same(secret: str, offered: str) -> bool:
    """Whether two secrets (or signatures) are equal, compared in constant time."""
    return hmac.compare_digest(secret.encode(), offered.encode())


def signed_string(timestamp: str, method: str, path: str, body: bytes) -> bytes:
    """What is signed: ``timestamp``, the method (upper case) and the API path (``/v1/...``, no query
    string), one per line, then the raw body."""
    return f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body


def sign(key: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The ``X-Petguard-Signature`` value of a request (for senders and tests)."""
    return signature(key.encode(), signed_string(timestamp, method, path, body))


# -- secret files ---------------------------------------------------------------------------------
#: A key named ``agent-<host>`` speaks for ``<host>``; any other name but the bare key's speaks for the
#: host of that name (``cmp1 <key>``, the convention of docs/agent.md before the prefix).
AGENT_KEY_PREFIX: Final = "agent-"
#: Name given to the secret of a file that holds a single secret without a name.
DEFAULT_NAMES: Final = {"token": "operator", "alert": "alertmanager", "hmac": "agent"}


def bound_host(sender: str) -> str | None:
    """The one compute host the key named ``sender`` may speak for; None: no host (a bare, shared key).

    Pure. ``agent-cmp1`` -> ``cmp1``; ``cmp1`` -> ``cmp1``; the bare key's default name ``agent`` -> None.
    Each name gives exactly one host, so a key never speaks for two.
    """
    if sender == DEFAULT_NAMES["hmac"]:
        return None
    if sender.startswith(AGENT_KEY_PREFIX):
        return sender[len(AGENT_KEY_PREFIX) :] or None
    return sender


def parse_secrets(text: str, default_name: str, what: str) -> dict[str, str]:
    """Secrets from a file's text: one bare secret, or ``NAME SECRET`` per line.

    :raises ConfigError: an empty file, a line with more than two fields, or a name given twice.
    """
    secrets: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) > 2:
            raise ConfigError(f"{what}, line {number}: expected 'SECRET' or 'NAME SECRET', found {len(fields)} fields")
        name, secret = (default_name, fields[0]) if len(fields) == 1 else (fields[0], fields[1])
        if name in secrets:
            raise ConfigError(f"{what}, line {number}: the name {name!r} is given twice")
        secrets[name] = secret
    if not secrets:
        raise ConfigError(f"{what} holds no secret: write one token (or 'NAME TOKEN' lines) into it")
    return secrets


#: Mode bits a secret file must not have: write for its group, anything for others. The owner and the
#: group may read it: the packaged layout is root:petguard 0640, and 0600 owned by petguard works too.
OPEN_BITS = 0o027


def too_open(path: str | os.PathLike[str], mode: int) -> str | None:
    """Why a secret file with permission bits ``mode`` may not be used, or None (the one rule)."""
    mode = stat.S_IMODE(mode)
    if not mode & OPEN_BITS:
        return None
    who = "other users" if mode & 0o007 else "its group for writing"
    return (
        f"{os.fspath(path)} is open to {who} (mode {mode:04o}); a secret file may be read by its owner "
        f"and group only: run chmod 640 {os.fspath(path)} (or 600)"
    )


def read_private(path: str | os.PathLike[str], what: str) -> str:
    """The text of the secret file ``path``, its mode checked on the open file (no window to swap it).

    ``what`` names the option for the messages, e.g. ``"[api] token_file"``.

    :raises ConfigError: the file cannot be read or is too open (``too_open``).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            problem = too_open(path, os.fstat(handle.fileno()).st_mode)
            if problem is None:
                return handle.read()
    except OSError as exc:
        raise ConfigError(f"{what} {os.fspath(path)} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {os.fspath(path)} is not UTF-8 text ({exc.reason})") from None
    raise ConfigError(f"{what}: {problem}")


def load_secrets(path: str, kind: str, option: str) -> dict[str, str]:
    """Secrets from a secret file (``kind``: "token", "alert" or "hmac"; ``option`` e.g. "[api] token_file").

    :raises ConfigError: the file is missing, unreadable, too open (``too_open``), or empty.
    """
    what = f"{option} {path}"
    return parse_secrets(read_private(path, option), DEFAULT_NAMES[kind], what)
