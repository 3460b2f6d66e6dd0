"""Operations telemetry: /metrics for Prometheus, OpenTelemetry traces, JSON logs (issue 10 §6)."""
