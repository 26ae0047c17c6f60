#!/usr/bin/env python3
"""Checks of the deployment files, made without a Docker engine.

- docker-compose.yml validates against the Compose Specification JSON schema (check-jsonschema's
  vendored copy) and has the cluster layout the docs promise: redis, node-a/b/c on one image,
  lb (HAProxy) in front, metrics on 9601-9603.
- deploy/Dockerfile parses with the official BuildKit parser, passes hadolint, builds with the
  Makefile's `build` target and runs as a non-root user with HEALTHCHECK and EXPOSE.
- deploy/ferrocast.toml is accepted by the real release binary: with only the backplane driver,
  host and ports overridden, the node becomes ready and exits 0 on SIGTERM.
- deploy/haproxy.cfg passes `haproxy -c` and routes round-robin to exactly the compose nodes,
  checking /readyz.
- Each node's `stop_grace_period` exceeds its whole drain (docs/operations.md, upgrades and
  draining): shutdown_grace_s + leave_delay_ms + flush_timeout_s as the node would read them
  (compose environment, then deploy/ferrocast.toml, then the defaults documented in
  docs/configuration.md, which must match crates/server/src/config.rs) plus a 5 s margin.
- HAProxy never replays a request that may have been processed: response-level retries
  (empty-response, response-timeout, status codes) are off for everything but GET/HEAD. Checked
  in the file and with the real haproxy in front of two stub backends on loopback: a POST that a
  backend read and closed without answering is not sent again, a GET is, and a refused
  connection is retried on the other backend.

Run by pytest (`make test-deploy`) or as a plain script (`python3 check_deploy.py`); either way
every problem fails with a message and a non-zero exit, and nothing is ever skipped.
Environment: FERROCAST_BIN (default target/release/ferrocast); the tools check-jsonschema and
hadolint are taken from this interpreter's bin directory (the tests/deploy/.venv) or PATH.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

try:
    import tomllib  # Python 3.11+

    import dockerfile
    from ruamel.yaml import YAML
except ImportError as e:  # not the tests/deploy/.venv interpreter
    sys.exit(
        f"check_deploy.py: {e}. Run `make test-deploy`, or use tests/deploy/.venv/bin/python "
        "after `pip install -r tests/deploy/requirements.txt` there."
    )

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
NODE_CONFIG = REPO / "deploy" / "ferrocast.toml"
CONFIG_DOC = REPO / "docs" / "configuration.md"
CONFIG_RS = REPO / "crates" / "server" / "src" / "config.rs"
HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"
DOCKERIGNORE = REPO / ".dockerignore"
MAKEFILE = REPO / "Makefile"

NODES = ("node-a", "node-b", "node-c")
IMAGE = "ferrocast:local"
# Where the image's CMD points and where the Dockerfile puts the node configuration.
IMAGE_CONFIG_PATH = "/etc/ferrocast/ferrocast.toml"
BUILD_COMMAND = "cargo build --release --locked"


class CheckFailed(AssertionError):
    """A deployment file is wrong; the message says which and how."""


def fail(message: str) -> None:
    raise CheckFailed(message)


def check(condition: object, message: str) -> None:
    if not condition:
        fail(message)


def tool(name: str) -> str:
    """An executable from this interpreter's venv, else from PATH; a missing tool fails."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        fail(
            f"`{name}` is not installed: run `make test-deploy`, which installs "
            "tests/deploy/requirements.txt into tests/deploy/.venv and haproxy with apt"
        )
    return found


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, **kwargs)


def load_compose() -> dict:
    check(COMPOSE.is_file(), f"{COMPOSE} is missing")
    return YAML(typ="safe", pure=True).load(COMPOSE.read_text())


def load_node_config() -> dict:
    check(NODE_CONFIG.is_file(), f"{NODE_CONFIG} is missing")
    try:
        return tomllib.loads(NODE_CONFIG.read_text())
    except tomllib.TOMLDecodeError as e:
        fail(f"{NODE_CONFIG.relative_to(REPO)} is not valid TOML: {e}")


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def port_mappings(service: dict) -> list[tuple[str | None, str, str]]:
    """(host_ip, published, target) of every `ports` entry, short or long syntax."""
    mappings = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            mappings.append((entry.get("host_ip"), str(entry.get("published", "")), str(entry["target"])))
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            mappings.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            mappings.append((None, parts[0], parts[1]))
        else:
            mappings.append((None, "", parts[0]))
    return mappings


def healthcheck_command(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(t) for t in test)
    return str(test or "")


# ----------------------------------------------------------------------------------------------
# docker-compose.yml


def test_compose_validates_against_compose_spec_schema():
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    check(
        result.returncode == 0,
        "docker-compose.yml does not validate against the Compose Specification schema:\n"
        + result.stdout
        + result.stderr,
    )


