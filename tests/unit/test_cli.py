"""Bad input and unfit environments: one line, exit 2, nothing built."""

import io
from pathlib import Path

import pytest
from rich.console import Console

from harness import cli, measure, registry, strongswan, timers
from harness.backends.netns import NetnsBackend


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


def test_repeat_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--fault", "crash", "--repeat", "0"]) == 2
    assert "--repeat" in one_error_line(capsys)


def test_down_without_labs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["down"]) == 2
    assert "no lab is running" in one_error_line(capsys)


@pytest.mark.parametrize("command", [[], ["up"], ["status"], ["run"], ["demo"], ["report"], ["down"], ["clean"]])
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    assert "usage: failover-lab" in capsys.readouterr().out


def test_bad_time_scale_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--fault", "crash", "--time-scale", "2"])
    assert exit_.value.code == 2
    assert "--time-scale" in one_error_line(capsys)


def test_report_of_a_folder_without_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "no results" in one_error_line(capsys)


def test_broken_profiles_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, lab_root: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("profiles:\n  slow:\n    dpd_delay: soon\n")
    assert cli.main(["run", "--fault", "crash", "--profiles", str(path), "--profile", "slow"]) == 2
    assert (
        one_error_line(capsys)
        == f"failover-lab: error: {path}: profiles.slow.dpd_delay: must be a whole number, got 'soon'"
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
