"""JSON and CSV downloads of the audit trail, streamed a chunk of rows at a time."""

import csv
import io
import json
from collections.abc import Iterable, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

from audit.selectors import COLUMNS

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """The cell's text, with a leading quote where a spreadsheet would read a formula."""
    if value is None or value in ("", {}, []):
        text = ""
    elif isinstance(value, dict | list):
        text = json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
    else:
        text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _iso(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def json_chunks(rows: Iterable[dict]) -> Iterator[str]:
    yield "["
    for n, row in enumerate(rows):
        record = {name: row[name] for name in COLUMNS} | {"at": _iso(row["at"])}
        yield ("," if n else "") + "\n" + json.dumps(record, cls=DjangoJSONEncoder)
    yield "\n]\n"


def csv_chunks(rows: Iterable[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow([csv_safe(_iso(row["at"]))] + [csv_safe(row[name]) for name in COLUMNS[1:]])
        if n % 200 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_response(request, rows: Iterable[dict], *, fmt: str, filename: str) -> StreamingHttpResponse:
    """Stream ``rows`` as ``fmt`` ("json" or "csv"); under ASGI each chunk is read from the database in a thread."""
    chunks = json_chunks(rows) if fmt == "json" else csv_chunks(rows)
    content_type = "application/json" if fmt == "json" else "text/csv; charset=utf-8"
    response = StreamingHttpResponse(
        _async(chunks) if isinstance(request, ASGIRequest) else chunks, content_type=content_type
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


async def _async(chunks: Iterator[str]):
    done = object()
    while (chunk := await sync_to_async(next, thread_sensitive=True)(chunks, done)) is not done:
        yield chunk
