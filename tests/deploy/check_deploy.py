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

Run by pytest (`make test-deploy`) or as a plain script (`python3 check_deploy.py`); either way
every problem fails with a message and a non-zero exit, and nothing is ever skipped.
Environment: FERROCAST_BIN (default target/release/ferrocast); the tools check-jsonschema and
hadolint are taken from this interpreter's bin directory (the tests/deploy/.venv) or PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
