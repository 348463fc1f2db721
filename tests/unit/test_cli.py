"""Bad input and unfit environments: one line (a file's problems: one line each), exit 2, nothing
built; every option of `run` honoured or refused, with a scenario file too."""

import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from harness import backends, cli, lab_commands, measure, registry, report, result, runs, scenario, strongswan, timers
from harness.backends import SSH
from harness.backends.netns import NetnsBackend

from .hosts import write_inventory
from .outcomes import synthetic_outcome


@pytest.fixture(autouse=True)
def lab_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(registry, "LAB_ROOT", tmp_path / "labs")
    return tmp_path / "labs"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("failover-lab")
    return lines[0]


def nothing_built(root: Path) -> bool:
    return not root.exists() or not any(root.glob("flab-*"))


FAULTS = (
    "graceful, graceful-noblock, crash, freeze, link-cut, reboot, reboot-announce, takeover-announce, reauth, "
    "graceful-announce"
)


def test_unknown_fault(capsys: pytest.CaptureFixture[str], lab_root: Path) -> None:
    assert argument_error(["run", "--fault", "crsh"], capsys) == (
        f"failover-lab run: error: argument --fault: 'crsh' is not one of {FAULTS} (see --help)"
    )
    assert argument_error(["run", "--fault", "crash,frz,x"], capsys) == (
        f"failover-lab run: error: argument --fault: 'frz', 'x' are not one of {FAULTS} (see --help)"
    )
    assert argument_error(["run", "--fault", ","], capsys).endswith(f"',' is not one of {FAULTS} (see --help)")
    assert nothing_built(lab_root)


def test_unknown_profile(capsys: pytest.CaptureFixture[str], lab_root: Path, tmp_path: Path) -> None:
    assert cli.main(["run", "--fault", "crash", "--profile", "slow"]) == 2
    assert one_error_line(capsys) == (
        "failover-lab: error: argument --profile: 'slow' is not one of strongswan-default, fast, win2000, "
        "win2003-nlbsflags, win2000-ikev1, win2003-nlbsflags-ikev1 (or one of your own with --profiles FILE)"
    )
    assert cli.main(["up", "--profile", "slow"]) == 2
    assert "argument --profile: 'slow' is not one of" in one_error_line(capsys)
    mine = tmp_path / "mine.yaml"
    mine.write_text("profiles:\n  cautious: {dpd_delay: 10}\n")
    assert cli.main(["run", "--fault", "crash", "--profiles", str(mine), "--profile", "slow"]) == 2
    assert one_error_line(capsys) == (
        "failover-lab: error: argument --profile: 'slow' is not one of strongswan-default, fast, win2000, "
        "win2003-nlbsflags, win2000-ikev1, win2003-nlbsflags-ikev1, cautious"
    )
    assert nothing_built(lab_root)


def test_a_profiles_file_without_profile_is_refused(
    capsys: pytest.CaptureFixture[str], lab_root: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("profiles:\n  cautious: {dpd_delay: 10}\n  slow: {dpd_delay: 60}\n")
    for command in (["run", "--fault", "crash"], ["up"]):
        assert cli.main([*command, "--profiles", str(mine)]) == 2
        assert one_error_line(capsys) == (
            f"failover-lab: error: --profiles {mine} needs --profile naming one of its profiles: cautious, slow"
        )
    assert nothing_built(lab_root)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--fault", "graceful,reboot", "--freeze", "2"],
            "--freeze applies only to --fault freeze: add it to --fault, or drop --freeze",
        ),
        (
            ["--fault", "freeze", "--cluster-delay", "0"],
            "--cluster-delay applies only to --fault crash, link-cut and takeover-announce: add one of them to "
            "--fault, or drop --cluster-delay",
        ),
    ],
)
def test_a_fault_option_without_its_fault_is_refused(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str], lab_root: Path
) -> None:
    assert cli.main(["run", *argv]) == 2
    assert one_error_line(capsys) == f"failover-lab: error: {line}"
    assert nothing_built(lab_root)


