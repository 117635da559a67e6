"""deploy/compose.yaml and the two Dockerfiles, checked without Docker (none runs here): the
commands are real `prokus` commands with flags the CLI accepts, the roles are right (webhook
bots without the console, a console without the webhook, workers, a one-shot migration that
the others wait for), NLU_URL names every NLU server, every file referenced exists, no secret
is written in, and HAProxy accepts deploy/haproxy.cfg with the addresses compose gives it."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml
from click.testing import CliRunner

from bot.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SECRETS = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "PROKUS_DATA_KEY",
           "PROKUS_LOG_SECRET", "NLU_AUTH_TOKEN", "POSTGRES_PASSWORD")
# A value taken from deploy/.env by compose's interpolation: ${NAME}, ${NAME:?msg}, ${NAME-x}.
REFERENCE = re.compile(r"^\$\{(?P<name>[A-Z][A-Z0-9_]*)(?::?[?-][^}]*)?\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the list form: NAME=value or NAME
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def dockerfile_of(service: dict) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return (DEPLOY / build / "Dockerfile").resolve()
    context = (DEPLOY / build.get("context", ".")).resolve()
    return (context / build.get("dockerfile", "Dockerfile")).resolve()


def prokus_services(compose: dict) -> dict[str, dict]:
    """The services running the bot image (deploy/Dockerfile)."""
    return {name: s for name, s in services(compose).items()
            if dockerfile_of(s) == DEPLOY / "Dockerfile"}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if current and raw.lstrip().startswith("#"):
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        lines.append(current.strip())
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.lstrip().startswith("[") else \
        shlex.split(arguments)


def parse_prokus(argv: list[str]) -> tuple[list[str], click.Context]:
    """Resolve `prokus <group> ... <command> --flags` with the CLI's own click parser (no
    callback runs): an unknown command or flag, or a bad value, raises a click error."""
    assert argv[0] == "prokus", f"not a prokus command: {argv}"
    command: click.Command = main
    args = list(argv[1:])
    path: list[str] = []
    while isinstance(command, click.Group):
        assert args, f"{argv}: a group without a command"
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"{argv}: `prokus {' '.join(path)} {args[0]}` does not exist"
        path.append(args.pop(0))
        command = sub
    ctx = command.make_context(" ".join(["prokus", *path]), args)
    return path, ctx


def commands(compose: dict) -> dict[str, list[str]]:
    """The command of every bot-image service, else the bot Dockerfile's CMD."""
    default = next(exec_form(a) for i, a in instructions(DEPLOY / "Dockerfile") if i == "CMD")
    return {name: s.get("command") or default for name, s in prokus_services(compose).items()}


# ---------------------------------------------------------------------- commands and roles
def test_every_bot_image_command_is_a_prokus_command_the_cli_accepts(compose):
    found = commands(compose)
    assert {"migrate", "bot-1", "bot-2", "worker-1", "console"} <= set(found)
    for name, argv in found.items():
        assert isinstance(argv, list), f"{name}: use the exec form (a list), not a string"
        path, _ctx = parse_prokus(argv)
        done = CliRunner().invoke(main, [*path, "--help"], prog_name="prokus")
        assert done.exit_code == 0, (name, done.output)
    # the Dockerfile's default command too
    default = next(exec_form(a) for i, a in instructions(DEPLOY / "Dockerfile") if i == "CMD")
    parse_prokus(default)


def test_a_wrong_flag_would_be_caught():
    with pytest.raises(click.UsageError):
        parse_prokus(["prokus", "serve", "--webhooks"])
    with pytest.raises(AssertionError):
        parse_prokus(["prokus", "serv"])


def test_bots_serve_the_webhook_without_the_console_and_the_console_without_it(compose):
    roles: dict[str, list[str]] = {"bot": [], "console": [], "worker": [], "migrate": []}
    for name, argv in commands(compose).items():
        path, ctx = parse_prokus(argv)
        if path == ["serve"] and ctx.params["webhook"]:
            assert ctx.params["console"] is False, f"{name}: a bot instance without the console"
            assert ctx.params["host"] == "0.0.0.0" and ctx.params["port"] == 8000, name
            assert ctx.params["with_worker"] is False, f"{name}: workers run on their own"
            roles["bot"].append(name)
        elif path == ["serve"]:
            assert ctx.params["console"] is True, name
            roles["console"].append(name)
        elif path == ["worker"]:
            assert ctx.params["until_idle"] is False, name
            roles["worker"].append(name)
        elif path == ["db", "upgrade"]:
            roles["migrate"].append(name)
    assert len(roles["bot"]) >= 2 and 1 <= len(roles["worker"]) <= 4
    assert roles["console"] == ["console"] and roles["migrate"] == ["migrate"]


