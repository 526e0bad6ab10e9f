"""Training, export and quantisation of edge-bus's lesion models (needs the ``train`` extra)."""