def test_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    choices = "auto, netns, docker, docker:bookworm, uml, ssh"
    for command in ("up", "run", "demo"):
        assert argument_error([command, "--backend", "vmware"], capsys) == (
            f"failover-lab {command}: error: argument --backend: 'vmware' is not one of {choices} (see --help)"
        )
    for command in ("status", "clean"):
        assert argument_error([command, "--backend", "auto"], capsys).endswith(
            "argument --backend: 'auto' is not one of netns, docker, docker:bookworm, uml (see --help)"
        )


def test_not_root(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, lab_root: Path) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["run", "--fault", "graceful", "--backend", "netns"]) == 2
    assert "needs root" in one_error_line(capsys)
    assert nothing_built(lab_root)


def test_strongswan_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, lab_root: Path
) -> None:
    monkeypatch.setattr(NetnsBackend, "_check_host", lambda self: None)
    monkeypatch.setattr(strongswan, "CHARON", "/nonexistent/charon")
    assert cli.main(["up", "--backend", "netns"]) == 2
    assert "apt-get install strongswan-charon" in one_error_line(capsys)
    assert nothing_built(lab_root)


def test_libipsec_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, lab_root: Path, tmp_path: Path
) -> None:
    charon = tmp_path / "charon"
    charon.touch()
    monkeypatch.setattr(NetnsBackend, "_check_host", lambda self: None)
    monkeypatch.setattr(strongswan, "CHARON", str(charon))
    monkeypatch.setattr(strongswan, "LIBIPSEC_PLUGIN", "/nonexistent/libipsec.so")
    assert cli.main(["run", "--fault", "crash", "--backend", "netns"]) == 2
    line = one_error_line(capsys)
    assert "kernel-libipsec" in line and "libcharon-extra-plugins" in line and "--backend docker" in line
    assert nothing_built(lab_root)


def test_bad_arguments_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run"]) == 2
    assert "--fault" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--fault", "crash", "--repeat", "many"])
    assert exit_.value.code == 2
    one_error_line(capsys)


def argument_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line argparse prints for a bad option value (exit 2)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    return one_error_line(capsys)


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--time-scale", "2", "must be a number in (0, 1] or a fraction like 1/30, got '2'"),
        ("--time-scale", "1/0", "must be a number in (0, 1] or a fraction like 1/30, got '1/0'"),
        ("--time-scale", "fast", "must be a number in (0, 1] or a fraction like 1/30, got 'fast'"),
        ("--time-scale", "1e999", "must be a number in (0, 1] or a fraction like 1/30, got '1e999'"),
        ("--freeze", "x", "must be a number of seconds in (0, 3600], got 'x'"),
        ("--freeze", "0", "must be a number of seconds in (0, 3600], got '0'"),
        ("--freeze", "-1", "must be a number of seconds in (0, 3600], got '-1'"),
        ("--freeze", "inf", "must be a number of seconds in (0, 3600], got 'inf'"),
        ("--cluster-delay", "-1", "must be a number of seconds in [0, 3600], got '-1'"),
        ("--cluster-delay", "nan", "must be a number of seconds in [0, 3600], got 'nan'"),
        ("--cluster-delay", "3601", "must be a number of seconds in [0, 3600], got '3601'"),
        ("--repeat", "0", "must be a whole number from 1 to 100, got '0'"),
        ("--repeat", "101", "must be a whole number from 1 to 100, got '101'"),
        ("--repeat", "many", "must be a whole number from 1 to 100, got 'many'"),
        ("--repeat", "1.5", "must be a whole number from 1 to 100, got '1.5'"),
        ("--policy", "nope", "'nope' is not one of none, mail-passwords, mail-all, all-traffic"),
        ("--backend", "nope", "'nope' is not one of auto, netns, docker, docker:bookworm, uml, ssh"),
        ("--fault", "nope", f"'nope' is not one of {FAULTS}"),
    ],
)
def test_a_bad_option_value_is_one_line_naming_the_option_and_the_range(
    option: str, value: str, problem: str, capsys: pytest.CaptureFixture[str], lab_root: Path
) -> None:
    line = argument_error(["run", "--fault", "crash", option, value], capsys)
    assert line == f"failover-lab run: error: argument {option}: {problem} (see --help)"
    assert nothing_built(lab_root)


