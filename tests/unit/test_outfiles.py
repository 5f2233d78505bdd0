"""Files written where the user says: whole or not at all, refused in one line before long work."""

from __future__ import annotations

import os
import stat

import pytest

from colossim import charts
from colossim.cost import default_profile, load_profile, save_profile
from colossim.errors import ColossimError
from colossim.outfiles import check_writable, make_folder, write_text_whole


def test_a_file_is_written_whole_or_not_at_all(tmp_path):
    page = tmp_path / "chart.html"
    page.write_text("earlier", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_text_whole(page, "half \ud800 written", "html")  # fails while writing
    assert page.read_text(encoding="utf-8") == "earlier"
    assert os.listdir(tmp_path) == ["chart.html"]  # no temporary file left behind
    charts.write_html(page, "<html>new</html>")
    assert page.read_text(encoding="utf-8") == "<html>new</html>"
    assert os.listdir(tmp_path) == ["chart.html"]


@pytest.mark.parametrize("where,why", [("absent/f.txt", "No such file"), (".", "Is a directory")])
def test_a_path_that_cannot_be_written_is_one_error_naming_the_option(tmp_path, where, why):
    target = tmp_path / where
    for call in (lambda: write_text_whole(target, "x", "out"), lambda: check_writable(target, "out")):
        with pytest.raises(ColossimError) as e:
            call()
        assert e.value.field == "out" and why in str(e.value) and str(target) in str(e.value)
    assert sorted(os.listdir(tmp_path)) == []  # nothing written, no temporary file


def test_a_folder_to_be_made_is_checked_without_making_it(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "f.json", "out", create_folders=True)
    assert os.listdir(tmp_path) == []  # checked, nothing created
    with pytest.raises(ColossimError):
        check_writable(tmp_path / "new" / "f.json", "out")  # the folder must exist without create_folders
    (tmp_path / "file").write_text("x")
    with pytest.raises(ColossimError) as e:
        check_writable(tmp_path / "file" / "sub" / "f.json", "out", create_folders=True)
    assert e.value.field == "out" and "Not a directory" in str(e.value)


def test_a_folder_is_made_or_refused(tmp_path):
    make_folder(tmp_path / "new" / "deeper" / "f.json", "out")
    assert (tmp_path / "new" / "deeper").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ColossimError) as e:
        make_folder(tmp_path / "file" / "sub" / "f.json", "out")
    assert e.value.field == "out"


def test_a_new_file_gets_the_permissions_open_would_give_and_an_old_one_keeps_its_own(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_whole(tmp_path / "new.html", "x", "html")
        kept = tmp_path / "kept.html"
        kept.write_text("x")
        kept.chmod(0o600)
        write_text_whole(kept, "y", "html")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.html").stat().st_mode) == 0o644
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == "y"


def test_a_profile_round_trips_and_a_bad_path_keeps_the_old_one(tmp_path):
    p = tmp_path / "p.json"
    prof = default_profile("h100-sxm")
    save_profile(prof, p)
    before = p.read_text()
    assert load_profile(p).gemm["bf16"].max_efficiency == pytest.approx(prof.gemm["bf16"].max_efficiency)
    with pytest.raises(ColossimError) as e:
        save_profile(prof, tmp_path / "absent" / "p.json")
    assert e.value.field == "out" and p.read_text() == before
