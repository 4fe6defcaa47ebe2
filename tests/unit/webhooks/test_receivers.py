"""Receivers from configuration, and their kinds filters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from oslo_config import cfg

from petguard.conf import opts
from petguard.errors import ConfigError
from petguard.webhooks import receivers
from petguard.webhooks.payload import Severity
from petguard.webhooks.receivers import Format, Receiver


@pytest.mark.parametrize(
    ("receiver", "kind", "wanted"),
    [
        (Receiver("all", "http://x"), "fence_confirmed", True),
        (Receiver("fences", "http://x", include=("fence_*",)), "fence_confirmed", True),
        (Receiver("fences", "http://x", include=("fence_*",)), "host_suspect", False),
        (Receiver("quiet", "http://x", exclude=("*_held", "server_*")), "fence_held", False),
        (Receiver("quiet", "http://x", exclude=("*_held", "server_*")), "server_evacuated", False),
        (Receiver("quiet", "http://x", exclude=("*_held",)), "awaiting_confirm", True),
        (Receiver("both", "http://x", include=("fence_*",), exclude=("fence_held",)), "fence_held", False),
        (Receiver("loud", "http://x", min_severity=Severity.WARNING), "host_restored", False),
        (Receiver("loud", "http://x", min_severity=Severity.WARNING), "host_suspect", True),
        (Receiver("pager", "http://x", min_severity=Severity.CRITICAL), "awaiting_confirm", True),
        (Receiver("pager", "http://x", min_severity=Severity.CRITICAL), "fence_started", False),
    ],
)
def test_kinds_filters(receiver: Receiver, kind: str, wanted: bool) -> None:
    assert receiver.wants(kind) is wanted


def test_repr_hides_url_and_secret() -> None:
    receiver = Receiver("chat", "https://hooks.example/T000/B000/XXXX", secret=b"hunter2")
    assert "XXXX" not in repr(receiver) and "hunter2" not in repr(receiver)


def _conf(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register(conf)
    path = tmp_path / "petguard.conf"
    path.write_text(text)
    conf(["--config-file", str(path)], project="petguard-test", default_config_files=[], default_config_dirs=[])
    return conf


def _secret(tmp_path: Path, value: str = "s3cret\n", mode: int = 0o600) -> Path:
    path = tmp_path / "key"
    path.write_text(value)
    os.chmod(path, mode)
    return path


def test_from_conf_reads_each_receiver_group(tmp_path: Path) -> None:
    key = _secret(tmp_path)
    conf = _conf(
        tmp_path,
        "[webhooks]\nreceivers = ops, chat\n"
        f"[webhook:ops]\nurl = https://alerts.example/petguard\nsecret_file = {key}\n"
        "exclude_kinds = *_held\ntimeout = 2\n"
        "[webhook:chat]\nurl = https://hooks.example/T0/B0/X\nformat = slack\nmin_severity = warning\n",
    )
    ops, chat = receivers.from_conf(conf)
    assert (ops.name, ops.format, ops.secret, ops.exclude, ops.timeout) == (
        "ops",
        Format.JSON,
        b"s3cret",
        ("*_held",),
        2,
    )
    assert (chat.format, chat.secret, chat.min_severity) == (Format.SLACK, None, Severity.WARNING)
    assert chat.url == "https://hooks.example/T0/B0/X"


def test_no_receivers_by_default(tmp_path: Path) -> None:
    assert receivers.from_conf(_conf(tmp_path, "")) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[webhooks]\nreceivers = ops\n", "[webhook:ops] url is not set"),
        ("[webhooks]\nreceivers = ops, ops\n[webhook:ops]\nurl = http://a\n", "lists a name twice"),
        ("[webhooks]\nreceivers = ops\n[webhook:ops]\nurl = ftp://secret-token@h/x\n", "not a valid http"),
        ("[webhooks]\nreceivers = ops\n[webhook:ops]\nurl = http://a\nformat = xml\n", "[webhook:ops]"),
        (
            "[webhooks]\nreceivers = ops\n[webhook:ops]\nurl = http://a\nsecret_file = /nonexistent/k\n",
            "cannot be read",
        ),
    ],
)
def test_bad_receivers_are_refused_by_name(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")) as caught:
        receivers.from_conf(_conf(tmp_path, text))
    assert "secret-token" not in str(caught.value)


def test_secret_file_must_not_be_world_readable(tmp_path: Path) -> None:
    key = _secret(tmp_path, mode=0o644)
    conf = _conf(tmp_path, f"[webhooks]\nreceivers = ops\n[webhook:ops]\nurl = http://a\nsecret_file = {key}\n")
    with pytest.raises(ConfigError, match=r"is open to other users \(mode 0644\).*chmod 640"):
        receivers.from_conf(conf)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    key = _secret(tmp_path, value="\n")
    conf = _conf(tmp_path, f"[webhooks]\nreceivers = ops\n[webhook:ops]\nurl = http://a\nsecret_file = {key}\n")
    with pytest.raises(ConfigError, match="empty"):
        receivers.from_conf(conf)
