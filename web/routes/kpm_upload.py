"""/kpm/import: supervisors upload a KPM registry CSV (the `prokus kpm import` format); it is
checked while it streams to a file under the data directory, then imported in the
background (db.import_jobs) while the page polls its progress.

The upload is multipart/form-data parsed by python-multipart's streaming parser, chunk by
chunk, straight to disk (never the whole file in memory); the CSRF token travels in the
X-CSRF-Token header (htmx sends it, static/app.js). Audit actions: `kpm_upload` (accepted
or refused upload), `kpm_import` (the result counts, written by the job),
`kpm_rejects_download`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from db import import_jobs as jobs
from web.deps import (
    audit,
    current_operator,
    db,
    now,
    redirect,
    render,
    require_role,
    web_context,
)

FIELD = "berkas"  # the file input's name
MAX_BODY = jobs.MAX_UPLOAD_BYTES + 1024 * 1024  # the file plus the multipart framing


class _Sink:
    """python-multipart callbacks: the file part named FIELD goes through the UploadCheck
    into a file; other parts are ignored."""

    def __init__(self, path: Path, check: jobs.UploadCheck) -> None:
        self.path, self.check = path, check
        self.filename: str | None = None
        self.found = False
        self._file: Any = None
        self._in_file = False
        self._field, self._value = bytearray(), bytearray()
        self._headers: dict[bytes, bytes] = {}

    @property
    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if name == FIELD and filename and not self.found:
            self.found, self._in_file = True, True
            self.filename = filename.decode("utf-8", "replace")
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            chunk = data[start:end]
            self.check.feed(chunk)
            self._file.write(chunk)

    def _part_end(self) -> None:
        self._in_file = False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _refuse(request: Request, code: str, filename: str | None, size: int) -> Response:
    """Tell the operator what is wrong with the upload; nothing was imported."""
    session = db(request)
    audit(request, session, "kpm_upload", "rejected", subject="kpm_import:-",
          detail={"reason": code, "filename": jobs.display_name(filename), "bytes": size})
    session.commit()
    message = jobs.UPLOAD_MESSAGES[code]
    status = 413 if code == "too_large" else 400
    if _is_htmx(request):
        return render(request, "kpm_import_error.html", {"message": message},
                      status_code=status)
    return _page(request, error=message, status_code=status)


def _accept(request: Request, path: Path, filename: str | None, size: int) -> Response:
    """Store the job, audit the upload and start the import in the background."""
    context = web_context(request)
    operator = current_operator(request)
    session = db(request)
    job = jobs.create_job(session, operator=operator.username, filename=filename or "",
                          path=path, total_bytes=size, now=now(request))
    audit(request, session, "kpm_upload", "ok", subject=f"kpm_import:{job.id}",
          detail={"filename": job.filename, "bytes": size})
    session.commit()
    jobs.start(context.sessions, job.id, clock=context.clock)
    if _is_htmx(request):
        return render(request, "kpm_import_job.html", _job_context(request, job),
                      status_code=202)
    return redirect(f"/kpm/import/{job.id}")


@require_role("supervisor")
async def upload(request: Request) -> Response:
    """Receive the file (streamed to disk, checked on the way), then queue its import."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return await anyio.to_thread.run_sync(_refuse, request, "no_file", None, 0)
    folder = web_context(request).settings.data_dir
    final = await anyio.to_thread.run_sync(jobs.new_upload_path, folder, now(request))
    partial = final.with_suffix(".part")
    check = jobs.UploadCheck()
    sink = _Sink(partial, check)
    parser = MultipartParser(boundary, sink.callbacks, max_size=MAX_BODY)
    error: str | None = None
    try:
        async for chunk in request.stream():
            if error is None:
                try:
                    await anyio.to_thread.run_sync(parser.write, chunk)
                except jobs.UploadError as exc:
                    error = exc.code
                except MultipartParseError:
                    error = "no_file"
                if error == "too_large":
                    break  # stop reading; the rest is not wanted
            # after an error the rest of the body is read and dropped, so the browser
            # gets the answer rather than a broken connection
        if error is None:
            parser.finalize()
            if not sink.found:
                error = "no_file"
            else:
                try:
                    await anyio.to_thread.run_sync(check.finish)
                except jobs.UploadError as exc:
                    error = exc.code
    except ClientDisconnect:
        sink.close()
        partial.unlink(missing_ok=True)
        return Response(status_code=400)
    finally:
        sink.close()
    if error is not None:
        partial.unlink(missing_ok=True)
        return await anyio.to_thread.run_sync(_refuse, request, error, sink.filename,
                                              check.size)
    partial.rename(final)
    return await anyio.to_thread.run_sync(_accept, request, final, sink.filename, check.size)