def test_the_demo_checks_its_options_the_same_way(capsys: pytest.CaptureFixture[str]) -> None:
    line = argument_error(["demo", "--time-scale", "30"], capsys)
    assert line.endswith(
        "argument --time-scale: must be a number in (0, 1] or a fraction like 1/30, got '30' (see --help)"
    )
    assert argument_error(["demo", "--repeat", "-2"], capsys).endswith("got '-2' (see --help)")


def test_good_option_values_are_parsed() -> None:
    arguments = cli.parser().parse_args(
        ["run", "--fault", "crash", "--time-scale", "1/30", "--cluster-delay", "0", "--freeze", "0.5", "--repeat", "3"]
    )
    assert arguments.time_scale == pytest.approx(1 / 30)
    assert (arguments.cluster_delay, arguments.freeze, arguments.repeat) == (0.0, 0.5, 3)
    assert cli.parser().parse_args(["run", "--fault", "crash,freeze", "--fault", "reboot"]).fault == [
        ["crash", "freeze"],
        ["reboot"],
    ]
    assert cli.parser().parse_args(["demo"]).time_scale is None  # 1/30 unless given: not with --policies


def test_demo_policies_refuses_a_time_scale_and_demo_has_no_freeze(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--policies", "--time-scale", "1/30"]) == 2
    assert one_error_line(capsys) == (
        "failover-lab: error: --time-scale does not apply to demo --policies (profile fast at real time): drop it"
    )
    with pytest.raises(SystemExit):
        cli.main(["demo", "--freeze", "2"])  # the demo runs graceful moves and crashes only


def test_run_leaves_what_was_not_typed_none_and_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = cli.parser().parse_args(["run", "x.yaml"])
    for option in ("fault", "profile", "profiles", "policy", "repeat", "time_scale", "cluster_delay", "freeze"):
        assert getattr(arguments, option) is None, option
    assert arguments.backend is None
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for default in ("(default fast)", "(default all-traffic)", "(default 1)", "(default 3)", "else netns; never ssh)"):
        assert default in shown, default


def test_a_profile_the_timer_model_refuses_is_refused_before_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lab_root: Path
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # the environment is checked later: not root is not the news
    path = tmp_path / "mine.yaml"
    path.write_text("profiles:\n  nodpd:\n    dpd_delay: 0\n")
    argv = ["run", "--fault", "graceful,reboot", "--profiles", str(path), "--profile", "nodpd", "--backend", "netns"]
    assert cli.main(argv) == 2
    assert one_error_line(capsys) == (
        "failover-lab: error: --profile nodpd with --fault reboot: "
        "dpd_delay 0 never detects a crash; set dpd_delay >= 1"
    )
    assert nothing_built(lab_root)


def test_down_without_labs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["down"]) == 2
    assert "no lab is running" in one_error_line(capsys)


@pytest.mark.parametrize("command", [[], ["up"], ["status"], ["run"], ["demo"], ["report"], ["down"], ["clean"]])
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    assert "usage: failover-lab" in capsys.readouterr().out


def test_report_of_a_folder_without_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "no results" in one_error_line(capsys)


