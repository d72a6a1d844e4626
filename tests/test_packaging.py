"""The package installs as a regular wheel with the design card's layout and the `loco` script."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_pipelines_and_recipes_under_loco_tf(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("loco_tf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "loco = loco_tf.recipes.cli:main" in archive.read(entry_points).decode()
    for module in ["ops/poisson_binomial.py", "pipelines/readers.py", "recipes/cli.py"]:
        assert f"loco_tf/{module}" in names
    assert not any(n.startswith(("pipelines/", "recipes/", "tests/")) for n in names)

    # A regular (non-editable) install, run from outside the checkout.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", "import loco_tf.recipes.cli as c, loco_tf; "
         "print(c.__file__); c.main(['--version'])"],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert str(target) in result.stdout, result.stderr[-2000:]
    assert "loco, version" in result.stdout
