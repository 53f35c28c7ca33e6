"""dfd: deepfake image detection library (datasets, imaging, models, training, runs, evaluation, detection).

Importing ``dfd`` or its data/imaging/runs/evaluate modules never imports TensorFlow or Streamlit;
models, training and detection import TensorFlow when called.
"""

from pathlib import Path

__version__ = "0.1.0"

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_RUN = "default"
# Where the shared datasets are looked for when a run's stored image paths do not exist (moved or another
# machine): $DFD_DATA, then ../shared/data beside the repository.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
