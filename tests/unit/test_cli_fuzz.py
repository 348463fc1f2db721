"""`failover-lab run` with generated argument lists, as test_scenario fuzzes scenario files: every
list either is accepted (the command gets as far as building a lab, which is patched to raise) or
exits 2 with exactly one stderr line starting `failover-lab`, never a traceback. Where the list is
made of known options only, an oracle says which of the two it must be."""

import io
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rich.console import Console

from harness import backends, cli, faults, lab, policy, runs, scenario, timers
from harness.backends import AUTO, BACKENDS, SSH
from harness.probe import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(str(path) for path in (ROOT / "scenarios").glob("*.yaml"))
MISSING = "no-such-scenario.yaml"
OWN_PROFILES = "OWN_PROFILES"
"""Stands for a valid profiles file (written per test) defining the profile `cautious`."""

TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=10)
"""Anything a user might type in one argument (no control characters: a newline in a path is
printed as it is)."""
NUMBERS = st.one_of(
    st.integers(-3, 4000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1/30", "1/0", "1e999", "-0", "0x1", "1_0", " 2 ", "0.0"]),
)
VALUES = {
    "--fault": st.one_of(st.lists(st.sampled_from(list(faults.FAULTS)), min_size=1, max_size=3).map(",".join), TEXT),
    "--profile": st.one_of(st.sampled_from([*timers.PROFILES, "cautious"]), TEXT),
    "--profiles": st.sampled_from([OWN_PROFILES, "no-such-profiles.yaml"]),
    "--policy": st.one_of(st.sampled_from(list(policy.POLICIES)), TEXT),
    "--repeat": st.one_of(NUMBERS, TEXT),
    "--time-scale": st.one_of(
        st.integers(-3, 3).map(str),
        st.floats(1e-6, 1).map(str),  # tinier scales: test_a_subnormal_time_scale_is_one_line
        st.floats(1, exclude_min=True).map(str),
        st.floats(max_value=0).map(str),
        st.sampled_from(["1/30", "1/0", "1e999", "-0", "0x1", "nan", "inf", "1/3e400", " 1/2 "]),
        TEXT,
    ),
    "--cluster-delay": st.one_of(NUMBERS, TEXT),
    "--freeze": st.one_of(NUMBERS, TEXT),
    "--backend": st.one_of(st.sampled_from([AUTO, *BACKENDS, SSH]), TEXT),
    "--json": st.just("results.json"),
    "--out": st.just("out"),
}
GOOD = {
    "--fault": st.lists(st.sampled_from(list(faults.FAULTS)), min_size=1, max_size=3).map(",".join),
    "--profile": st.sampled_from([*timers.PROFILES, "cautious"]),
    "--profiles": st.just(OWN_PROFILES),
    "--policy": st.sampled_from(list(policy.POLICIES)),
    "--repeat": st.integers(1, scenario.REPEAT_MAX).map(str),
    "--time-scale": st.one_of(st.floats(1e-6, 1).map(str), st.sampled_from(["1", "1/30", "1/2"])),
    "--cluster-delay": st.floats(0, scenario.SECONDS_MAX).map(str),
    "--freeze": st.floats(0.001, scenario.SECONDS_MAX).map(str),
    "--backend": st.sampled_from([AUTO, *BACKENDS, SSH]),
}
"""Valid values only, so that half the generated lists get past every value check."""


def _options(values: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[tuple[str, str]]]:
    pairs = st.sampled_from(list(values)).flatmap(lambda option: st.tuples(st.just(option), values[option]))
    return st.lists(pairs, max_size=6)


OPTIONS = st.one_of(_options(VALUES), _options(GOOD))
POSITIONAL = st.one_of(st.none(), st.sampled_from([*SHIPPED, MISSING]))


class LabBuilt(Exception):
    """lab.running was called: the arguments were accepted."""


def no_lab(*args: object, **kwargs: object) -> None:
    raise LabBuilt


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setattr(lab, "running", no_lab)
    monkeypatch.setattr(backends, "choose", lambda: BACKENDS["netns"])  # the host's fitness is not under test
    monkeypatch.setattr(runs, "console", Console(file=io.StringIO(), width=200))
    monkeypatch.chdir(tmp_path)
    (tmp_path / OWN_PROFILES).write_text("profiles:\n  cautious: {dpd_delay: 3, retransmit_timeout: 1}\n")
    yield tmp_path


def outcome(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """ "accepted", or "refused" after checking the stderr line: one, or with a scenario file one
    per problem of the file (each of its profiles refused at an overriding --time-scale)."""
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except LabBuilt:
        return "accepted"
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    if code == 0 and "usage: failover-lab" in out:
        return "help"  # an abbreviation of --help among the generated words
    assert code == 2, (argv, code, err)
    lines = err.splitlines()
    per_profile = 1 + len(SERVICES)  # the file's problems: an unfit profile, or its unmeetable expectations
    most = max([1, *(len(scenario.load(Path(word)).model.profiles) * per_profile for word in argv if word in SHIPPED)])
    assert 1 <= len(lines) <= most and all(line.startswith("failover-lab") for line in lines), (argv, err)
    assert "Traceback" not in err
    return "refused"


def _number(text: str, low: float, high: float, low_open: bool) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return low <= value <= high and not (low_open and value == low)


def _scale(text: str) -> bool:
    try:
        scale = float(Fraction(text))
    except (ValueError, ZeroDivisionError, OverflowError):
        return False
    return 0 < scale <= 1


def _whole(text: str) -> bool:
    try:
        return 1 <= int(text) <= scenario.REPEAT_MAX
    except ValueError:
        return False


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _faults(text: str) -> bool:
    names = [name.strip() for name in text.split(",") if name.strip()]
    return bool(names) and all(name in faults.FAULTS for name in names)


VALID: dict[str, Callable[[str], bool]] = {
    "--fault": _faults,
    "--profile": lambda text: bool(_names(text)),
    "--profiles": lambda text: text == OWN_PROFILES,
    "--policy": lambda text: text in policy.POLICIES,
    "--repeat": _whole,
    "--time-scale": _scale,
    "--cluster-delay": lambda text: _number(text, 0, scenario.SECONDS_MAX, low_open=False),
    "--freeze": lambda text: _number(text, 0, scenario.SECONDS_MAX, low_open=True),
    "--backend": lambda text: text in (AUTO, *BACKENDS, SSH),
}


def expected(positional: str | None, options: list[tuple[str, str]]) -> str:
    """What `run` must do with known options: every value valid, the file readable, the options a
    scenario defines absent with one, and without one a fault named, --profiles with --profile,
    every --profile known and named once (each one runs), --cluster-delay and --freeze only with a
    fault that takes them."""
    given = dict(options)  # the last one counts, as with argparse (--fault and --profile: every one)
    faults_given = [value for option, value in options if option == "--fault"]
    if any(option in VALID and not VALID[option](value) for option, value in options):
        return "refused"  # argparse checks every value given, also one given again later
    if given.get("--backend") == SSH:
        return "refused"  # without --inventory (the shipped scenarios name none either)
    scale = float(Fraction(given.get("--time-scale", "1")))
    if positional is not None:
        defined = {"--fault", "--profile", "--profiles", "--cluster-delay", "--freeze"}
        if positional == MISSING or defined & set(given):
            return "refused"
        loaded = scenario.load(Path(positional))
        profiles = loaded.profiles  # scaled by the file, unless --time-scale overrides
        timeouts = [p.retransmit_timeout * (scale / p.time_scale if "--time-scale" in given else 1) for p in profiles]
        if min(timeouts) < timers.MILLISECOND:
            return "refused"
        return (
            "refused"
            if never_met(loaded, given.get("--policy"), scale if "--time-scale" in given else None)
            else "accepted"
        )
    if not faults_given or ("--profiles" in given and "--profile" not in given):
        return "refused"
    known = [*timers.PROFILES, *(["cautious"] if "--profiles" in given else [])]
    named = [name for option, value in options if option == "--profile" for name in _names(value)] or ["fast"]
    if any(name not in known for name in named) or len(set(named)) < len(named):
        return "refused"
    for name in named:
        timeout = 1.0 if name == "cautious" else timers.profile(name).retransmit_timeout
        if timeout * scale < timers.MILLISECOND:
            return "refused"  # charon counts whole milliseconds: the scaled timeout would be none at all
    names = {n.strip() for text in faults_given for n in text.split(",") if n.strip()}
    for option, field in (("--cluster-delay", "cluster_delay"), ("--freeze", "freeze")):
        if option in given and not any(field in scenario.FAULT_PARAMETERS[n] for n in names):
            return "refused"
    return "accepted"


def never_met(loaded: scenario.Scenario, policy_name: str | None, scale: float | None) -> bool:
    """Whether the file's expectations can no longer be met under an overriding --policy (a
    service it expects back quickly in clear becomes protected: mail-passwords-crash.yaml's http
    under all-traffic) or --time-scale; the bands themselves are test_scenario's to check."""
    changes = {"policy": policy_name, "time_scale": scale}
    model = loaded.model.model_copy(update={k: v for k, v in changes.items() if v is not None})
    return bool(scenario.never_met(scenario.Scenario(loaded.name, loaded.path, model)))


def argv_of(positional: str | None, options: list[tuple[str, str]]) -> list[str]:
    words = ["run", *([positional] if positional else [])]
    for option, value in options:
        words += [f"{option}={value}"]  # = keeps a value like -1 or --x a value
    return words


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(positional=POSITIONAL, options=OPTIONS)
def test_known_options_are_accepted_or_refused_as_they_should(
    patched: Path, capsys: pytest.CaptureFixture[str], positional: str | None, options: list[tuple[str, str]]
) -> None:
    seen = outcome(argv_of(positional, options), capsys)
    event(seen)
    assert seen == expected(positional, options)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(
        st.one_of(TEXT, st.sampled_from([*VALUES, *SHIPPED, "--", "-x", "--fault=crash", "--repeat", "-1"])),
        max_size=8,
    )
)
def test_any_words_after_run_parse_or_give_one_line(
    patched: Path, capsys: pytest.CaptureFixture[str], words: list[str]
) -> None:
    seen = outcome(["run", *words], capsys)
    event(seen)
    assert seen in ("accepted", "refused", "help")


def test_the_oracle_knows_the_rules() -> None:
    assert expected(None, [("--fault", "crash")]) == "accepted"
    assert expected(SHIPPED[0], [("--repeat", "2")]) == "accepted"
    assert expected(SHIPPED[0], [("--profile", "fast")]) == "refused"
    mail = str(ROOT / "scenarios" / "mail-passwords-crash.yaml")
    assert expected(mail, [("--policy", "all-traffic")]) == "refused"  # its http expectation, now protected
    assert expected(mail, [("--policy", "mail-passwords")]) == "accepted"
    assert expected(None, [("--fault", "graceful"), ("--freeze", "2")]) == "refused"
    assert expected(None, [("--fault", "crash"), ("--backend", "ssh")]) == "refused"  # no --inventory
    assert expected(None, [("--fault", "crash"), ("--profile", "fast"), ("--profile", "win2000")]) == "accepted"
    assert expected(None, [("--fault", "crash"), ("--profile", "fast,win2000,fast")]) == "refused"
    assert not VALID["--freeze"]("0") and VALID["--cluster-delay"]("0") and not _scale("1e999")
    assert not VALID["--cluster-delay"]("nan") and not VALID["--repeat"]("1.0")


def test_a_time_scale_too_small_for_charon_is_one_line(patched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Inside (0, 1], but the scaled timers are below what charon counts (5e-324 once overflowed
    the model's arithmetic)."""
    for scale in ("5e-324", "1/2000"):
        assert outcome(["run", "--fault", "crash", "--time-scale", scale], capsys) == "refused"
