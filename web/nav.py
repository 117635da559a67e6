"""The console's main menu: one list, in display order. Add an entry when you add a page
(and only then: the menu links only to pages that exist)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    """A menu entry. `roles` empty: every signed-in operator sees it; otherwise only those
    roles (keep it the same as the page's @require_role). `description` is shown on the
    home page's list of what this operator can do."""

    label: str
    path: str
    roles: tuple[str, ...] = ()
    description: str = ""

    def visible_to(self, role: str) -> bool:
        return not self.roles or role in self.roles

    def is_current(self, path: str) -> bool:
        if self.path == "/":
            return path == "/"
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


NAV: list[NavItem] = [
    NavItem("Dasbor", "/"),
    NavItem("Pendaftaran", "/registrations",
            description="Periksa, verifikasi, terima atau tolak pendaftaran."),
    NavItem("Kotak masuk", "/inbox", roles=("verifier", "coordinator", "supervisor"),
            description="Pengguna yang ingin bicara dengan petugas: ambil, balas, tutup."),
    NavItem("Pendamping", "/mentors", roles=("coordinator", "supervisor"),
            description="Daftar pendamping, penugasan peserta dan jadwal pertemuan."),
    NavItem("Siaran", "/broadcasts", roles=("coordinator", "supervisor"),
            description="Kirim pengumuman ke peserta dan pantau pengirimannya."),
    NavItem("Impor KPM", "/kpm/import", roles=("supervisor",),
            description="Unggah data KPM (CSV) dan lihat hasil impornya."),
    NavItem("Tinjau NLU", "/nlu/review", roles=("coordinator", "supervisor"),
            description="Beri label pesan yang tidak dipahami asisten, untuk melatih ulang."),
    NavItem("Audit", "/audit", roles=("supervisor",),
            description="Catatan siapa melakukan apa dan kapan."),
    NavItem("Operator", "/operators", roles=("supervisor",),
            description="Tambah dan nonaktifkan akun operator konsol."),
]


def menu_for(role: str, path: str) -> list[dict[str, object]]:
    """The entries this role sees, each with `current` set for the page being shown."""
    return [{"label": item.label, "path": item.path, "description": item.description,
             "current": item.is_current(path)}
            for item in NAV if item.visible_to(role)]
