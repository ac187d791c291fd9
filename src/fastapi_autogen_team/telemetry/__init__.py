"""The service's OpenTelemetry traces, metrics and logs, and its heartbeat.

Nothing here starts at import: the app's lifespan calls `Telemetry.start(settings)` and
`await telemetry.shutdown()`.
"""

from fastapi_autogen_team.telemetry.heartbeat import record_heartbeat
from fastapi_autogen_team.telemetry.lifespan import Telemetry
from fastapi_autogen_team.telemetry.metrics import Instruments
from fastapi_autogen_team.telemetry.tracing import log_with_trace

__all__ = ["Instruments", "Telemetry", "log_with_trace", "record_heartbeat"]
