"""Bad input and unfit environments: one line, exit 2, nothing built."""

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from harness import cli, measure, registry, result, strongswan, timers
from harness.backends.netns import NetnsBackend

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


def test_unknown_fault(capsys: pytest.CaptureFixture[str], lab_root: Path) -> None:
    assert cli.main(["run", "--fault", "crsh"]) == 2
    assert one_error_line(capsys) == (
        "failover-lab: error: unknown fault 'crsh': "
        "choose one of graceful, graceful-noblock, crash, freeze, link-cut, reboot, reboot-announce"
    )
    assert nothing_built(lab_root)


def test_unknown_profile(capsys: pytest.CaptureFixture[str], lab_root: Path) -> None:
    assert cli.main(["run", "--fault", "crash", "--profile", "slow"]) == 2
    line = one_error_line(capsys)
    assert "unknown profile 'slow'" in line and "strongswan-default, fast, win2000, win2003-nlbsflags" in line
    assert cli.main(["up", "--profile", "slow"]) == 2
    one_error_line(capsys)
    assert nothing_built(lab_root)


def test_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "--backend", "vmware"]) == 2
    assert "unknown backend 'vmware': choose one of auto, netns, docker, docker:bookworm" in one_error_line(capsys)


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
        ("--freeze", "x", "must be a number > 0, got 'x'"),
        ("--freeze", "0", "must be a number > 0, got '0'"),
        ("--freeze", "inf", "must be a number > 0, got 'inf'"),
        ("--cluster-delay", "-1", "must be a number >= 0, got '-1'"),
        ("--cluster-delay", "nan", "must be a number >= 0, got 'nan'"),
        ("--repeat", "0", "must be a whole number >= 1, got '0'"),
        ("--repeat", "many", "must be a whole number >= 1, got 'many'"),
        ("--repeat", "1.5", "must be a whole number >= 1, got '1.5'"),
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
    assert cli.parser().parse_args(["demo"]).time_scale == pytest.approx(1 / 30)


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
    monkeypatch.setattr(cli, "console", Console(file=io.StringIO(), width=200))
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


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_reporter_on_and_off_a_terminal(
    terminal: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, force_terminal=terminal, width=120))
    bounds = timers.Bounds(4.0, 6.1)
    with cli.progress_reporter("crash / fast", bounds.hi) as report:
        for elapsed, phase in ((0.1, "detection"), (4.8, "negotiation"), (4.9, "data")):
            report(measure.Progress(elapsed, bounds, phase))
    shown = buffer.getvalue() + capsys.readouterr().out
    assert "data" in shown
    if not terminal:
        assert shown.count("crash / fast:") == 3  # one plain line per phase


def test_a_broken_scenario_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, lab_root: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("profiles: [fast]\nfault: {kind: crsh}\n")
    assert cli.main(["run", str(path)]) == 2
    assert one_error_line(capsys) == (
        f"failover-lab: error: {path}: fault.kind: 'crsh' is not one of "
        "graceful, graceful-noblock, crash, freeze, link-cut, reboot, reboot-announce"
    )
    assert nothing_built(lab_root)


def test_unknown_policy(capsys: pytest.CaptureFixture[str], lab_root: Path) -> None:
    assert cli.main(["run", "--fault", "crash", "--policy", "mail", "--backend", "netns"]) == 2
    assert "unknown policy 'mail': choose one of none, mail-passwords, mail-all, all-traffic" in one_error_line(capsys)
    assert nothing_built(lab_root)
