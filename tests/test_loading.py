"""Loading the network stack in the background while the rest of the app goes on."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# a fresh interpreter: the import it races with happens once per process
RACE = textwrap.dedent("""
    import sys, time
    import numpy as np
    from scipy.spatial.transform import Rotation
    from annotator.engine.loading import finish_warm_up, warm_up

    warm_up()
    deadline = time.monotonic() + 60
    while "torch" not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.0005)
    failures = 0
    # what napari's 3-D camera and the engine pass scipy while torch is still half imported
    for args in ([0.0, 0.0, 0.0, 1.0], (0.0, 0.0, 0.0, 1.0), np.array([0.0, 0.0, 0.0, 1.0]),
                 np.array([0.0, 0.0, 0.0, 1.0], np.float32)):
        try:
            Rotation.from_quat(args)
        except AttributeError as exc:
            failures += 1
            print("failed:", exc, flush=True)
    finish_warm_up()
    print("torch complete:", hasattr(sys.modules["torch"], "Tensor"), "failures:", failures)
""")


def test_scipy_works_while_torch_loads_in_the_background():
    """The network stack loads in a background thread once an image is up. Meanwhile,
    scipy, asked by the main thread (napari's 3-D camera turning the view: Ctrl+Y in the
    first second) or by an engine step, whether a list or an array is a torch tensor, found
    torch half imported and failed ("partially initialized module 'torch' has no attribute
    'Tensor'"): an error in place of the 3-D view or the step."""
    out = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch complete: True failures: 0" in out.stdout, out.stdout + out.stderr[-2000:]


BUILD = textwrap.dedent("""
    import sys, time
    from annotator.engine.loading import finish_warm_up, warm_up
    from annotator.models.networks import build_network
    from annotator.models.registry import ModelRegistry

    spec = ModelRegistry().preferred("deepedit").card.architecture
    warm_up()
    time.sleep(0.1)  # the warm-up is under way (it takes about 2 s), MONAI not yet loaded
    try:
        build_network(spec)
        print("built")
    except Exception as exc:
        print("failed:", type(exc).__name__, exc)
    finish_warm_up()
""")


def test_a_network_built_while_monai_loads_in_the_background():
    """A model chosen in the Models dialog (or imported) while the background warm-up was
    still importing MONAI imported it too, from another thread, and Python stopped one of
    the two: "deadlock detected by _ModuleLock('monai.networks.nets')". One thread imports
    the network stack at a time; the other waits for it."""
    out = subprocess.run([sys.executable, "-c", BUILD], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("built"), out.stdout + out.stderr[-2000:]
