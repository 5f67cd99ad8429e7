"""Settings for the whole test run, the chapters (nbval) included."""

import os

# The suite runs as 2 xdist workers on 2 cores: one thread each. The chapters' kernels are
# child processes of the workers and inherit this (torch reads it when it starts).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The chapters' training loops show tqdm's notebook bars: ipywidgets that each kernel
# would stream to the test worker many times a second. The stored chapters are executed
# without them (TQDM_DISABLE=1, honoured by minids.train.progress_bar), and so are the tests.
os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_configure(config):
    """The chapters train on data/tokens, which `python -m minids data` makes (in about
    15 s) and git does not keep. Make it once, before the xdist workers start."""
    from pathlib import Path

    data = Path(__file__).parent / "data"
    if hasattr(config, "workerinput") or (data / "tokens" / "train.npy").is_file():
        return
    from minids.data import prepare

    prepare(data, verbose=False)