def test_compose_describes_the_cluster():
    compose = load_compose()
    services = compose.get("services") or {}
    expected = {"redis", *NODES, "lb"}
    check(set(services) == expected, f"compose services are {sorted(services)}, expected {sorted(expected)}")

    redis = services["redis"]
    check(str(redis.get("image", "")).startswith("redis:7"), f"redis image is {redis.get('image')!r}, expected redis:7-*")
    check("redis-cli ping" in healthcheck_command(redis), "redis needs a healthcheck running `redis-cli ping`")

    builders = [name for name in NODES if "build" in services[name]]
    check(len(builders) >= 1, "no node service has a `build` section: nothing builds ferrocast:local")
    node_ids = []
    metrics_host_ports = []
    for name in NODES:
        node = services[name]
        check(node.get("image") == IMAGE, f"{name}: image is {node.get('image')!r}, expected {IMAGE!r}")
        if "build" in node:
            build = node["build"]
            check(isinstance(build, dict), f"{name}: build must name context and dockerfile")
            check(build.get("context") == ".", f"{name}: build context is {build.get('context')!r}, expected '.'")
            check(
                build.get("dockerfile") == "deploy/Dockerfile",
                f"{name}: build dockerfile is {build.get('dockerfile')!r}, expected 'deploy/Dockerfile'",
            )
        else:
            # Built by another service under the same tag; pulling it from a registry must not
            # be tried (there is no ferrocast:local on any registry).
            check(
                node.get("pull_policy") in ("never", "missing", None),
                f"{name}: pull_policy {node.get('pull_policy')!r} would pull ferrocast:local from a registry",
            )
        env = environment_of(node)
        check(
            env.get("FERROCAST_SERVER__NODE_ID") == name,
            f"{name}: FERROCAST_SERVER__NODE_ID is {env.get('FERROCAST_SERVER__NODE_ID')!r}, expected {name!r}",
        )
        node_ids.append(env["FERROCAST_SERVER__NODE_ID"])
        depends = node.get("depends_on") or {}
        check(
            isinstance(depends, dict) and (depends.get("redis") or {}).get("condition") == "service_healthy",
            f"{name}: needs depends_on redis with condition service_healthy",
        )
        hc = healthcheck_command(node)
        check("/readyz" in hc and "9601" in hc, f"{name}: healthcheck must hit :9601/readyz (the metrics port survives a client-port flood), is {hc!r}")
        targets = {(published, target) for _, published, target in port_mappings(node)}
        metrics = [published for published, target in targets if target == "9601"]
        check(len(metrics) == 1, f"{name}: must publish its metrics port 9601 on the host exactly once")
        metrics_host_ports.append(metrics[0])
        check(
            not any(target == "6001" for _, target in targets),
            f"{name}: must not publish 6001 itself; clients go through lb",
        )
    check(len(set(node_ids)) == len(NODES), f"node ids must differ: {node_ids}")
    check(
        metrics_host_ports == ["9601", "9602", "9603"],
        f"metrics host ports are {metrics_host_ports}, expected 9601, 9602, 9603 for node-a, node-b, node-c",
    )

    lb = services["lb"]
    check(str(lb.get("image", "")).startswith("haproxy:"), f"lb image is {lb.get('image')!r}, expected haproxy:*")
    check(
        ("6001", "6001") in {(p, t) for _, p, t in port_mappings(lb)},
        "lb must publish 6001 on the host (6001:6001)",
    )
    mounts = [str(v) for v in lb.get("volumes") or []]
    mount = next((m for m in mounts if ":/usr/local/etc/haproxy/haproxy.cfg" in m), None)
    check(mount is not None, "lb must mount deploy/haproxy.cfg at /usr/local/etc/haproxy/haproxy.cfg")
    source = (REPO / mount.split(":", 1)[0]).resolve()
    check(source == HAPROXY_CFG.resolve(), f"lb mounts {source}, expected {HAPROXY_CFG}")

    # The nodes reach Redis by its compose service name.
    url = (load_node_config().get("backplane") or {}).get("url", "")
    match = re.fullmatch(r"redis://([^:/]+):(\d+)/?", url)
    check(match is not None, f"backplane.url {url!r} is not redis://HOST:PORT")
    check(match.group(1) in services, f"backplane.url host {match.group(1)!r} is not a compose service")


# The node's drain (docs/operations.md#upgrades-and-draining), in the order it happens.
DRAIN_SETTINGS = (("server", "shutdown_grace_s"), ("webhooks", "leave_delay_ms"), ("webhooks", "flush_timeout_s"))
# What the stop timeout must leave beyond the sum: the leave confirmations' own bound is
# leave_delay_ms + 2 s (crates/server/src/run.rs), then a deregistration and Redis round trips.
MIN_DRAIN_MARGIN_S = 5.0

