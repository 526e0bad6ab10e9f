"""The model zoo's training code lives in :mod:`models.training` (needs the ``train`` extra)."""
