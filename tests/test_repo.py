"The repository's promises: README generated from index.ipynb, the package importable as users import it."
import subprocess, sys
from pathlib import Path
root = Path(__file__).resolve().parent.parent

def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(root/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_all_exports():
    import fastcam.all as fa
    for n in ['Capture', 'preserve_state', 'pets_dls', 'label_func', 'cam_learner', 'gap_head', 'efficientnet_lite0', 'cam', 'show_cam', 'show_maps', 'class_panel']:
        assert hasattr(fa, n), n