def test_report_of_a_file_that_is_not_a_result(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    record = result.to_json(synthetic_outcome(5.0))
    del record["phases"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps([record]))
    assert cli.main(["report", str(path)]) == 2
    assert one_error_line(capsys) == f"failover-lab: error: {path}[0]: not a failover-lab result: missing key 'phases'"
    assert not (tmp_path / "results-report").exists()


def test_report_of_a_run_json_file_writes_a_report_folder_next_to_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runs, "console", Console(file=io.StringIO(), width=200))
    records = [result.to_json(synthetic_outcome(gap)) for gap in (4.8, 5.2)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(records, indent=1) + "\n")  # as `run --json` writes it
    assert cli.main(["report", str(path)]) == 0
    folder = tmp_path / "results-report"
    assert (folder / "report.md").exists() and result.load(folder) == records
    (folder / "report.md").unlink()
    assert cli.main(["report", str(folder)]) == 0  # and the folder redraws from its own runs
    assert (folder / "report.md").exists()


def test_broken_profiles_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, lab_root: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("profiles:\n  slow:\n    dpd_delay: soon\n")
    assert cli.main(["run", "--fault", "crash", "--profiles", str(path), "--profile", "slow"]) == 2
    assert (
        one_error_line(capsys)
        == f"failover-lab: error: {path}: profiles.slow.dpd_delay: must be a whole number, got 'soon' "
        "(charon reads whole seconds)"
    )
    assert nothing_built(lab_root)


def test_every_problem_of_a_scenario_file_is_a_line_of_its_own(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, lab_root: Path
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("profiles: [fastt]\nfault: {kind: crash, freeze: 5}\nrepeat: 0\n")
    assert cli.main(["run", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"failover-lab: error: {path}: fault.freeze: unknown key for kind crash (only kind freeze takes it); "
        "allowed are kind, cluster_delay",
        f"failover-lab: error: {path}: profiles[0]: 'fastt' is not one of strongswan-default, fast, win2000, "
        "win2003-nlbsflags, win2000-ikev1, win2003-nlbsflags-ikev1",
        f"failover-lab: error: {path}: repeat: must be >= 1, got 0",
    ]
    assert nothing_built(lab_root)


def test_a_broken_scenario_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, lab_root: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crsh}\n")
    assert cli.main(["run", str(path)]) == 2
    assert one_error_line(capsys) == (f"failover-lab: error: {path}: fault.kind: 'crsh' is not one of {FAULTS}")
    assert nothing_built(lab_root)


def test_unknown_policy(capsys: pytest.CaptureFixture[str], lab_root: Path) -> None:
    assert argument_error(["run", "--fault", "crash", "--policy", "mail", "--backend", "netns"], capsys) == (
        "failover-lab run: error: argument --policy: 'mail' is not one of none, mail-passwords, mail-all, "
        "all-traffic (see --help)"
    )
    assert argument_error(["up", "--policy", "mail"], capsys).startswith("failover-lab up: error: argument --policy")
    assert nothing_built(lab_root)


CRASH = Path(__file__).resolve().parents[2] / "scenarios" / "crash.yaml"


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (
            ["--profile", "win2000", "--repeat", "2"],
            "--profile cannot be combined with a scenario file: the file's profiles are the runs; "
            "edit the file or drop --profile",
        ),
        (
            ["--fault", "freeze"],
            "--fault cannot be combined with a scenario file: the file's fault is the run's; "
            "edit the file or drop --fault",
        ),
        (
            ["--profiles", "mine.yaml"],
            "--profiles cannot be combined with a scenario file: the file's profiles are the runs; "
            "edit the file or drop --profiles",
        ),
        (
            ["--cluster-delay", "2"],
            "--cluster-delay cannot be combined with a scenario file: the file's fault sets the cluster delay; "
            "edit the file or drop --cluster-delay",
        ),
        (
            ["--freeze", "2"],
            "--freeze cannot be combined with a scenario file: the file's fault sets the freeze; "
            "edit the file or drop --freeze",
        ),
        (
            ["--profile", "fast", "--profiles", "mine.yaml", "--freeze", "2"],
            "--profile, --profiles and --freeze cannot be combined with a scenario file: the file's profiles "
            "are the runs and the file's fault sets the freeze; edit the file or drop --profile, --profiles "
            "and --freeze",
        ),
    ],
)
def test_options_a_scenario_file_defines_are_refused_in_one_line(
    options: list[str], line: str, capsys: pytest.CaptureFixture[str], lab_root: Path
) -> None:
    assert cli.main(["run", str(CRASH), *options]) == 2
    assert one_error_line(capsys) == f"failover-lab: error: {line}"
    assert nothing_built(lab_root)


