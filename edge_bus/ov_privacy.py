"""OpenVINO without its usage telemetry: :func:`import_openvino` is how edge-bus imports it."""

from __future__ import annotations

from types import ModuleType

__all__ = ["disable_openvino_telemetry", "import_openvino"]


def disable_openvino_telemetry() -> None:
    """Turn off the usage telemetry (Google Analytics) that OpenVINO (an event at ``import
    openvino``), its model converter and NNCF send unless the user opted out, for this process only
    (no file is written): software beside a scanner should not phone home. They re-check consent
    each time, so the check itself answers "declined". Call it before importing them."""
    try:
        import openvino_telemetry
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return

    def declined(self: object, *args: object, **kwargs: object) -> ConsentCheckResult:
        return ConsentCheckResult.DECLINED

    OptInChecker.check = declined  # type: ignore[method-assign, unused-ignore]  # typed only where openvino_telemetry ships stubs
    try:
        openvino_telemetry.Telemetry().consent = False  # the singleton, if a tool (NNCF at import) made it
    except Exception:  # noqa: BLE001 - not created yet: the patched check covers its creation
        pass


def import_openvino() -> ModuleType:
    """``import openvino``, with its telemetry off (:func:`disable_openvino_telemetry`)."""
    disable_openvino_telemetry()
    import openvino

    return openvino
