"""Options and sections petguard does not know (typos, misplaced options) are found, with a suggestion.

oslo.config ignores a name it has no registration for, so ``[DEFAULT] dryrun = true`` would leave
``dry_run`` False without a word. ``petguard.conf.unknown`` finds such names in the parsed files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from petguard.conf import opts, unknown

FILE = "/etc/petguard/petguard.conf"


def known() -> dict[str, set[str]]:
    c = cfg.ConfigOpts()
    opts.register(c)
    c([], project="petguard-test", default_config_files=[])
    return unknown.known_options(c)


def find(sections: dict[str, list[str]], receivers: tuple[str, ...] = ()) -> list[unknown.Unknown]:
    return unknown.find_unknown([(FILE, sections)], known(), receivers)


@pytest.mark.fault(
    "CHECK-01",
    guarantee="-",
    injected="[DEFAULT] dryrun = true (a typo of dry_run: oslo.config silently ignores it)",
    expected="reported as an error naming the file, section and option, with 'did you mean dry_run?'",
)
def test_a_typo_in_default_is_found_with_a_suggestion() -> None:
    (found,) = find({"DEFAULT": ["dryrun", "tick_interval"]})
    assert found.serious
    assert (found.file, found.section, found.option, found.suggestion) == (FILE, "DEFAULT", "dryrun", "dry_run")
    assert "did you mean dry_run?" in found.message()
    assert FILE in found.message()


def test_a_typo_in_a_group_is_found_with_a_suggestion_from_that_group() -> None:
    (found,) = find({"fencing": ["inventroy_file", "enabled_drivers"]})
    assert found.suggestion == "inventory_file"
    assert "[fencing] inventroy_file" in found.message()


def test_an_option_in_the_wrong_group_names_its_group() -> None:
    (found,) = find({"DEFAULT": ["inventory_file"]})
    assert found.suggestion == "[fencing] inventory_file"


@pytest.mark.fault(
    "CHECK-02",
    guarantee="-",
    injected="an unknown section ([fenicng]) in petguard.conf",
    expected="reported as an error with 'did you mean [fencing]?'",
)
def test_an_unknown_section_is_found_with_a_suggestion() -> None:
    (found,) = find({"fenicng": ["inventory_file"]})
    assert found.serious and found.option is None
    assert found.suggestion == "[fencing]"
    assert "[fenicng]" in found.message() and "did you mean [fencing]?" in found.message()


def test_known_names_oslo_log_options_and_deprecated_names_pass() -> None:
    assert find({"DEFAULT": ["debug", "log_file", "dry_run"], "api": ["token_file"], "coordination": []}) == []


def test_nothing_close_gives_no_suggestion() -> None:
    (found,) = find({"nova": ["zzzzzz"]})
    assert found.suggestion is None
    assert "did you mean" not in found.message()


def test_a_listed_receiver_section_is_checked_against_the_receiver_options() -> None:
    assert find({"webhooks": ["receivers"], "webhook:ops": ["url", "secret_file"]}, receivers=("ops",)) == []
    (found,) = find({"webhook:ops": ["url", "secretfile"]}, receivers=("ops",))
    assert found.suggestion == "secret_file"


@pytest.mark.fault(
    "CHECK-03",
    guarantee="4",
    injected="a [webhook:NAME] section whose NAME is not listed in [webhooks] receivers",
    expected="a warning (not an error): no alert goes there until it is listed",
)
def test_an_unlisted_receiver_section_is_a_warning() -> None:
    (found,) = find({"webhook:pager": ["url"]}, receivers=("ops",))
    assert not found.serious
    assert "[webhooks] receivers" in found.message()


def test_section_names_compare_as_oslo_config_does() -> None:
    assert find({"Fencing": ["inventory_file"], "DEFAULT": []}) == []


def test_the_files_a_conf_was_parsed_from_are_read_with_oslo_config_s_parser(tmp_path: Path) -> None:
    path = tmp_path / "petguard.conf"
    path.write_text("[DEFAULT]\ndryrun = true\n[fencing]\ninventroy_file = /x\n[nova]\ncloud = c\n")
    c = cfg.ConfigOpts()
    opts.register(c)
    c([f"--config-file={path}"], project="petguard-test", default_config_files=[])
    found = unknown.check(c)
    assert [(f.section, f.option, f.suggestion) for f in found] == [
        ("DEFAULT", "dryrun", "dry_run"),
        ("fencing", "inventroy_file", "inventory_file"),
    ]