class ScenarioRuns:
    """scenario.run without a lab: a synthetic outcome per run, and what it was asked to run."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.calls: list[tuple[scenario.Scenario, timers.Profile, str]] = []
        self.checked: list[str] = []

    def run(
        self, loaded: scenario.Scenario, profile: timers.Profile, backend_name: str, report: object = None
    ) -> list[measure.Outcome]:
        self.calls.append((loaded, profile, backend_name))
        return [synthetic_outcome(self.gap, profile) for _ in range(loaded.model.repeat)]

    def check(self, name: str, inventory: Path | None = None, insecure_host_keys: bool = False) -> None:
        """cli.backend: records the backend; the ssh options' pairing and the inventory are checked
        as they are (the host's fitness is not under test)."""
        self.checked.append(name)
        if name == SSH or inventory is not None:
            backends.backend(name, inventory, insecure_host_keys)


@pytest.fixture
def scenario_runs(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], tuple[ScenarioRuns, io.StringIO]]:
    def prepare(gap: float) -> tuple[ScenarioRuns, io.StringIO]:
        scripted = ScenarioRuns(gap)
        shown = io.StringIO()
        monkeypatch.setattr(scenario, "run", scripted.run)
        monkeypatch.setattr(cli, "backend", scripted.check)
        monkeypatch.setattr(report, "write_folder", lambda results, out, kept=(): out)
        monkeypatch.setattr(runs, "console", Console(file=shown, width=200))
        return scripted, shown

    return prepare


def test_scenario_options_override_the_file_and_say_so(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]]
) -> None:
    runs, shown = scenario_runs(5.0)
    path = tmp_path / "x.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crash}\npolicy: mail-passwords\nbackend: docker\n")
    options = ["--repeat", "2", "--time-scale", "1/2", "--policy", "none", "--backend", "netns"]
    assert cli.main(["run", str(path), *options, "--out", str(tmp_path / "out")]) == 0
    assert shown.getvalue().splitlines()[:4] == [
        "overriding the scenario's repeat 1 with --repeat 2",
        "overriding the scenario's time_scale 1 with --time-scale 1/2",
        "overriding the scenario's policy mail-passwords with --policy none",
        "overriding the scenario's backend docker with --backend netns",
    ]
    ((loaded, profile, backend_name),) = runs.calls
    assert (loaded.model.repeat, loaded.model.policy, loaded.model.backend, backend_name) == (
        2,
        "none",
        "netns",
        "netns",
    )
    assert profile.time_scale == 0.5 and runs.checked == ["netns"]


def test_the_brief_example_runs_twice_on_the_scenarios_own_profiles(
    scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]], tmp_path: Path
) -> None:
    runs, shown = scenario_runs(5.0)
    assert cli.main(["run", str(CRASH), "--repeat", "2", "--out", str(tmp_path)]) == 0
    assert shown.getvalue().splitlines()[0] == "overriding the scenario's repeat 1 with --repeat 2"
    ((loaded, profile, _),) = runs.calls
    assert loaded.model.repeat == 2 and profile.name == "fast"


def test_options_the_file_leaves_open_or_agrees_with_are_applied_silently(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]]
) -> None:
    runs, shown = scenario_runs(5.0)
    path = tmp_path / "x.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crash}\n")
    assert cli.main(["run", str(path), "--repeat", "1", "--backend", "netns", "--out", str(tmp_path)]) == 0
    assert "overriding" not in shown.getvalue()
    assert runs.calls[0][2] == "netns" and runs.checked == ["netns"]
    path.write_text("profiles: [fast]\nfault: {kind: crash}\nbackend: docker:bookworm\n")
    assert cli.main(["run", str(path), "--out", str(tmp_path)]) == 0
    assert runs.calls[1][2] == "docker:bookworm" and runs.checked[1] == "docker:bookworm"  # the file's, said by it


