"""Data sets, ground-truth density maps, models, training, evaluation and export (needs the `train` extra
only for the torch parts: annotations, density maps and metrics are plain NumPy)."""
