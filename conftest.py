"""Settings for the whole test run, the chapters (nbval) included."""

import os

# The suite runs as 2 xdist workers on 2 cores: one thread each. The chapters' kernels are
# child processes of the workers and inherit this (torch reads it when it starts).
os.environ.setdefault("OMP_NUM_THREADS", "1")
