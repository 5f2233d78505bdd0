"""colossim calibrate without a GPU (torch is not a dependency): one line, exit 2."""

import importlib.util

import pytest


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch present")
def test_calibrate_without_gpu_exits_2_with_one_line(cli, tmp_path):
    code, out, err = cli("calibrate", "--out", str(tmp_path / "p.json"), "--quick")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "torch" in err
    assert not (tmp_path / "p.json").exists()


def test_calibrate_unknown_chip_is_one_line(cli, tmp_path):
    code, _, err = cli("calibrate", "--out", str(tmp_path / "p.json"), "--chip", "h1000")
    assert code == 2 and "h1000" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch present")
def test_train_probe_without_gpu_exits_2_and_writes_nothing(cli, tmp_path):
    code, out, err = cli("train", "probe", "--out", str(tmp_path / "new" / "probe.json"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "torch" in err
    assert not (tmp_path / "new").exists()  # not even the folder --out names


def test_train_probe_predict_only_needs_no_gpu(cli, tmp_path):
    import json

    from colossim.training.probe import ProbeConfig, predict

    code, out, _ = cli("train", "probe", "--predict-only", "--json", "--layers", "12", "--out",
                       str(tmp_path / "probe.json"))
    assert code == 0
    row = json.loads(out)
    assert row == json.loads((tmp_path / "probe.json").read_text())
    assert row["predicted"]["step_time_s"] == pytest.approx(predict(ProbeConfig(layers=12), "h100-sxm").step_time_s)
    assert "measured" not in row


def test_train_probe_bad_activation_is_one_line(cli):
    code, _, err = cli("train", "probe", "--predict-only", "--activation", "relu")
    assert code == 2 and "probe.activation" in err and len(err.strip().splitlines()) == 1


def test_an_out_path_that_cannot_be_written_is_refused_before_any_measuring(cli, tmp_path):
    (tmp_path / "a-file").write_text("x")
    for out, why in ((tmp_path / "absent" / "p.json", "No such file"), (tmp_path, "Is a directory")):
        code, _, err = cli("calibrate", "--out", str(out), "--quick")
        # refused on the path, not on the missing GPU: nothing would be measured only to be lost
        assert code == 2 and "cannot write" in err and why in err and "torch" not in err, err
        assert len(err.strip().splitlines()) == 1
    code, _, err = cli("train", "probe", "--predict-only", "--out", str(tmp_path / "a-file" / "probe.json"))
    assert code == 2 and "cannot write" in err and len(err.strip().splitlines()) == 1, err
