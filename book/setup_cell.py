# Setup. In Colab: fetch minids, install it (Colab's own torch is kept: minids asks
# only for torch>=2.3) and make its data (about a minute). Elsewhere: run from the
# repository root, where data/ is. Every chapter starts with this cell
# (book/setup_cell.py).
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = "https://github.com/minids-book/minids"
if "google.colab" in sys.modules:
    if not Path("/content/minids").exists():
        clone = ["git", "clone", "--depth", "1", REPOSITORY, "/content/minids"]
        subprocess.run(clone, check=True)
    os.chdir("/content/minids")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".[data]"],
                   check=True)
    if not Path("data/tokens").exists():
        subprocess.run([sys.executable, "-m", "minids", "data"], check=True)
    sys.path.insert(0, os.getcwd())
    import minids

    print(f"minids {minids.__version__} is ready")
elif not Path("data").is_dir() and Path("../data").is_dir():
    os.chdir("..")
