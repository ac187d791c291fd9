"""A real OTLP/HTTP receiver for tests: the collector side of what the service exports.

It listens on a free 127.0.0.1 port in a thread, accepts POST /v1/traces, /v1/metrics and
/v1/logs, decodes the protobuf bodies with `opentelemetry.proto` and keeps what it decoded,
flattened into small records that tests can assert on. `wait_for_*` block until something
matching arrives, so a test can wait for a periodic export instead of sleeping; an async test
whose event loop must keep running meanwhile calls them through `anyio.to_thread.run_sync`.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

T = TypeVar("T")

Attributes = dict[str, Any]


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: Attributes
    resource: Attributes
    scope: str
    status_code: int


@dataclass(frozen=True)
class LogRecord:
    body: Any
    severity_text: str
    severity_number: int
    trace_id: str
    span_id: str
    attributes: Attributes
    resource: Attributes
    scope: str


@dataclass(frozen=True)
class MetricPoint:
    """One data point; `value` is the sum or gauge value, or a histogram's count."""

    name: str
    unit: str
    value: float
    attributes: Attributes
    resource: Attributes
    histogram_sum: float | None = None


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.logs: list[LogRecord] = []
        self.metrics: list[MetricPoint] = []
        self.requests: list[str] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def settings(self) -> dict[str, str]:
        """The three endpoint settings pointing here."""
        return {
            "TRACES_ENDPOINT": f"{self.endpoint}/v1/traces",
            "METRICS_ENDPOINT": f"{self.endpoint}/v1/metrics",
            "LOGS_ENDPOINT": f"{self.endpoint}/v1/logs",
        }

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait_for_span(self, name: str, timeout: float = 5.0) -> Span:
        return self._wait(lambda: [s for s in self.spans if s.name == name], timeout, name)

    def wait_for_log(
        self, predicate: Callable[[LogRecord], bool], timeout: float = 5.0
    ) -> LogRecord:
        return self._wait(lambda: [r for r in self.logs if predicate(r)], timeout, "log record")

    def wait_for_metric(
        self,
        name: str,
        predicate: Callable[[MetricPoint], bool] = lambda point: True,
        timeout: float = 5.0,
    ) -> MetricPoint:
        def matching() -> list[MetricPoint]:
            return [p for p in self.metrics if p.name == name and predicate(p)]

        return self._wait(matching, timeout, f"metric {name}")

    def _wait(self, find: Callable[[], list[T]], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (found := find()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"No {what} reached the OTLP receiver in {timeout} s.")
                self._changed.wait(remaining)
        return found[-1]

    def _receive(self, path: str, body: bytes) -> Message | None:
        decoded: list[Any]
        if path == "/v1/traces":
            request: Message = ExportTraceServiceRequest.FromString(body)
            decoded, response = list(_spans(request)), ExportTraceServiceResponse()
        elif path == "/v1/metrics":
            request = ExportMetricsServiceRequest.FromString(body)
            decoded, response = list(_metric_points(request)), ExportMetricsServiceResponse()
        elif path == "/v1/logs":
            request = ExportLogsServiceRequest.FromString(body)
            decoded, response = list(_log_records(request)), ExportLogsServiceResponse()
        else:
            return None

        with self._changed:
            self.requests.append(path)
            target: list[Any] = {
                "/v1/traces": self.spans,
                "/v1/metrics": self.metrics,
                "/v1/logs": self.logs,
            }[path]
            target.extend(decoded)
            self._changed.notify_all()
        return response


def unused_loopback_endpoint() -> str:
    """An http://127.0.0.1:PORT nobody listens on (bound and released here), for "no collector"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)

            response = receiver._receive(self.path, body)
            if response is None:
                self.send_error(404)
                return
            payload = response.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output to what the tests say

    return Handler


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Iterable[KeyValue]) -> Attributes:
    return {pair.key: _value(pair.value) for pair in pairs}


def _spans(request: ExportTraceServiceRequest) -> Iterator[Span]:
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield Span(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes=_attributes(span.attributes),
                    resource=resource,
                    scope=scope_spans.scope.name,
                    status_code=span.status.code,
                )


def _log_records(request: ExportLogsServiceRequest) -> Iterator[LogRecord]:
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                yield LogRecord(
                    body=_value(record.body),
                    severity_text=record.severity_text,
                    severity_number=record.severity_number,
                    trace_id=record.trace_id.hex(),
                    span_id=record.span_id.hex(),
                    attributes=_attributes(record.attributes),
                    resource=resource,
                    scope=scope_logs.scope.name,
                )


def _metric_points(request: ExportMetricsServiceRequest) -> Iterator[MetricPoint]:
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for attributes, value, histogram_sum in _points(metric):
                    yield MetricPoint(
                        metric.name, metric.unit, value, attributes, resource, histogram_sum
                    )


def _points(metric: Metric) -> Iterator[tuple[Attributes, float, float | None]]:
    kind = metric.WhichOneof("data")
    if kind in ("sum", "gauge"):
        for point in getattr(metric, kind).data_points:
            number = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
            yield _attributes(point.attributes), number, None
    elif kind in ("histogram", "exponential_histogram"):
        for point in getattr(metric, kind).data_points:
            yield _attributes(point.attributes), point.count, point.sum
