"""Names a run may give its files (issue 19): one that is not UTF-8 leaves the run's other
files listable and downloadable from the SDK, and is itself reachable under os.fsdecode's
name; a 255-byte name downloads although "<name>.part" would not fit."""

import os

from conftest import write_script

BAD = os.fsdecode(b"outputs/bad\xff\xfe.txt")
LONG = "outputs/" + "n" * 251 + ".bin"


def test_names_that_are_not_utf8_or_fill_name_max(ws, project, tmp_path):
    from amld.core import Experiment, ScriptRunConfig
    write_script(project, "train.py", """import os
os.makedirs("outputs", exist_ok=True)
open(b"outputs/bad\\xff\\xfe.txt", "wb").write(b"bad")
open("outputs/good.txt", "w").write("good")
open("%s", "w").write("long")
""" % LONG)
    run = Experiment(ws, "names").submit(ScriptRunConfig(str(project), script="train.py"))
    run.wait_for_completion()
    names = run.get_file_names()
    assert BAD in names and "outputs/good.txt" in names and LONG in names
    out = tmp_path / "all"
    written = run.download_files(prefix="outputs/", output_directory=str(out))
    assert len(written) == 3
    assert (out / "outputs" / "good.txt").read_text() == "good"
    assert open(os.path.join(str(out), BAD), "rb").read() == b"bad"
    assert open(os.path.join(str(out), LONG)).read() == "long"
    one = run.download_file(BAD, str(tmp_path))
    assert open(one, "rb").read() == b"bad"
    assert sorted(os.listdir(str(tmp_path / "all" / "outputs"))) == sorted(
        [os.path.basename(BAD), "good.txt", os.path.basename(LONG)]), "a temp file was left"