_COMPOSE_DURATION_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def compose_duration_s(value: object) -> float:
    """A Compose duration (`30s`, `1m30s`, `1.5s`, or a bare number of seconds) in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", text)
    check(
        parts and "".join(n + u for n, u in parts) == text,
        f"stop_grace_period {value!r} is not a Compose duration (e.g. 30s, 1m30s)",
    )
    return sum(float(n) * _COMPOSE_DURATION_UNIT[u] for n, u in parts)


def documented_default(section: str, key: str) -> int:
    """The default of `[section] key` in docs/configuration.md, checked against config.rs."""
    check(CONFIG_DOC.is_file(), f"{CONFIG_DOC} is missing")
    text = CONFIG_DOC.read_text()
    heading = re.search(rf"(?m)^## `\[{re.escape(section)}\]`\s*$", text)
    check(heading is not None, f"docs/configuration.md has no `## `[{section}]`` section")
    body = text[heading.end():]
    end = re.search(r"(?m)^## ", body)
    body = body[: end.start()] if end else body
    row = re.search(rf"(?m)^\| `{re.escape(key)}` \| `(\d+)` \|", body)
    check(row is not None, f"docs/configuration.md [{section}] has no row `{key}` with a numeric default")
    documented = int(row.group(1))
    check(CONFIG_RS.is_file(), f"{CONFIG_RS} is missing")
    in_code = re.findall(rf"(?m)^\s*{re.escape(key)}: ([\d_]+),\s*$", CONFIG_RS.read_text())
    check(
        len(in_code) == 1,
        f"crates/server/src/config.rs: expected one default `{key}: N,` in a Default impl, found {in_code}",
    )
    check(
        int(in_code[0].replace("_", "")) == documented,
        f"{section}.{key}: docs/configuration.md documents {documented}, config.rs defaults to {in_code[0]}",
    )
    return documented


def effective_setting(service_name: str, service: dict, section: str, key: str) -> tuple[int, str]:
    """(value, where it comes from) of `[section] key` for a compose node, as the node reads it:
    FERROCAST_<SECTION>__<KEY> from the service environment, else deploy/ferrocast.toml, else
    the documented default."""
    var = f"FERROCAST_{section.upper()}__{key.upper()}"
    env = {k.upper(): v for k, v in environment_of(service).items()}
    if var in env:
        check(re.fullmatch(r"\d+", env[var].strip()), f"{service_name}: {var}={env[var]!r} is not a number")
        return int(env[var]), f"{service_name} environment {var}"
    table = load_node_config().get(section) or {}
    if key in table:
        check(isinstance(table[key], int), f"deploy/ferrocast.toml [{section}] {key} is not an integer")
        return table[key], f"deploy/ferrocast.toml [{section}]"
    return documented_default(section, key), "default (docs/configuration.md)"


def drain_problems(services: dict) -> list[str]:
    """Nodes whose stop_grace_period does not cover their drain plus the margin."""
    problems = []
    for name in NODES:
        node = services[name]
        if "stop_grace_period" not in node:
            problems.append(f"{name}: no stop_grace_period (Compose's default, 10 s, cuts the drain)")
            continue
        grace = compose_duration_s(node["stop_grace_period"])
        values = {key: effective_setting(name, node, section, key) for section, key in DRAIN_SETTINGS}
        drain = values["shutdown_grace_s"][0] + values["leave_delay_ms"][0] / 1000.0 + values["flush_timeout_s"][0]
        if grace < drain + MIN_DRAIN_MARGIN_S:
            explained = ", ".join(f"{k} = {v} ({src})" for k, (v, src) in values.items())
            problems.append(
                f"{name}: stop_grace_period is {grace:g} s, but the drain takes up to {drain:g} s ({explained}); "
                f"it needs at least {drain + MIN_DRAIN_MARGIN_S:g} s (the sum plus a {MIN_DRAIN_MARGIN_S:g} s margin)"
            )
    return problems


def test_compose_stop_grace_period_covers_the_drain():
    problems = drain_problems(load_compose().get("services") or {})
    check(not problems, "\n".join(problems))


def test_drain_check_refuses_a_short_or_outgrown_grace_period():
    """The check above can fail: the old 15 s is refused with the documented defaults, and so is
    the current value once an environment override lengthens the webhook flush."""
    check(compose_duration_s("1m30s") == 90.0 and compose_duration_s("2500ms") == 2.5, "duration parser is wrong")
    defaults = sum(
        documented_default(section, key) / (1000.0 if key.endswith("_ms") else 1.0) for section, key in DRAIN_SETTINGS
    )
    check(defaults == 18.0, f"the documented drain defaults add up to {defaults} s, expected 10 + 3 + 5 = 18 s")

    services = load_compose()["services"]
    short = {name: dict(services[name], stop_grace_period="15s") for name in NODES}
    check(len(drain_problems(short)) == len(NODES), "a 15 s stop_grace_period was accepted")
    env = dict(environment_of(services["node-b"]), FERROCAST_WEBHOOKS__FLUSH_TIMEOUT_S="60")
    outgrown = {name: services[name] for name in NODES}
    outgrown["node-b"] = dict(services["node-b"], environment=env)
    problems = drain_problems(outgrown)
    check(
        len(problems) == 1 and problems[0].startswith("node-b:") and "environment" in problems[0],
        f"a 60 s flush_timeout_s set in node-b's environment was not held against its grace period: {problems}",
    )


def test_compose_build_context_keeps_what_the_build_needs():
    check(DOCKERIGNORE.is_file(), ".dockerignore is missing at the repository root (build context of the image)")
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def to_regex(pattern: str) -> re.Pattern:
        pattern = pattern.strip("/")
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out)

    def ignored(path: str) -> bool:
        """Docker's rule: the last matching pattern wins; a match on a parent folder counts."""
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            regex = to_regex(pattern[1:] if negate else pattern)
            if any(regex.fullmatch(p) for p in prefixes):
                result = not negate
        return result

    for path in ("target/release/ferrocast", ".git/HEAD", "tests/conformance/node_modules/ws/index.js",
                 "tests/deploy/.venv/bin/python"):
        check(ignored(path), f".dockerignore must exclude {path} from the build context")
    for path in ("Cargo.toml", "Cargo.lock", "Makefile", "crates/server/src/main.rs", "deploy/ferrocast.toml"):
        check(not ignored(path), f".dockerignore excludes {path}, which the image build needs")


