"""One redactor for every message that may carry text from a peer: known secrets, the shapes
oslo.utils knows and those it misses, and parser messages that quote the input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from oslo_config import cfg

from petguard import secrets
from petguard.conf import opts, validate

PASSWORDS = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)
PRINTABLE = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=2, max_size=30)


def _shapes(password: str) -> list[str]:
    """How a password appears in the messages of Keystone, Nova, openstacksdk, clouds.yaml and repr."""
    single = password.replace("'", "''")
    return [
        f"bad auth password: '{single}' in clouds.yaml",
        f"{{'password': {password!r}, 'username': 'admin'}}",
        f'{{"auth": {{"password": {json.dumps(password)}}}}}',
        f"admin_password = {json.dumps(password)}",
        f'<password>{password.replace("<", "&lt;")}</password>',
    ]


@pytest.mark.fault(
    "SECRET-02",
    guarantee="7",
    injected="a Keystone password with spaces and commas in a Nova or Keystone error text",
    expected="the whole password is masked, not only up to the first space or comma",
)
def test_a_password_with_spaces_and_commas_is_masked_whole() -> None:
    masked = secrets.text("password: 'Keystone Pw,With Spaces'")

    assert masked == "password: '***'"
    assert "Pw" not in secrets.text('{"password": "Keystone Pw,With Spaces", "user": "a"}')
    assert "Pw" not in secrets.text("password: Keystone Pw,With Spaces")  # a YAML plain scalar
    assert "abc" not in secrets.text("Authorization: Bearer abc.def") and "gAAAAA" not in secrets.text(
        "token gAAAAABnotarealtokenbutlongenough123"
    )


@pytest.mark.fault(
    "SECRET-03",
    guarantee="7",
    injected="any password string, known to the caller or in a key: value shape of a peer's message",
    expected="no output of petguard.secrets contains it",
)
@given(password=PASSWORDS, around=st.text(max_size=30))
def test_no_output_contains_a_known_secret(password: str, around: str) -> None:
    for message in (f"{around}{password}{around}", f"{password}{password}", around):
        assert password not in secrets.text(message, password)


@pytest.mark.fault(
    "SECRET-03",
    guarantee="7",
    injected="any password string, known to the caller or in a key: value shape of a peer's message",
    expected="no output of petguard.secrets contains it",
)
@given(password=PRINTABLE)
def test_no_output_contains_an_unknown_password_in_a_known_shape(password: str) -> None:
    assume("password" not in password.lower())
    for message, plain in zip(_shapes(password), _shapes("Zz9"), strict=True):
        # what the shape says around any password once masked ('***"' holds the password '*"')
        assume(password not in secrets.text(plain) and password not in message.replace(password, ""))
        assert password not in secrets.text(message), message


@pytest.mark.fault(
    "SECRET-01",
    guarantee="7",
    injected="a YAML syntax error on an inline password: line (inventory, clouds.yaml)",
    expected="the error gives line, column and the problem; neither the line nor the password",
)
@pytest.mark.parametrize(
    "document",
    [
        "hosts:\n  cmp1: {bmc: {password: Bmc-S3cret: x}}\n",
        "hosts:\n  cmp1:\n    password: 'Bmc-S3cret\n",
        "hosts:\n  cmp1:\n    password: *Bmc-S3cret\n",
        "hosts:\n  cmp1:\n    password: !Bmc-S3cret!x y\n",
        "hosts:\n  cmp1:\n    password: \"Bmc-S3cret\\q\"\n",
    ],
)
def test_a_yaml_error_names_the_place_and_problem_only(document: str) -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load(document)
    assert "Bmc-S3cret" in str(caught.value) or "S3cret" in document  # PyYAML itself may quote it

    said = secrets.yaml_error(caught.value)

    assert "S3cret" not in said and "Bmc" not in said
    assert said.startswith("line ") and ", column " in said


@pytest.mark.fault(
    "SECRET-04",
    guarantee="7",
    injected="petguard.conf with a line oslo.config cannot parse or convert, holding a database password",
    expected="petguard-daemon, petguard-manage and petguard-agent name file, line and problem; never the line",
)
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[database]\n connection = mysql://petguard:Db-S3cret-Pw@db/petguard\n", "line 2: Unexpected continuation"),
        ("[database]\nDb-S3cret-Pw\n", "line 2: No ':' or '=' found"),
        ("[DEFAULT]\ntick_interval = Db-S3cret-Pw\n", "tick_interval in "),
    ],
)
def test_an_oslo_config_error_is_said_without_the_line(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "petguard.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    opts.register(conf)
    with pytest.raises(cfg.Error) as caught:
        conf([f"--config-file={path}"], project="petguard-test")
        validate(conf)
    assert "S3cret" in str(caught.value)  # what oslo.config itself would have printed

    said = secrets.config_error(caught.value)

    assert "S3cret" not in said and words in said and str(path) in said