def _waits_for_migrate(compose: dict, name: str, seen: frozenset = frozenset()) -> bool:
    depends = services(compose)[name].get("depends_on") or {}
    if isinstance(depends, list):
        return False  # the short form does not wait for completion
    for other, how in depends.items():
        if other == "migrate":
            return how.get("condition") == "service_completed_successfully"
        if other not in seen and _waits_for_migrate(compose, other, seen | {name}):
            return True
    return False


def test_the_migration_is_a_one_shot_everything_waits_for(compose):
    migrate = services(compose)["migrate"]
    assert migrate["command"] == ["prokus", "db", "upgrade"]
    assert str(migrate.get("restart", "no")) == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for name in prokus_services(compose):
        if name != "migrate":
            assert _waits_for_migrate(compose, name), f"{name} starts before the migration"


def test_nlu_url_lists_every_nlu_server(compose):
    nlu = {name for name in services(compose) if name.startswith("nlu-")}
    assert len(nlu) >= 2
    port = next(re.search(r"-p (\d+)", a).group(1) for i, a in
                instructions(DEPLOY / "Dockerfile.nlu") if i == "CMD")
    for name, service in prokus_services(compose).items():
        urls = environment(service)["NLU_URL"].split(",")
        hosts = {urlsplit(u.strip()).hostname for u in urls}
        assert hosts == nlu, f"{name}: NLU_URL names {hosts}, the NLU services are {nlu}"
        assert {str(urlsplit(u.strip()).port) for u in urls} == {port}
    for name in nlu:
        assert dockerfile_of(services(compose)[name]) == DEPLOY / "Dockerfile.nlu"
        assert "NLU_AUTH_TOKEN" in environment(services(compose)[name])


def test_haproxy_sends_to_the_bot_instances(compose):
    lb = services(compose)["haproxy"]
    assert lb["image"].startswith("haproxy:2.6")
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    env = environment(lb)
    assert set(env) >= {"PROKUS_LB_BIND", "PROKUS_BOT1", "PROKUS_BOT2"}
    bots = {}
    for name, argv in commands(compose).items():
        path, ctx = parse_prokus(argv)
        if path == ["serve"] and ctx.params["webhook"]:
            address = services(compose)[name]["networks"]["prokus"]["ipv4_address"]
            bots[name] = f"{address}:{ctx.params['port']}"
    assert {env["PROKUS_BOT1"], env["PROKUS_BOT2"]} == set(bots.values())
    listen = env["PROKUS_LB_BIND"].rsplit(":", 1)[1]
    assert any(str(p).endswith(f":{listen}") for p in lb["ports"])


def test_health_checks_restart_policies_and_limits(compose):
    for name, argv in commands(compose).items():
        path, ctx = parse_prokus(argv)
        if path == ["serve"]:
            test = " ".join(services(compose)[name]["healthcheck"]["test"])
            assert f"127.0.0.1:{ctx.params['port']}/healthz" in test, name
    for name, service in services(compose).items():
        if name.startswith("nlu-"):
            assert "/status?token=" in " ".join(service["healthcheck"]["test"])
        one_shot = str(service.get("restart", "no")) == "no"
        assert one_shot == (name in ("migrate", "regions", "wal-archive-owner")), \
            f"{name}: a long-running service restarts (unless-stopped), a one-shot does not"
        if not one_shot or name != "wal-archive-owner":
            limits = service["deploy"]["resources"]["limits"]
            assert limits["memory"] and limits["cpus"], f"{name}: no resource limits"
    db = services(compose)["db"]
    assert db["image"] == "postgres:15"
    assert "pg_isready" in db["healthcheck"]["test"]
    assert any(v.startswith("pg-data:") for v in db["volumes"])
    assert "pg-data" in compose["volumes"]