def test_a_failed_expectation_names_the_scenario_and_the_profile(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]]
) -> None:
    """Item names like fail2[ours] are text: rich took [ours] for markup and printed `fail2:`."""
    _, shown = scenario_runs(5.0)
    path = tmp_path / "fail2.yaml"
    ours = "{name: ours, dpd_delay: 2, retransmit_timeout: 1, retransmit_base: 1, retransmit_tries: 2}"
    path.write_text(f"profiles: [{ours}]\nfault: {{kind: crash}}\nexpect: {{outage_max_s: 4}}\n")
    assert cli.main(["run", str(path), "--out", str(tmp_path)]) == 1
    lines = shown.getvalue().splitlines()
    assert any(
        line.startswith("not met: fail2[ours]: outage 5.020 s is more than the expected 4.000 s (predicted ")
        for line in lines
    ), lines
    assert "every expectation met" not in shown.getvalue()


def test_a_scenario_without_expect_is_measured_only(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]]
) -> None:
    _, shown = scenario_runs(9.0)  # far outside the predicted band: judged by nothing
    path = tmp_path / "measure.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crash}\n")
    results = tmp_path / "results.json"
    assert cli.main(["run", str(path), "--out", str(tmp_path), "--json", str(results)]) == 0
    lines = shown.getvalue().splitlines()
    assert lines[-1] == "measure: no expectations: measured only"
    assert "every expectation met" not in shown.getvalue() and "not met" not in shown.getvalue()
    assert f"results written to {results}" in lines  # --json is honoured with a scenario file too
    assert [record["profile"] for record in json.loads(results.read_text())] == ["fast"]


def test_every_expectation_met(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]]
) -> None:
    _, shown = scenario_runs(5.0)
    assert cli.main(["run", str(CRASH), "--out", str(tmp_path)]) == 0
    assert shown.getvalue().splitlines()[-1] == "crash: every expectation met"


def test_exec_needs_a_node_and_a_command_after_two_dashes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["exec", "fe", "swanctl"]) == 2
    assert one_error_line(capsys) == (
        "failover-lab: error: exec needs `--` before the command: use failover-lab exec [LAB] NODE -- COMMAND "
        "[ARGUMENTS...]"
    )
    assert cli.main(["exec", "lab0", "fe", "extra", "--", "true"]) == 2
    assert "exec needs a node and a command" in one_error_line(capsys)


def test_status_says_what_is_wrong_with_the_vip() -> None:
    def entry(*holders: str, owner: int | None = None) -> dict[str, object]:
        nodes = {name: {"vip": name in holders} for name in ("be1", "be2")}
        return {"name": "lab0", "vip": "198.18.0.100", "owner": owner, "nodes": {"fe": {}, **nodes}}

    assert lab_commands.vip_warning(entry("be1")) is None
    assert lab_commands.vip_warning(entry("be1", "be2", owner=4242)) == (
        "both be1 and be2 hold the VIP 198.18.0.100: a failover was interrupted (a killed run?) and the lab is "
        "unusable; `failover-lab clean` removes it"
    )
    assert lab_commands.vip_warning(entry()) == (
        "no back-end holds the VIP 198.18.0.100: the lab is broken; `failover-lab down lab0` removes it"
    )


