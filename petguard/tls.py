"""TLS for the API, both sides: the server's context from ``[api] tls_cert_file`` / ``tls_key_file``,
the clients' (agent, CLI) from a CA file, and how a client says that it does not trust a certificate.

* ``server_context(cert, key)``: both files or neither (None: plain HTTP); TLS 1.2 at least; the key
  is a secret file and follows the one rule (``petguard.secrets.too_open``), checked on the file that
  is then loaded (through ``/proc/self/fd``, so nobody can swap it between the check and the load); a
  certificate and key that do not match, or that cannot be read, are a ``ConfigError`` at start.
* ``client_context(ca_file, option)``: verifies the server's certificate and host name against
  ``ca_file``, or the system trust store when it is None (not httpx's own bundle: an operator's CA is
  installed in the system store, ``update-ca-certificates``). There is no way to turn verification
  off: the API's tokens and signed requests would go to whoever answers.
* ``untrusted(exc)``: the certificate verification failure behind an httpx error, if it is one.
"""

from __future__ import annotations

import os
import ssl
from typing import NoReturn

from petguard import secrets
from petguard.errors import ConfigError

MIN_VERSION = ssl.TLSVersion.TLSv1_2


def server_context(cert_file: str | None, key_file: str | None) -> ssl.SSLContext | None:
    """The server's TLS context, or None when neither file is set.

    :raises ConfigError: only one of the two is set, a file cannot be read, the key is open to others,
        or the certificate and key do not match.
    """
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        given, missing = ("tls_cert_file", "tls_key_file") if cert_file else ("tls_key_file", "tls_cert_file")
        raise ConfigError(
            f"[api] {given} is set but [api] {missing} is not: TLS needs both (the certificate and its "
            "private key), or neither for plain HTTP"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MIN_VERSION
    try:
        key_fd = os.open(key_file, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(f"[api] tls_key_file {key_file} cannot be read: {exc.strerror}") from exc
    try:
        problem = secrets.too_open(key_file, os.fstat(key_fd).st_mode)
        if problem is not None:
            raise ConfigError(f"[api] tls_key_file: {problem}")
        # An encrypted key would make OpenSSL prompt on the terminal (a hang): refuse it instead.
        context.load_cert_chain(cert_file, f"/proc/self/fd/{key_fd}", password=lambda: _encrypted(key_file))
    except ssl.SSLError as exc:
        raise ConfigError(_load_problem(cert_file, key_file, exc)) from None
    except OSError as exc:
        raise ConfigError(f"[api] tls_cert_file {cert_file} cannot be read: {exc.strerror}") from exc
    finally:
        os.close(key_fd)
    return context


def _encrypted(key_file: str) -> NoReturn:
    raise ConfigError(
        f"[api] tls_key_file {key_file} is encrypted (it asks for a passphrase): the daemon starts unattended; "
        f"write it unencrypted (openssl pkey -in {key_file} -out NEW_FILE), mode 0640"
    )


def _load_problem(cert_file: str, key_file: str, exc: ssl.SSLError) -> str:
    """What is wrong with a certificate and key OpenSSL refused (never the key's content)."""
    if "KEY_VALUES_MISMATCH" in str(exc):
        return (
            f"[api] tls_key_file {key_file} is not the private key of [api] tls_cert_file {cert_file}: "
            "give the key the certificate was issued for"
        )
    return (
        f"[api] tls_cert_file {cert_file} and tls_key_file {key_file} cannot be loaded ({exc.reason or exc}): "
        "both must be PEM files, the certificate (then its chain) and its unencrypted private key"
    )


def client_context(ca_file: str | None, option: str) -> ssl.SSLContext:
    """A context that verifies the server against ``ca_file`` (None: the system trust store).

    ``option`` names where ``ca_file`` came from, for the message (e.g. ``"[agent] ca_file"``).

    :raises ConfigError: ``ca_file`` cannot be read or holds no PEM certificate.
    """
    context = ssl.create_default_context()  # CERT_REQUIRED and host names checked
    context.minimum_version = MIN_VERSION
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:  # before OSError, its base class
            raise ConfigError(f"{option} {ca_file} holds no PEM certificate ({exc.reason or exc})") from None
        except OSError as exc:
            raise ConfigError(f"{option} {ca_file} cannot be read: {exc.strerror}") from exc
    return context


def untrusted(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure that caused ``exc`` (httpx wraps it twice), or None."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain of causes is short; never loop on a cycle
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def reason(error: ssl.SSLCertVerificationError) -> str:
    """OpenSSL's words for why it did not trust a certificate (e.g. "unable to get local issuer certificate")."""
    return str(error.verify_message or error.reason or error)
