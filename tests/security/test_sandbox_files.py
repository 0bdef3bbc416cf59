"""Files between the worker (root) and a Python recipe's child (a uid of its own): the child
owns its working folder and may plant symlinks or swap folders in it at any moment.

Before the hand-over folder, the child put a symlink at ``in-<input>.parquet`` in its folder:
the worker wrote the export through it, then chowned the file it led to over to the child,
which could then rewrite any file of the machine. And ``write_dataset`` read, as root,
whatever the child's path led to once checked.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.recipes import RecipeRun, execute
from apps.flow.storage import FlowError
from apps.scenarios.sandbox import Sandbox

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="the child has a uid of its own under root"),
]


@pytest.fixture
def victim(tmp_path):
    """A root-only file in a folder any account may pass through."""
    folder = tmp_path / "victim"
    folder.mkdir()
    folder.chmod(0o755)
    tmp_path.chmod(0o755)
    path = folder / "secret.txt"
    path.write_text("root's own\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def recipe(project, cast, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "src.csv").write_text("a,b\n1,x\n2,y\n")
    files = Connection.objects.create(name="f", kind="filesystem", config={"root": str(root)})
    src = Dataset.objects.create(project=project, name="src", connection=files, path="src.csv")
    out = Dataset.objects.create(project=project, name="out", connection=files,
                                 format="parquet", path="out.parquet")  # fmt: skip

    def run(code: str) -> list[str]:
        made, _ = Recipe.objects.update_or_create(
            project=project, name="r", defaults={"kind": "python", "code": code}
        )
        made.inputs.set([src])
        made.outputs.set([out])
        lines: list[str] = []
        try:
            execute(made, RecipeRun(lambda m, level="info": lines.append(m), threading.Event(), 60,
                                    user=cast["owner"]))  # fmt: skip
        except FlowError as error:
            lines.append(f"recipe failed: {error}")
        return lines

    return run


def test_a_symlink_in_the_childs_folder_leads_the_worker_nowhere(recipe, victim):
    lines = recipe(f"""
import os
from cadenza._rpc import call
from cadenza.datasets import read_dataset, write_dataset
os.symlink({str(victim)!r}, "in-src.parquet")
path = call("read_dataset", name="src")
print("handed over in the working folder:", os.path.dirname(path) == os.getcwd())
print("rows read:", len(read_dataset("src")))
for attempt in (lambda: open(path, "a"), lambda: os.listdir(os.path.dirname(path)),
                lambda: open(os.path.join(os.path.dirname(path), "x"), "w")):
    try:
        attempt()
        print("allowed")
    except OSError as error:
        print("refused:", type(error).__name__)
try:
    open({str(victim)!r}, "a")
except OSError as error:
    print("victim refused:", type(error).__name__)
write_dataset("out", read_dataset("src"))
""")
    assert not [line for line in lines if line.startswith("recipe failed")], lines
    assert "handed over in the working folder: False" in lines
    assert "rows read: 4" not in lines and "rows read: 2" in lines
    # The child may append to its own copy, not list or add to the worker's folder.
    assert lines.count("allowed") == 1 and lines.count("refused: PermissionError") == 2
    assert "victim refused: PermissionError" in lines
    assert victim.read_text() == "root's own\n"
    assert (victim.stat().st_uid, victim.stat().st_mode & 0o777) == (0, 0o600)


@pytest.mark.parametrize(
    "plant",
    [
        "os.symlink({victim!r}, 'out.parquet')",  # a symlink at the end of the path
        "os.symlink({folder!r}, 'sub'); path = os.path.abspath('sub/secret.txt')",
    ],
)
def test_write_dataset_reads_only_a_file_the_child_wrote(recipe, victim, plant):
    code = "import os\nfrom cadenza._rpc import call\npath = os.path.abspath('out.parquet')\n"
    code += plant.format(victim=str(victim), folder=str(victim.parent)) + "\n"
    code += "call('write_dataset', name='out', path=path)\n"
    lines = recipe(code)
    assert lines[-1] == "recipe failed: Python recipe r failed: exit code 1"
    assert "CadenzaError: ValueError: write_dataset: the data file must be " in "\n".join(lines)
    assert victim.read_text() == "root's own\n"


def test_a_file_not_the_childs_is_refused_whatever_the_name_led_to(tmp_path):
    """The check made on the opened file itself: the child may have swapped a folder of
    the path after it was looked at, so a root file in the working folder stands for any."""
    sandbox = Sandbox(on_stdout=print, on_stderr=print)
    sandbox.account, sandbox.workdir = 2_000_000_999, tmp_path
    planted = tmp_path / "data.parquet"
    planted.write_bytes(b"PAR1")
    with pytest.raises(ValueError, match="must be a file the recipe wrote"):
        sandbox.open_childs_file(str(planted))
    os.chown(planted, 2_000_000_999, 2_000_000_999)
    os.close(sandbox.open_childs_file(str(planted)))
    with pytest.raises(ValueError, match="must be in the recipe's working folder"):
        sandbox.open_childs_file(str(Path("/etc/passwd")))
