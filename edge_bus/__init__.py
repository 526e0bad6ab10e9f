"""edge-bus: a real-time breast-ultrasound inference runtime (OpenVINO INT8, multitask lesion models)."""

__version__ = "0.1.0"