# ----------------------------------------------------------------------------------------------
# deploy/Dockerfile


def dockerfile_stages() -> list[list]:
    check(DOCKERFILE.is_file(), f"{DOCKERFILE} is missing")
    try:
        commands = dockerfile.parse_file(str(DOCKERFILE))
    except dockerfile.GoParseError as e:
        fail(f"deploy/Dockerfile does not parse: {e}")
    stages: list[list] = []
    for command in commands:
        if command.cmd == "FROM":
            stages.append([])
        check(stages, f"deploy/Dockerfile line {command.start_line}: {command.cmd} before the first FROM")
        stages[-1].append(command)
    return stages


def makefile_build_recipe() -> list[str]:
    lines = MAKEFILE.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"build:", line)), None)
    check(start is not None, "the Makefile has no `build:` target")
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(CARGO)", "cargo"))
    return recipe


def test_dockerfile_passes_hadolint():
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    check(result.returncode == 0, "hadolint reports problems in deploy/Dockerfile:\n" + result.stdout + result.stderr)


def test_dockerfile_builds_with_the_makefile_build_target():
    stages = dockerfile_stages()
    check(len(stages) >= 2, "deploy/Dockerfile must be multi-stage (builder + runtime)")
    builder = stages[0]
    base = builder[0].value
    check(
        len(base) == 3 and base[0] == "rust:1-bookworm" and base[1].lower() == "as",
        f"first stage must be `FROM rust:1-bookworm AS <name>`, is {builder[0].original!r}",
    )
    builder_name = base[2]

    recipe = makefile_build_recipe()
    runs = [" ".join(c.value) for c in builder if c.cmd == "RUN"]
    if any(re.search(r"(^|[;&|(\s])make build($|[;&|)\s])", r) for r in runs):
        # The Makefile's own target: the image cannot diverge from it, whatever its recipe.
        copied = [c.value[:-1] for c in builder if c.cmd == "COPY"]
        check(
            any("." in srcs or "Makefile" in srcs for srcs in copied),
            "the builder runs `make build` but does not copy the Makefile into the image",
        )
    else:
        check(
            any(BUILD_COMMAND in r for r in runs),
            f"the builder stage must run `make build` (or exactly `{BUILD_COMMAND}`); its RUN steps: {runs}",
        )
        check(
            recipe == [BUILD_COMMAND],
            f"the builder runs `{BUILD_COMMAND}` but the Makefile's build recipe is now {recipe}: "
            "run `make build` in the Dockerfile instead",
        )

    runtime = stages[-1]
    check(
        runtime[0].value[0] == "debian:bookworm-slim",
        f"runtime stage must be FROM debian:bookworm-slim, is {runtime[0].original!r}",
    )
    binary = [
        c
        for c in runtime
        if c.cmd == "COPY" and f"--from={builder_name}" in c.flags and c.value[-1] == "/usr/local/bin/ferrocast"
    ]
    check(binary, f"runtime stage must COPY --from={builder_name} the binary to /usr/local/bin/ferrocast")


