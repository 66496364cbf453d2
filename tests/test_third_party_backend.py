"""A third-party backend, installed the way a user's package would be (an `agnostic.backends`
entry point in its distribution's metadata), is listed by `agnostic info` and passes the whole
conformance suite by name. The backend is `tests/thirdparty/agnostic_boxed.py`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out like site-packages holding the module and its dist-info."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(HERE / "thirdparty" / "agnostic_boxed.py", site / "agnostic_boxed.py")
    info = site / "agnostic_boxed-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: agnostic-boxed\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[agnostic.backends]\nboxed = agnostic_boxed:BoxedBackend\n")
    return site


def _agnostic(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "agnostic", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=900, check=False,
    )  # fmt: skip


def test_info_lists_the_entry_point_backend(site: Path) -> None:
    out = _agnostic(site, "info")
    assert out.returncode == 0, out.stderr
    row = next((r for r in out.stdout.splitlines() if r.startswith("boxed")), None)
    assert row is not None, out.stdout
    assert "available" in row and "0.1" in row and "cpu" in row


def test_the_whole_suite_passes_on_it_by_name(site: Path) -> None:
    out = _agnostic(site, "conformance", "--backend", "boxed", "--", "-W", "ignore")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    total = next(r for r in out.stdout.splitlines() if r.startswith("TOTAL") and "boxed" in r)
    passed, failed, error = (int(v) for v in total.split()[2:5])
    assert passed > 2000 and failed == 0 and error == 0, total
