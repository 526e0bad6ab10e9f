"""Run telemetry: latency statistics, FPS, and hardware facts."""

from edge_bus.telemetry.chart_series import ChartSeries, ChartSeriesBuilder
from edge_bus.telemetry.hardware import HardwareFacts, free_disk_gb, hardware_facts, openvino_devices
from edge_bus.telemetry.series import FrameSeries, SeriesBuilder
from edge_bus.telemetry.stats import END_TO_END, GLASS_TO_GLASS, FpsMeter, LatencyStats, LatencySummary, StageMetrics

__all__ = [
    "END_TO_END",
    "ChartSeries",
    "ChartSeriesBuilder",
    "GLASS_TO_GLASS",
    "HardwareFacts",
    "FpsMeter",
    "FrameSeries",
    "LatencyStats",
    "LatencySummary",
    "SeriesBuilder",
    "StageMetrics",
    "free_disk_gb",
    "hardware_facts",
    "openvino_devices",
]