def test_status_counts_kernel_sas_per_pair_and_mode() -> None:
    held = [
        {"src": "198.18.0.100", "dst": "198.18.0.10", "spi": "0xc8a1b2c3", "mode": "transport"},
        {"src": "198.18.0.10", "dst": "198.18.0.100", "spi": "0xc1d2e3f4", "mode": "transport"},
        {"src": "198.18.0.11", "dst": "198.18.0.20", "spi": "0xc0000001", "mode": "tunnel"},
    ]
    assert lab_commands.kernel_sas(held) == "2 198.18.0.10<->198.18.0.100 transport, 1 198.18.0.11<->198.18.0.20 tunnel"
    assert lab_commands.kernel_sas([]) == "none"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["up", "--backend", "ssh"],
            "--backend ssh needs --inventory FILE: your hosts (see inventories/example.yaml)",
        ),
        (
            ["up", "--backend", "netns", "--inventory", "hosts.yaml"],
            "--inventory is for --backend ssh, not netns: drop one of them",
        ),
        (
            ["up", "--backend", "ssh", "--inventory", "inventories/example.yaml"],
            "inventories/example.yaml: hosts: dc missing: a lab needs a host for every node (fe, be1, be2, dc) so far",
        ),
    ],
)
def test_the_ssh_backend_s_options_are_refused_in_one_line_before_anything_is_built(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str], lab_root: Path
) -> None:
    assert cli.main(argv) == 2
    assert one_error_line(capsys) == f"failover-lab: error: {line}"
    assert nothing_built(lab_root)


NEEDS_INVENTORY = "--backend ssh needs --inventory FILE: your hosts (see inventories/example.yaml)"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["run", "--fault", "crash", "--backend", "ssh"], NEEDS_INVENTORY),
        (
            ["run", "--fault", "crash", "--inventory", "hosts.yaml"],
            "--inventory is for --backend ssh, not auto: drop one of them",
        ),
        (["demo", "--backend", "ssh", "--insecure-host-keys"], NEEDS_INVENTORY),
        (
            ["demo", "--backend", "docker", "--inventory", "hosts.yaml"],
            "--inventory is for --backend ssh, not docker: drop one of them",
        ),
        (["demo", "--inventory", "hosts.yaml"], "--inventory is for --backend ssh, not auto: drop one of them"),
        (["run", str(CRASH), "--backend", "ssh"], NEEDS_INVENTORY),
        (
            ["run", str(CRASH), "--inventory", "hosts.yaml"],
            "--inventory is for --backend ssh, not auto: drop one of them",
        ),
        (
            ["run", str(CRASH), "--backend", "netns", "--inventory", "hosts.yaml"],
            "--inventory is for --backend ssh, not netns: drop one of them",
        ),
        (
            ["run", "--fault", "crash", "--backend", "ssh", "--inventory", "no-such-hosts.yaml"],
            "no-such-hosts.yaml: cannot read it: No such file or directory",
        ),
    ],
)
def test_run_and_demo_refuse_the_ssh_backend_s_options_as_up_does(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str], lab_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "choose", lambda: pytest.fail("auto looked for a backend"))
    monkeypatch.setattr(runs, "measure_runs", lambda *args: pytest.fail("a lab was built"))
    assert cli.main(argv) == 2
    assert one_error_line(capsys) == f"failover-lab: error: {line}"
    assert nothing_built(lab_root)