# ---------------------------------------------------------------------- pages
def _recover(request: Request) -> None:
    """Report jobs whose process died (a restart, a crash) as failed."""
    session = db(request)
    if jobs.recover_stale(session, now=now(request)):
        session.commit()


def human_size(size: int) -> str:
    """1536 -> "1,5 KB", 12_345_678 -> "11,8 MB" (Indonesian decimal comma)."""
    value, unit = float(size), "B"
    for unit in ("B", "KB", "MB", "GB"):  # noqa: B007 - the last unit is used below
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    text = f"{value:.0f}" if unit == "B" else f"{value:.1f}".replace(".", ",")
    return f"{text} {unit}"


def _job_context(request: Request, job) -> dict[str, Any]:
    total = job.total_bytes or 0
    percent = 100 if job.status == jobs.DONE else (
        int(job.done_bytes * 100 / total) if total else 0)
    return {"job": job, "percent": min(percent, 100),
            "done_size": human_size(job.done_bytes or 0), "total_size": human_size(total),
            "active": job.status in jobs.ACTIVE,
            "result": (jobs.result_detail(db(request), job.id)
                       if job.status in (jobs.DONE, jobs.FAILED) else None),
            "can_download": bool(job.rejects_path and job.rows_rejected
                                 and job.status == jobs.DONE
                                 and Path(job.rejects_path).is_file())}


def _page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    _recover(request)
    session = db(request)
    return render(request, "kpm_import.html", {
        "jobs": jobs.recent_jobs(session, 10), "error": error,
        "header": ",".join(jobs.HEADER), "max_mb": jobs.MAX_UPLOAD_BYTES // (1024 * 1024),
    }, status_code=status_code)


@require_role("supervisor")
def import_page(request: Request) -> Response:
    """The upload form and the latest imports."""
    return _page(request)


def _job_or_404(request: Request):
    try:
        job_id = int(request.path_params["job_id"])
    except ValueError:
        raise HTTPException(404) from None
    job = jobs.get_job(db(request), job_id)
    if job is None:
        raise HTTPException(404)
    return job


@require_role("supervisor")
def job_page(request: Request) -> Response:
    """One import: its progress while it runs, its counts when it is done."""
    _recover(request)
    job = _job_or_404(request)
    return render(request, "kpm_import_status.html", _job_context(request, job))


@require_role("supervisor")
def job_progress(request: Request) -> Response:
    """The job's panel alone (htmx polls it every second until the job ends)."""
    _recover(request)
    job = _job_or_404(request)
    return render(request, "kpm_import_job.html", _job_context(request, job))


@require_role("supervisor")
def job_rejects(request: Request) -> Response:
    """The rejected rows (line, reason, masked NIK) as CSV; audited."""
    job = _job_or_404(request)
    path = Path(job.rejects_path) if job.rejects_path else None
    if path is None or not job.rows_rejected or not path.is_file():
        raise HTTPException(404)
    session = db(request)
    audit(request, session, "kpm_rejects_download", "ok", subject=f"kpm_import:{job.id}",
          detail={"rows": job.rows_rejected})
    session.commit()
    return FileResponse(path, media_type="text/csv; charset=utf-8",
                        filename=f"impor-kpm-{job.id}-ditolak.csv")


routes = [
    Route("/kpm/import", import_page, methods=["GET"]),
    Route("/kpm/import", upload, methods=["POST"], max_body_size=MAX_BODY),
    Route("/kpm/import/{job_id}", job_page, methods=["GET"]),
    Route("/kpm/import/{job_id}/progress", job_progress, methods=["GET"]),
    Route("/kpm/import/{job_id}/rejects.csv", job_rejects, methods=["GET"]),
]
