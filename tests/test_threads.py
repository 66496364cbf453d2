"""`ag.set_num_threads` / `ag.num_threads` / `ag.get_num_threads`: the count reaches NumPy's BLAS and
OpenMP (as threadpoolctl reports them), torch (also when its backend loads later) and XLA (before
JAX starts: after, a warning says it cannot); the block form restores every library; bad counts
are clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import threadpoolctl

import agnostic as ag
from agnostic import threads
from agnostic.backends import backend_class, backend_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# where another test of this process started JAX, a count set here warns that XLA keeps its pools
# (checked in a fresh process below)
pytestmark = pytest.mark.filterwarnings("ignore:.*JAX has started:RuntimeWarning")


def _pools() -> list[int]:
    return [int(info["num_threads"]) for info in threadpoolctl.threadpool_info()]


def _installed(name: str) -> bool:
    return name in backend_names() and backend_class(name).available()[0]


@pytest.fixture(autouse=True)
def _restore_the_process() -> None:
    """Every count these tests set is put back: the other tests in this process keep theirs."""
    limits = threadpoolctl.threadpool_limits(limits=None)
    torch = sys.modules.get("torch")
    torch_count = torch.get_num_threads() if torch is not None else None
    env = os.environ.get("PJRT_NPROC")
    requested = threads._requested
    yield
    limits.restore_original_limits()
    if torch_count is not None:
        torch.set_num_threads(torch_count)
    if env is None:
        os.environ.pop("PJRT_NPROC", None)
    else:
        os.environ["PJRT_NPROC"] = env
    threads._requested = requested


def _python(code: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
        cwd=ROOT, env=environ, check=False,
    )  # fmt: skip


def test_set_num_threads_limits_every_blas_and_openmp_pool() -> None:
    assert _pools(), "NumPy's BLAS should be visible to threadpoolctl"
    ag.set_num_threads(1)
    assert set(_pools()) == {1}
    assert ag.get_num_threads() == 1 or "torch" in sys.modules  # (torch's own pool: next test)
    assert os.environ.get("PJRT_NPROC") == "1" or threads._xla_started()


def test_the_block_form_restores_every_pool() -> None:
    before = _pools()
    with ag.num_threads(1) as n:
        assert n == 1 and set(_pools()) == {1}
    assert _pools() == before


def test_torch_gets_the_count_and_back() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with ag.num_threads(1):
        assert torch.get_num_threads() == 1
        assert ag.get_num_threads() == 1
        torch.set_num_threads(3)  # another pool with more threads: reported, as in effect
        assert ag.get_num_threads() == 3
    assert torch.get_num_threads() == before


def test_a_count_set_before_torch_loads_reaches_it_and_does_not_import_it() -> None:
    if not _installed("torch"):
        pytest.skip("torch is not installed")
    out = _python(
        """
        import sys
        import agnostic as ag
        ag.set_num_threads(1)
        assert "torch" not in sys.modules, "set_num_threads imported torch"
        ag.backend("torch")
        import torch
        print(torch.get_num_threads(), ag.get_num_threads())
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]


def _xla_threads(count: int) -> int:
    """The process's thread count after JAX started with `ag.set_num_threads(count)` set before."""
    out = _python(
        f"""
        import sys
        import agnostic as ag
        ag.set_num_threads({count})
        assert "jax" not in sys.modules, "set_num_threads imported jax"
        ag.backend("jax").ones(3).numpy()
        status = open("/proc/self/status").read()
        print(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
        """
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_a_count_set_before_jax_starts_sizes_xla_pools() -> None:
    if not _installed("jax"):
        pytest.skip("jax is not installed")
    if not os.path.exists("/proc/self/status"):
        pytest.skip("counts threads through Linux's /proc")
    assert _xla_threads(6) >= _xla_threads(1) + 5  # XLA starts one thread per count in each pool


def test_after_jax_started_a_warning_says_xla_keeps_its_pools() -> None:
    if not _installed("jax"):
        pytest.skip("jax is not installed")
    out = _python(
        """
        import warnings
        import agnostic as ag
        ag.backend("jax").ones(3).numpy()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ag.set_num_threads(1)
        print(ag.get_num_threads())
        print(*[str(w.message) for w in caught if w.category is RuntimeWarning], sep="\\n")
        """
    )
    assert out.returncode == 0, out.stderr
    count, message = out.stdout.split("\n", 1)
    assert count == "1"
    assert "set_num_threads(1): JAX has started, and XLA sized its CPU thread pools" in message
    assert "start Python with PJRT_NPROC=1" in message


@pytest.mark.parametrize("function", [ag.set_num_threads, ag.num_threads])
@pytest.mark.parametrize(
    "bad, error, message",
    [
        (0, ValueError, "must be at least 1, got 0"),
        (-1, ValueError, "must be at least 1, got -1"),
        ("2", TypeError, "must be an int, got '2' (str)"),
        (2.0, TypeError, "must be an int, got 2.0 (float)"),
        (True, TypeError, "must be an int, got True (bool)"),
    ],
)
def test_bad_counts_are_clear_errors_and_change_nothing(function, bad, error, message) -> None:
    before = _pools()
    with pytest.raises(error) as info:
        if function is ag.num_threads:
            with function(bad):
                pass
        else:
            function(bad)
    assert str(info.value).startswith(f"{function.__name__}: the number of threads {message}"), info.value
    assert _pools() == before