def test_dockerfile_runtime_stage():
    stages = dockerfile_stages()
    runtime = stages[-1]
    by_cmd: dict[str, list] = {}
    for command in runtime:
        by_cmd.setdefault(command.cmd, []).append(command)
    runs = " ".join(" ".join(c.value) for c in by_cmd.get("RUN", []))

    check(re.search(r"apt-get install\b[^&;]*\bca-certificates\b", runs), "runtime stage must install ca-certificates")
    check(re.search(r"apt-get install\b[^&;]*\bcurl\b", runs), "runtime stage must install curl (HEALTHCHECK uses it)")
    check(
        re.search(r"useradd\b[^&;]*--uid 10001\b[^&;]*\bferrocast\b", runs),
        "runtime stage must create the user ferrocast with uid 10001 (useradd --uid 10001 ... ferrocast)",
    )

    users = by_cmd.get("USER", [])
    check(users, "runtime stage has no USER: the node would run as root")
    user = users[-1].value[0]
    name, _, group = user.partition(":")
    check(
        name in ("ferrocast", "10001") and group in ("", "ferrocast", "10001"),
        f"runtime USER is {user!r}, expected the non-root ferrocast user (10001)",
    )

    exposed = {port for c in by_cmd.get("EXPOSE", []) for port in c.value}
    check({"6001", "9601"} <= exposed, f"runtime stage must EXPOSE 6001 and 9601, exposes {sorted(exposed)}")

    healthchecks = by_cmd.get("HEALTHCHECK", [])
    check(healthchecks, "runtime stage has no HEALTHCHECK")
    hc = healthchecks[-1]
    check(hc.value[0].upper() == "CMD", f"HEALTHCHECK must run a command, is {hc.original!r}")
    check(
        "curl" in hc.value[1] and "http://127.0.0.1:9601/healthz" in " ".join(hc.value[1:]),
        f"HEALTHCHECK must curl http://127.0.0.1:9601/healthz (the metrics port), is {hc.original!r}",
    )

    configs = [c for c in by_cmd.get("COPY", []) if c.value[-1] == IMAGE_CONFIG_PATH]
    check(configs, f"runtime stage must COPY deploy/ferrocast.toml to {IMAGE_CONFIG_PATH}")
    check(
        configs[-1].value[:-1] == ("deploy/ferrocast.toml",),
        f"{IMAGE_CONFIG_PATH} must come from deploy/ferrocast.toml, comes from {configs[-1].value[:-1]}",
    )

    entrypoint = by_cmd.get("ENTRYPOINT", [])
    check(
        entrypoint and entrypoint[-1].json and entrypoint[-1].value == ("ferrocast",),
        'runtime stage must end with ENTRYPOINT ["ferrocast"] (exec form, so SIGTERM reaches the node)',
    )
    cmd = by_cmd.get("CMD", [])
    check(
        cmd and cmd[-1].json and cmd[-1].value == ("--config", IMAGE_CONFIG_PATH),
        f'runtime stage must have CMD ["--config", "{IMAGE_CONFIG_PATH}"]',
    )


# ----------------------------------------------------------------------------------------------
# deploy/ferrocast.toml


