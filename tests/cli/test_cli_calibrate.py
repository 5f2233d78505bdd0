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