@pytest.mark.parametrize(
    ("argv", "backend_name", "insecure"),
    [
        (["run", "--fault", "crash"], "ssh", False),
        (["run", "--fault", "crash", "--insecure-host-keys"], "ssh", True),
        (["demo", "--insecure-host-keys"], "ssh", True),
        (["demo"], "netns", False),
    ],
)
def test_run_and_demo_build_their_labs_on_the_hosts_of_the_inventory(
    argv: list[str], backend_name: str, insecure: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = write_inventory(tmp_path / "hosts.yaml")
    asked: list[tuple[object, ...]] = []

    def measure_runs(plan: runs.Plan, params: timers.FaultParams, *where: object) -> list[result.Result]:
        asked.append(where)
        return [result.to_json(synthetic_outcome(4.8))]

    monkeypatch.setattr(runs, "measure_runs", measure_runs)
    monkeypatch.setattr(report, "write_folder", lambda results, out, kept=(): out)
    monkeypatch.setattr(runs, "console", Console(file=io.StringIO(), width=200))
    monkeypatch.chdir(tmp_path)
    hosts_options = ["--inventory", str(hosts)] if backend_name == SSH else []
    cli.main([*argv, "--backend", backend_name, *hosts_options])
    inventory = hosts if backend_name == SSH else None
    out = None if argv[0] == "run" else Path("results/demo")  # each run's evidence goes to the report folder
    assert asked == [(1, backend_name, inventory, insecure, out)]  # repeat 1, on these hosts


def test_a_scenario_runs_on_the_hosts_of_its_own_inventory(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, shown = scenario_runs(5.0)
    hosts = write_inventory(tmp_path / "lab" / "hosts.yaml")
    path = tmp_path / "lab" / "x.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crash}\nbackend: ssh\ninventory: hosts.yaml\n")
    monkeypatch.chdir(tmp_path)  # the inventory is found from the file's folder
    assert cli.main(["run", str(path), "--out", "out"]) == 0
    assert cli.main(["run", str(path), "--backend", "ssh", "--inventory", str(hosts), "--out", "out"]) == 0
    assert "overriding" not in shown.getvalue()  # the same backend and the same file
    for loaded, _, backend_name in runs.calls:
        assert (backend_name, loaded.inventory, loaded.model.insecure_host_keys) == (SSH, hosts, False)
    assert set(runs.checked) == {SSH}


def test_the_command_line_overrides_a_scenario_s_inventory_and_backend_and_says_so(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, shown = scenario_runs(5.0)
    write_inventory(tmp_path / "lab" / "hosts.yaml")
    other = write_inventory(tmp_path / "other.yaml")
    path = tmp_path / "lab" / "x.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crash}\nbackend: ssh\ninventory: hosts.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(path), "--inventory", "other.yaml", "--insecure-host-keys", "--out", "out"]) == 0
    assert cli.main(["run", str(path), "--backend", "netns", "--out", "out"]) == 0
    assert shown.getvalue().splitlines()[:2] == [
        "overriding the scenario's inventory hosts.yaml with --inventory other.yaml",
        "overriding the scenario's insecure_host_keys false with --insecure-host-keys",
    ]
    assert "overriding the scenario's backend ssh with --backend netns" in shown.getvalue()
    (elsewhere, _, _), (local, _, backend_name) = runs.calls
    assert (elsewhere.inventory, elsewhere.model.insecure_host_keys) == (other, True)
    assert (backend_name, local.model.backend, local.inventory) == ("netns", "netns", None)


def test_a_scenario_without_a_backend_runs_where_the_ssh_options_say_silently(
    tmp_path: Path, scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, shown = scenario_runs(5.0)
    hosts = write_inventory(tmp_path / "hosts.yaml")
    monkeypatch.chdir(tmp_path)
    argv = ["run", str(CRASH), "--backend", "ssh", "--inventory", "hosts.yaml", "--insecure-host-keys", "--out", "out"]
    assert cli.main(argv) == 0
    assert "overriding" not in shown.getvalue()
    ((loaded, _, backend_name),) = runs.calls
    assert (backend_name, loaded.inventory, loaded.model.insecure_host_keys) == (SSH, hosts, True)


def test_a_scenario_s_broken_inventory_is_refused_before_any_lab(
    tmp_path: Path,
    scenario_runs: Callable[[float], tuple[ScenarioRuns, io.StringIO]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs, _ = scenario_runs(5.0)
    hosts = write_inventory(tmp_path / "hosts.yaml")
    hosts.write_text(hosts.read_text() + "deadman: 30\n")
    path = tmp_path / "x.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crash}\nbackend: ssh\ninventory: hosts.yaml\n")
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys).startswith(f"failover-lab: error: {hosts}: deadman: unknown key")
    assert runs.calls == []


def test_a_warning_is_one_line_of_the_cli_s_own(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", cli._warn_in_one_line)
        warnings.warn("be1: its VM was booted again (ESP cannot work on this node)", stacklevel=1)
    assert (
        capsys.readouterr().err
        == "failover-lab: warning: be1: its VM was booted again (ESP cannot work on this node)\n"
    )