def test_node_config_is_the_cluster_config():
    config = load_node_config()
    server = config.get("server") or {}
    backplane = config.get("backplane") or {}
    apps = config.get("apps") or []
    check(server.get("host") == "0.0.0.0", f"server.host is {server.get('host')!r}, expected '0.0.0.0'")
    check(server.get("port") == 6001, f"server.port is {server.get('port')!r}, expected 6001")
    check(server.get("metrics_port") == 9601, f"server.metrics_port is {server.get('metrics_port')!r}, expected 9601")
    check("node_id" not in server, "server.node_id must not be set in the file: each node sets FERROCAST_SERVER__NODE_ID")
    check(backplane.get("driver") == "redis", f"backplane.driver is {backplane.get('driver')!r}, expected 'redis'")
    check(
        backplane.get("url") == "redis://redis:6379",
        f"backplane.url is {backplane.get('url')!r}, expected 'redis://redis:6379'",
    )
    check(backplane.get("prefix") == "ferrocast", f"backplane.prefix is {backplane.get('prefix')!r}")
    check(len(apps) >= 1, "the node config needs at least one [[apps]]")
    check(
        (apps[0].get("id"), apps[0].get("key"), apps[0].get("secret")) == ("app-id", "app-key", "app-secret"),
        "the first app must be the demo app app-id / app-key / app-secret",
    )
    check(
        re.search(r"(?im)^#.*demo credentials", NODE_CONFIG.read_text()),
        "deploy/ferrocast.toml must say in a comment that the app credentials are demo credentials",
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def test_node_config_is_accepted_by_the_release_binary():
    binary = Path(os.environ.get("FERROCAST_BIN", REPO / "target" / "release" / "ferrocast")).resolve()
    check(
        binary.is_file() and os.access(binary, os.X_OK),
        f"{binary} is missing: build it first (`make build`; `make test-deploy` does)",
    )
    # The node's config comes from the file plus FERROCAST_<SECTION>__<KEY> variables: start
    # from an environment without any, so only the overrides below apply.
    base_env = {k: v for k, v in os.environ.items() if not (k.startswith("FERROCAST_") and "__" in k)}
    for attempt in range(3):
        port, metrics_port = free_port(), free_port()
        if port == metrics_port:
            continue
        env = dict(
            base_env,
            # The image's Redis is not here; everything else in the file is parsed and checked.
            FERROCAST_BACKPLANE__DRIVER="memory",
            FERROCAST_SERVER__HOST="127.0.0.1",
            FERROCAST_SERVER__PORT=str(port),
            FERROCAST_SERVER__METRICS_PORT=str(metrics_port),
            # The variable docker-compose.yml sets for each node.
            FERROCAST_SERVER__NODE_ID="check-deploy",
        )
        with tempfile.TemporaryFile(mode="w+") as log:
            process = subprocess.Popen(
                [str(binary), "--config", str(NODE_CONFIG)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 20
                ready = False
                while time.monotonic() < deadline:
                    if process.poll() is not None:
                        break
                    if http_status(f"http://127.0.0.1:{port}/readyz") == 200:
                        ready = True
                        break
                    time.sleep(0.1)

                def output() -> str:
                    log.seek(0)
                    return log.read().strip()

                if not ready:
                    if process.poll() is None:
                        fail(f"the node did not answer 200 on /readyz within 20 s; output:\n{output()}")
                    text = output()
                    if process.returncode == 1 and "address already in use" in text.lower() and attempt < 2:
                        continue  # a free port was taken in between: try others
                    fail(
                        f"`ferrocast --config deploy/ferrocast.toml` (driver overridden to memory) exited "
                        f"with {process.returncode} before it was ready:\n{text}"
                    )
                check(
                    http_status(f"http://127.0.0.1:{port}/healthz") == 200,
                    "/healthz (the image HEALTHCHECK) did not answer 200",
                )
                check(
                    http_status(f"http://127.0.0.1:{metrics_port}/metrics") == 200,
                    f"/metrics did not answer 200 on the metrics port; output:\n{output()}",
                )
                process.send_signal(signal.SIGTERM)
                try:
                    code = process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    fail(f"the node did not exit within 20 s of SIGTERM; output:\n{output()}")
                check(code == 0, f"the node exited with {code} after SIGTERM, expected 0; output:\n{output()}")
                return
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    fail("could not find two free ports for the node after 3 attempts")


# ----------------------------------------------------------------------------------------------
# deploy/haproxy.cfg


def haproxy_sections() -> dict[str, list[str]]:
    check(HAPROXY_CFG.is_file(), f"{HAPROXY_CFG} is missing")
    sections: dict[str, list[str]] = {}
    current = None
    for raw in HAPROXY_CFG.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not raw[0].isspace():
            current = line
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def test_haproxy_cfg_passes_haproxy_check():
    result = run([tool("haproxy"), "-c", "-f", str(HAPROXY_CFG)])
    output = result.stdout + result.stderr
    check(result.returncode == 0, f"`haproxy -c -f deploy/haproxy.cfg` failed:\n{output}")
    # Outside compose the node names do not resolve; that is the only warning allowed.
    unexpected = [
        line
        for line in output.splitlines()
        if ("WARNING" in line or "ALERT" in line)
        and not re.search(r"could not resolve address 'node-[abc]'", line)
    ]
    check(not unexpected, "`haproxy -c` warns about deploy/haproxy.cfg:\n" + "\n".join(unexpected))


def test_haproxy_cfg_balances_the_compose_nodes():
    sections = haproxy_sections()
    defaults = next((lines for name, lines in sections.items() if name.split()[0] == "defaults"), None)
    check(defaults is not None, "haproxy.cfg has no defaults section")
    check("mode http" in defaults, "haproxy.cfg defaults must use `mode http` (WebSocket upgrade, /readyz checks)")
    check("timeout tunnel 1h" in defaults, "haproxy.cfg defaults must set `timeout tunnel 1h` for WebSockets")

    frontends = {name: lines for name, lines in sections.items() if name.split()[0] == "frontend"}
    entry = [lines for lines in frontends.values() if any(re.fullmatch(r"bind \S*:6001\b.*", l) for l in lines)]
    check(len(entry) == 1, "haproxy.cfg needs one frontend bound to :6001")
    backend_name = next((l.split()[1] for l in entry[0] if l.startswith("default_backend ")), None)
    check(backend_name is not None, "the :6001 frontend has no default_backend")
    backend = sections.get(f"backend {backend_name}")
    check(backend is not None, f"haproxy.cfg has no `backend {backend_name}`")

    check("balance roundrobin" in backend, f"backend {backend_name} must use `balance roundrobin`")
    check(any(l.startswith("option httpchk") for l in backend), f"backend {backend_name} needs `option httpchk`")
    check(
        any(l.startswith("http-check send") and "uri /readyz" in l for l in backend)
        or any(l.startswith("option httpchk") and "/readyz" in l for l in backend),
        f"backend {backend_name} must health-check /readyz",
    )
    check(
        "http-check expect status 200" in backend,
        f"backend {backend_name} must expect status 200 from /readyz",
    )
    default_server = " ".join(l for l in backend if l.startswith("default-server "))
    servers = [l.split() for l in backend if l.startswith("server ")]
    check(
        sorted(s[2] for s in servers) == sorted(f"{n}:6001" for n in NODES),
        f"backend {backend_name} servers are {[s[2] for s in servers]}, expected {[f'{n}:6001' for n in NODES]}",
    )
    for server in servers:
        options = " ".join(server[3:]) + " " + default_server
        check(re.search(r"(^|\s)check(\s|$)", options), f"server {server[1]} is not health-checked")
        check(
            re.search(r"init-addr \S*none", options),
            f"server {server[1]} needs `init-addr ...,none` so HAProxy starts before the name resolves",
        )


# Retry causes where the request has not reached a server, so it cannot have been processed.
SAFE_RETRY_ON = {"none", "conn-failure", "0rtt-rejected"}


def retry_policy(sections: dict[str, list[str]], backend_name: str) -> tuple[set[str], list[str]]:
    """The backend's `retry-on` causes (its own line, else the defaults') and its
    `http-request disable-l7-retry` rules."""
    defaults = next((lines for name, lines in sections.items() if name.split()[0] == "defaults"), [])
    backend = sections[f"backend {backend_name}"]
    retry_on = [l.split()[1:] for l in backend if l.split()[0] == "retry-on"] or [
        l.split()[1:] for l in defaults if l.split()[0] == "retry-on"
    ]
    causes = set(retry_on[-1]) if retry_on else {"conn-failure"}  # HAProxy's default
    rules = [l for l in backend if l.startswith("http-request disable-l7-retry")]
    return causes, rules


def l7_retries_limited_to_get(backend: list[str], rules: list[str]) -> bool:
    """Whether one rule turns the response-level retries off for every method but GET/HEAD."""
    acls = {}
    for line in backend:
        words = line.split()
        if words[0] == "acl" and len(words) >= 4 and words[2] == "method":
            acls[words[1]] = set(w.upper() for w in words[3:])
    for rule in rules:
        words = rule.split()[2:]
        if not words:
            return True  # unconditional: no L7 retry at all
        if len(words) != 2:
            continue
        keyword, acl = words
        if (keyword, acl[:1]) == ("if", "!"):
            keyword, acl = "unless", acl[1:]
        if keyword != "unless":
            continue
        if acl == "METH_GET" or (acl in acls and acls[acl] <= {"GET", "HEAD"}):
            return True
    return False


def backend_of_6001(sections: dict[str, list[str]]) -> str:
    for name, lines in sections.items():
        if name.split()[0] == "frontend" and any(re.fullmatch(r"bind \S*:6001\b.*", l) for l in lines):
            found = next((l.split()[1] for l in lines if l.startswith("default_backend ")), None)
            check(found is not None, "the :6001 frontend has no default_backend")
            return found
    fail("haproxy.cfg needs one frontend bound to :6001")


def test_haproxy_never_replays_a_request_that_may_have_been_processed():
    sections = haproxy_sections()
    backend_name = backend_of_6001(sections)
    backend = sections[f"backend {backend_name}"]
    frontend_rules = [
        l for name, lines in sections.items() if name.split()[0] == "frontend"
        for l in lines if l.startswith("http-request disable-l7-retry")
    ]
    check(not frontend_rules, "put `http-request disable-l7-retry` in the backend, next to the retry policy it limits")
    causes, rules = retry_policy(sections, backend_name)
    check("conn-failure" in causes, f"retry-on must include conn-failure (a refused connection is retried), is {sorted(causes)}")
    unsafe = causes - SAFE_RETRY_ON
    if unsafe:
        check(
            l7_retries_limited_to_get(backend, rules),
            f"retry-on {' '.join(sorted(causes))} replays requests a node may already have processed "
            f"({', '.join(sorted(unsafe))}): a POST /events would be published twice. Keep only "
            f"{sorted(SAFE_RETRY_ON - {'none'})}, or add `http-request disable-l7-retry unless METH_GET` "
            f"to backend {backend_name}",
        )
    all_lines = [l for lines in sections.values() for l in lines]
    retries = [int(l.split()[1]) for l in all_lines if l.split()[0] == "retries"]
    check(retries and retries[-1] >= 1, "haproxy.cfg must set `retries` to at least 1 (a refused connection is retried)")
    check(
        any(l.split()[:2] == ["option", "redispatch"] for l in all_lines),
        "haproxy.cfg must set `option redispatch` so a retry goes to another node",
    )


def test_haproxy_retry_rule_check_can_fail():
    """The parse above refuses the policy issue 12 found and accepts the fixed forms."""
    old = {"defaults": ["retry-on conn-failure empty-response response-timeout 503"], "backend b": ["balance roundrobin"]}
    causes, rules = retry_policy(old, "b")
    check(causes - SAFE_RETRY_ON and not l7_retries_limited_to_get(old["backend b"], rules), "old policy accepted")
    for rule, acl in (
        ("http-request disable-l7-retry unless METH_GET", None),
        ("http-request disable-l7-retry if !readonly", "acl readonly method GET HEAD"),
        ("http-request disable-l7-retry", None),
    ):
        backend = [l for l in (acl, rule) if l]
        check(l7_retries_limited_to_get(backend, [rule]), f"{rule!r} not recognised")
    for rule, acl in (
        ("http-request disable-l7-retry if METH_POST", None),  # PUT, DELETE, PATCH still replayed
        ("http-request disable-l7-retry unless writes", "acl writes method GET POST"),
    ):
        backend = [l for l in (acl, rule) if l]
        check(not l7_retries_limited_to_get(backend, [rule]), f"{rule!r} accepted but leaves POSTs replayable")


class StubBackend:
    """An HTTP/1.1 server on loopback that records each request's method and either answers
    200 or reads the whole request and closes without a word (a node that processed a POST and
    died or stalled before answering)."""

    def __init__(self, answer: bool):
        self.answer = answer
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split()[:2]
                length = next(
                    (int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:")), 0
                )
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                with self._lock:
                    self.requests.append((method, path))
                if self.answer:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            except OSError:
                return

    def methods(self) -> list[str]:
        with self._lock:
            return [m for m, _ in self.requests]

    def close(self) -> None:
        self._sock.close()


def haproxy_cfg_in_front_of(listen_port: int, servers: list[int]) -> str:
    """deploy/haproxy.cfg with its global and defaults sections and its client backend's rules
    as they are, the :6001 frontend bound to `listen_port` on loopback, and the backend's servers
    replaced by `servers` (without health checks or Docker DNS)."""
    sections = haproxy_sections()
    backend_name = backend_of_6001(sections)
    out = []
    for name, lines in sections.items():
        kind = name.split()[0]
        if kind in ("global", "defaults"):
            out.append(name)
            out += [f"    {l}" for l in lines]
        elif kind == "frontend" and any(re.fullmatch(r"bind \S*:6001\b.*", l) for l in lines):
            out.append(name)
            out += [f"    {l}" for l in lines if not l.startswith("bind ")]
            out.append(f"    bind 127.0.0.1:{listen_port}")
        elif name == f"backend {backend_name}":
            out.append(name)
            dropped = ("server ", "default-server ", "option httpchk", "http-check ")
            out += [f"    {l}" for l in lines if not l.startswith(dropped)]
            out += [f"    server s{i} 127.0.0.1:{port}" for i, port in enumerate(servers, 1)]
    return "\n".join(out) + "\n"


def through_haproxy(servers: list[int], requests: list[tuple[str, str]]) -> tuple[list[int], str]:
    """Run the real haproxy with the derived cfg; send `requests` (method, path) one at a time,
    each on a new client connection; return their statuses and haproxy's log."""
    for attempt in range(3):
        port = free_port()
        if port in servers:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "haproxy.cfg"
            cfg.write_text(haproxy_cfg_in_front_of(port, servers))
            log = open(Path(tmp) / "haproxy.log", "w+")
            process = subprocess.Popen(
                [tool("haproxy"), "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and process.poll() is None:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.05)
                if process.poll() is not None:
                    log.seek(0)
                    text = log.read()
                    if "cannot bind" in text.lower() and attempt < 2:
                        continue
                    fail(f"haproxy exited with {process.returncode} at start:\n{text}\ncfg:\n{cfg.read_text()}")
                statuses = []
                for method, path in requests:
                    body = b'{"name":"e","channel":"c","data":"{}"}' if method == "POST" else None
                    client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    try:
                        headers = {"Content-Type": "application/json"} if body else {}
                        client.request(method, path, body=body, headers=headers)
                        response = client.getresponse()
                        response.read()
                        statuses.append(response.status)
                    finally:
                        client.close()
                time.sleep(0.2)  # the log line of the last request
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.seek(0)
            text = log.read()
            log.close()
            return statuses, text
    fail("could not find a free port for haproxy after 3 attempts")


def test_haproxy_does_not_replay_a_post_that_reached_a_node():
    silent = [StubBackend(answer=False), StubBackend(answer=False)]
    try:
        statuses, log = through_haproxy([b.port for b in silent], [("POST", "/apps/app-id/events")])
        received = [m for b in silent for m in b.methods()]
        check(
            received == ["POST"],
            f"a POST that a backend read and closed without answering was sent {len(received)} times "
            f"(expected once: a replay publishes the event twice); haproxy log:\n{log}",
        )
        check(statuses == [502], f"the client got {statuses} for the unanswered POST, expected [502]")

        for b in silent:
            b.requests.clear()
        statuses, log = through_haproxy([b.port for b in silent], [("GET", "/apps/app-id/channels")])
        received = [m for b in silent for m in b.methods()]
        check(
            len(received) >= 2 and set(received) == {"GET"},
            f"an unanswered GET (idempotent: REST queries, WebSocket upgrades) should be retried, was sent "
            f"{len(received)} time(s); haproxy log:\n{log}",
        )
    finally:
        for b in silent:
            b.close()


def test_haproxy_retries_a_refused_connection_on_the_other_node():
    refused_port = free_port()  # nothing listens there: connection refused
    ok = StubBackend(answer=True)
    try:
        requests = [("POST", "/apps/app-id/events")] * 4 + [("GET", "/app/app-key")] * 2
        statuses, log = through_haproxy([refused_port, ok.port], requests)
        check(
            statuses == [200] * len(requests),
            f"with one node refusing connections the client got {statuses}, expected all 200; haproxy log:\n{log}",
        )
        check(
            ok.methods() == [m for m, _ in requests],
            f"the answering node got {ok.methods()}, expected each request once: {[m for m, _ in requests]}",
        )
        # httplog: ".../retries" with a "+" when redispatched; round-robin sent half the
        # requests to the refusing node first.
        retried = re.findall(r" \d+/\d+/\d+/\d+/\+?([1-9]\d*) ", log)
        check(
            len(retried) >= len(requests) // 2,
            f"haproxy logged {len(retried)} retried requests, expected at least {len(requests) // 2} "
            f"(round-robin over a refusing node); log:\n{log}",
        )
    finally:
        ok.close()


# ----------------------------------------------------------------------------------------------
# Plain-script mode.


def main() -> int:
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except CheckFailed as e:
            failed += 1
            print(f"FAIL {name}\n  " + str(e).replace("\n", "\n  "), flush=True)
        except Exception:  # a bug in a check or a tool that could not run: still a failure
            failed += 1
            print(f"FAIL {name}\n" + traceback.format_exc(), flush=True)
        else:
            passed += 1
            print(f"ok   {name}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
