"""User profile files: valid ones load, every broken one gives its golden one-line error.

Golden files: tests/unit/errors/profiles/<case>.yaml and <case>.txt (the expected message, with
the file shown as FILE). Regenerate after an intended change with UPDATE_GOLDEN=1.
"""

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from harness import timers, userfiles
from harness.errors import UsageError

from .golden import assert_golden_error

CASES = sorted((Path(__file__).parent / "errors" / "profiles").glob("*.yaml"))


def test_a_valid_file_loads_with_strongswan_defaults_for_omitted_timers(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("profiles:\n  cautious:\n    dpd_delay: 10\n    retransmit_timeout: 2\n")
    profile = userfiles.load_profiles(path)["cautious"]
    assert (profile.dpd_delay, profile.retransmit_timeout, profile.retransmit_base) == (10, 2.0, 1.8)
    assert timers.profile("cautious", {"cautious": profile}) is profile
    assert timers.crash(profile, 1.0, 0).lo == pytest.approx(9 + timers.give_up_after(profile))


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_broken_profile_files_give_one_golden_line(case: Path) -> None:
    assert_golden_error(case, userfiles.load_profiles)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        userfiles.load_profiles(tmp_path / "nope.yaml")


def test_omitted_fields_take_the_defaults_of_timers_profile() -> None:
    defaults = {field.name: field.default for field in fields(timers.Profile)}
    written = userfiles.ProfileModel().model_dump(exclude={"description"})
    for name, value in written.items():
        assert value == defaults[name], name
    not_in_files = {"name", "description", "time_scale", "rounded", "kb"}
    assert set(written) == set(defaults) - not_in_files


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_section(heading: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_profile_example_loads_with_every_key_a_profile_takes(tmp_path: Path) -> None:
    """README's "Timer profiles" example is a valid profiles file and shows every key, recovery
    and mode included; its `cautious` crash is the one README says takes about 3 minutes."""
    section = readme_section("Timer profiles")
    example = section[section.index("```yaml\n") + 8 : section.index("```", section.index("```yaml\n") + 8)]
    path = tmp_path / "my-profiles.yaml"
    path.write_text(example)
    cautious = userfiles.load_profiles(path)["cautious"]
    shown = set(yaml.safe_load(example)["profiles"]["cautious"])
    assert shown == set(userfiles.ProfileModel.model_fields)
    assert (cautious.recovery, cautious.mode) == ("restart", None)
    crash = timers.predict("crash", cautious, timers.FaultParams(), 0.02)
    assert crash.lo > 150 and crash.hi < 210  # "about 3 minutes"
    assert "--profile cautious --fault crash   # about 3 minutes" in section
