"""/operators: supervisors list, add and disable console accounts (the same functions as
`prokus operators`). Audit actions `operator_add` and `operator_disable`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import operators as accounts
from web.deps import (
    audit,
    current_operator,
    db,
    flash,
    form,
    now,
    redirect,
    render,
    require_role,
)

ERRORS = {  # OperatorError.code -> what the form says
    "username_invalid": "Nama pengguna 3–32 karakter: huruf kecil a–z, angka, titik, garis "
                        "bawah atau tanda hubung, diawali huruf atau angka.",
    "username_taken": "Nama pengguna itu sudah dipakai. Pilih nama lain.",
    "role_invalid": "Pilih peran: verifikator, koordinator atau supervisor.",
    "region_invalid": "Kode wilayah tidak dikenal. Contoh: 32 (provinsi), 32.01 "
                      "(kabupaten/kota) atau 32.01.05 (kecamatan).",
    "password_short": f"Kata sandi minimal {accounts.PASSWORD_MIN} karakter.",
    "password_long": f"Kata sandi maksimal {accounts.PASSWORD_MAX} karakter.",
    "password_mismatch": "Kedua kata sandi tidak sama.",
    "not_found": "Akun operator itu tidak ditemukan.",
    "already_disabled": "Akun itu sudah nonaktif.",
    "self": "Anda tidak bisa menonaktifkan akun Anda sendiri.",
}
FIELD_OF = {"username_invalid": "username", "username_taken": "username",
            "role_invalid": "role", "region_invalid": "region", "password_short": "password",
            "password_long": "password", "password_mismatch": "password2"}


def _page(request: Request, *, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    rows = accounts.list_operators(db(request))
    return render(request, "operators.html", {
        "rows": rows, "now": now(request), "roles": accounts.ROLES,
        "values": values or {"role": "verifier"}, "errors": errors or {},
    }, status_code=status_code)


@require_role("supervisor")
def operators_page(request: Request) -> Response:
    """List the accounts with the form to add one."""
    return _page(request)


@require_role("supervisor")
def add_operator(request: Request) -> Response:
    """Create an account from the form; errors are shown next to their field."""
    data = form(request)
    values = {key: str(data.get(key, "")) for key in ("username", "role", "region")}
    password, repeated = str(data.get("password", "")), str(data.get("password2", ""))
    session = db(request)
    try:
        if password != repeated:
            raise accounts.OperatorError("password_mismatch", "passwords differ")
        operator = accounts.add_operator(session, values["username"], values["role"],
                                         password, values["region"] or None,
                                         now=now(request))
    except accounts.OperatorError as exc:
        session.rollback()
        return _page(request, values=values, status_code=400,
                     errors={FIELD_OF.get(exc.code, "username"): ERRORS[exc.code]})
    audit(request, session, "operator_add", "ok", subject=f"operator:{operator.username}",
          detail={"role": operator.role, "region": operator.kode_wilayah})
    session.commit()
    flash(request, f"Akun {operator.username} ditambahkan. Sampaikan kata sandinya secara "
                   "langsung, bukan lewat chat.")
    return redirect("/operators")


@require_role("supervisor")
def disable_operator(request: Request) -> Response:
    """Switch an account off; its sessions end at once."""
    username = request.path_params["username"]
    session = db(request)
    if accounts.normalise_username(username) == current_operator(request).username:
        flash(request, ERRORS["self"], "error")
        return redirect("/operators")
    try:
        operator = accounts.disable_operator(session, username)
    except accounts.OperatorError as exc:
        session.rollback()
        flash(request, ERRORS[exc.code], "error")
        return redirect("/operators")
    audit(request, session, "operator_disable", "ok", subject=f"operator:{operator.username}")
    session.commit()
    flash(request, f"Akun {operator.username} dinonaktifkan; sesinya sudah diakhiri.")
    return redirect("/operators")


routes = [
    Route("/operators", operators_page, methods=["GET"]),
    Route("/operators", add_operator, methods=["POST"]),
    Route("/operators/{username}/disable", disable_operator, methods=["POST"]),
]