# ---------------------------------------------------------------------- files and secrets
def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for instruction, arguments in instructions(dockerfile):
        if instruction in ("COPY", "ADD"):
            parts = [p for p in exec_form(arguments) if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def test_every_file_the_deployment_names_exists(compose):
    ignored = [line.strip().rstrip("/") for line in
               (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for name, service in services(compose).items():
        dockerfile = dockerfile_of(service)
        if dockerfile is not None:
            assert dockerfile.is_file(), f"{name}: {dockerfile}"
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT
            for source in _copy_sources(dockerfile):
                assert (context / source).exists(), f"{dockerfile.name}: COPY {source}"
                top = source.rstrip("/").split("/")[0]
                assert not any(fnmatch.fnmatch(top, pattern) for pattern in ignored), \
                    f"{dockerfile.name} copies {source}, which .dockerignore leaves out"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: volume {source}"
    nlu = DEPLOY / "Dockerfile.nlu"
    for needed in ("requirements-nlu.lock", "requirements-nlu.txt", "config.yml", "nlu/",
                   "models/"):
        assert needed in _copy_sources(nlu)
    assert (ROOT / "nlu" / "components" / "slang.py").is_file()


def test_the_bot_image_installs_every_package_of_the_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    steps = instructions(DEPLOY / "Dockerfile")
    copied = {s.rstrip("/") for s in _copy_sources(DEPLOY / "Dockerfile")}
    assert "pyproject.toml" in copied and packages <= copied
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert any(i == "RUN" and "pip install" in a and " ." in a for i, a in steps)
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_nlu_image_runs_rasa_with_the_token():
    steps = instructions(DEPLOY / "Dockerfile.nlu")
    assert steps[0] == ("FROM", "python:3.10-slim")
    assert any(i == "RUN" and "-r requirements-nlu.txt -c requirements-nlu.lock" in a
               for i, a in steps)
    cmd = " ".join(next(exec_form(a) for i, a in steps if i == "CMD"))
    for part in ("rasa run", "--enable-api", "-m models/", "--auth-token",
                 "${NLU_AUTH_TOKEN:?"):
        assert part in cmd
    env = " ".join(a for i, a in steps if i == "ENV")
    assert "PYTHONPATH=/app" in env  # config.yml names nlu.components.*
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_rasa_accepts_the_nlu_image_flags():
    rasa = ROOT / ".venv-nlu" / "bin" / "rasa"
    if not rasa.exists():
        pytest.skip("no .venv-nlu (make setup) to ask `rasa run --help`")
    cmd = next(exec_form(a) for i, a in instructions(DEPLOY / "Dockerfile.nlu") if i == "CMD")
    flags = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", cmd[-1]))
    assert flags >= {"--enable-api", "-m", "-i", "-p", "--auth-token"}
    done = subprocess.run([str(rasa), "run", "--help"], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp",
                                            "RASA_TELEMETRY_ENABLED": "false"})
    assert done.returncode == 0, done.stderr[-2000:]
    offered = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", done.stdout))
    assert flags <= offered, f"rasa run does not know {flags - offered}"


def test_no_secret_is_written_in_compose(compose):
    for name, service in services(compose).items():
        env = environment(service)
        for key in SECRETS:
            if key in env:
                match = REFERENCE.match(env[key] or "")
                assert match and match["name"] == key, f"{name}: {key} has a literal value"
        if "DATABASE_URL" in env:
            # scheme://user:PASSWORD@host (a reference may hold '/' and spaces)
            found = re.match(r"^[a-z+]+://[^:/@]+:(?P<pw>.*)@[^@]*$", env["DATABASE_URL"])
            assert found and REFERENCE.match(found["pw"]), \
                f"{name}: DATABASE_URL holds a password"
    text = COMPOSE.read_text()
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}", text), "a bot token in compose.yaml"


def test_the_env_example_has_placeholders_for_everything_compose_reads():
    example = (DEPLOY / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.M))
    for key in SECRETS:
        assert key in values, f"{key} missing from deploy/.env.example"
        assert re.fullmatch(r"<[^<>]+>", values[key].strip()), f"{key}: not a placeholder"
    mentioned = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert used <= mentioned, f"not explained in deploy/.env.example: {used - mentioned}"


def test_haproxy_accepts_the_config_with_the_compose_addresses(compose, tmp_path):
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (Debian package `haproxy`), so its own "
                    "config check cannot run here")
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", **environment(services(compose)["haproxy"])}
    done = subprocess.run([haproxy, "-c", "-f", str(DEPLOY / "haproxy.cfg")], env=env,
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
