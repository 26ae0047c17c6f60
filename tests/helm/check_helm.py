#!/usr/bin/env python3
"""Checks of the Helm chart (helm/ferrocast) and the Grafana dashboard (deploy/grafana-dashboard.json).

No helm binary and no cluster are needed: the chart is rendered and linted by Helm's own Go SDK
(v4) through the `helm-python-sdk` wheel, which bundles it as a shared library.

- Lint (`helm lint --strict`) and the values schema, for the default values, the production-like
  tests/helm/values-production.yaml and two more value sets; bad values are refused.
- Every rendered manifest validates (strict: unknown fields fail) against the Kubernetes OpenAPI
  schemas of `kubernetes-validate`, for the oldest Kubernetes the chart supports and the newest
  the package knows. ServiceMonitor and PrometheusRule (CRDs, unknown to it) are checked here
  against the fields of monitoring.coreos.com/v1 the chart uses, and every PromQL expression
  is parsed by `promql-parser`.
- The keys well-kept charts accept, each checked in the manifests (extra env / volumes /
  containers, common labels and annotations on every object, image digest and
  global.imageRegistry, nodePorts, probe overrides, ...); every key of docs/configuration.md is
  accepted under config.*; metrics on their own ClusterIP Service; app secrets from Secrets
  (secret_env + secretKeyRef, run on the binary); NetworkPolicy; Gateway API HTTPRoute (a CRD,
  checked here against the fields the chart uses); the Grafana dashboard ConfigMap (its copy
  must equal deploy/grafana-dashboard.json).
- `helm test`: the test pod's manifest, and its command run with busybox (sh, nc, timeout,
  grep) against the release binary: it passes on a live node, fails on an unknown key and when
  nothing listens.
- Client addresses for the per-IP caps: trusted_proxy_hops = 1 behind the Ingress unless set,
  the PROXY protocol / X-Forwarded-For conflict refused, service.externalTrafficPolicy; node TLS
  from tls.existingSecret, served by the release binary with a throwaway certificate.
- Chart semantics: the termination grace period covers preStop + drain + the webhook leave delay
  + the webhook flush, config.webhooks renders into [webhooks], probe paths, non-root, node id
  from the pod name, refusal of a memory backplane with several replicas, HPA, PDB, ...
- The ferrocast.toml rendered into the Secret is accepted by the real release binary with the
  pod's environment (driver, host and ports overridden): it becomes ready, every app's secret
  signs a REST call, a WebSocket connects; on SIGTERM a socket held open is closed with 4200 and
  the node exits 0 before the pod's grace period (minus the preStop sleep) is over. A run with
  webhooks to a receiver on loopback checks their delivery (headers, signature, body, leave
  delay, retries, expiry, queue limit) and the webhook metrics it exposes.
- The Grafana dashboard parses, uses the ${DS_PROMETHEUS} datasource variable, and every metric
  (and label) it queries is one the live binary exposes; the labelled series it charts are
  exported from the node's start (declared here with their labels).

Run by pytest (`make test-helm`). Nothing is skipped: a missing tool or binary fails.
Environment: FERROCAST_BIN (default target/release/ferrocast).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

try:
    import tomllib  # Python 3.11+

    import helm_python as helm
    import jsonschema
    import kubernetes_validate
    import kubernetes_validate.utils as kv_utils
    import promql_parser
    import pytest
    import yaml
except ImportError as e:  # not the tests/helm/.venv interpreter
    sys.exit(
        f"check_helm.py: {e}. Run `make test-helm`, or use tests/helm/.venv/bin/python "
        "after `pip install -r tests/helm/requirements.txt` there."
    )

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ferrocast"
PRODUCTION_VALUES = Path(__file__).resolve().parent / "values-production.yaml"
DASHBOARD = REPO / "deploy" / "grafana-dashboard.json"
CONFIG_DOC = REPO / "docs" / "configuration.md"
HELM_TEST_SCRIPT = CHART / "files" / "helm-test-websocket.sh"

RELEASE = "ferrocast"
NAMESPACE = "realtime"
FULLNAME = "ferrocast"  # the release name contains the chart name
METRICS_SERVICE = f"{FULLNAME}-metrics"
CONFIG_FILE = "/etc/ferrocast/ferrocast.toml"
UID = 10001

# Kubernetes versions every manifest is validated against: the chart's floor (Chart.yaml
# kubeVersion) and the newest kubernetes-validate ships.
OLDEST_KUBE = "1.27"
NEWEST_KUBE = kv_utils.latest_version()
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
             ("gateway.networking.k8s.io/v1", "HTTPRoute")}
# The CRD objects the production values render.
PRODUCTION_CRDS = ["HTTPRoute", "PrometheusRule", "ServiceMonitor"]
CHART_DASHBOARD = CHART / "dashboards" / "ferrocast.json"

# Labelled counters the server exports at 0 from its start for an app with a webhook (before any
# delivery, retry, takeover or abandoned webhook), with their labels: exposed_metrics() must find
# each of them, with these labels, and test_webhooks_are_delivered_by_the_release_binary checks
# them again after traffic.
FROM_START = {
    "ferrocast_webhook_deliveries_total": {"app_id"},
    "ferrocast_webhook_events_total": {"app_id", "event"},
    "ferrocast_webhook_retries_total": {"app_id"},
    "ferrocast_webhook_failures_total": {"app_id", "reason"},
    "ferrocast_webhook_dead_letters_total": {"app_id"},
    "ferrocast_webhook_takeovers_total": {"app_id"},
}
# The limit counter: test_helm_test_command_passes_against_the_release_binary makes a
# connection-quota refusal and checks these labels and the label value the alerts use.
LIMIT_COUNTERS = {
    "ferrocast_limit_rejections_total": {"app_id", "limit"},
}
WEBHOOK_FAILURE_REASONS = {"expired", "queue_full", "shutdown", "queue_unavailable", "cluster_state_unavailable"}
# What the server exposes today (docs); the live scrape must agree. The webhook gauge and
# histogram are there once an app has a webhook (the scrape of exposed_metrics() has one).
DOCUMENTED = {
    "ferrocast_connections",
    "ferrocast_connections_opened_total",
    "ferrocast_connections_closed_total",
    "ferrocast_ws_messages_in_total",
    "ferrocast_ws_messages_out_total",
    "ferrocast_ws_bytes_out_total",
    "ferrocast_slow_consumer_disconnects_total",
    "ferrocast_rest_requests_total",
    "ferrocast_process_cpu_seconds_total",
    "ferrocast_process_resident_memory_bytes",
    "ferrocast_webhook_queue_depth",
    "ferrocast_webhook_oldest_job_age_seconds",
    "ferrocast_webhook_dead_letter_depth",
    "ferrocast_webhook_request_duration_seconds_bucket",
    "ferrocast_backplane_up",
    "ferrocast_backplane_errors_total",
    "ferrocast_backplane_reconnects_total",
    "ferrocast_node_reaped_total",
    *FROM_START,
}
# The [webhooks] defaults of docs/configuration.md, which values.yaml must repeat.
WEBHOOK_DEFAULTS = {
    "leave_delay_ms": 3000,
    "timeout_ms": 5000,
    "retry_backoff_ms": 1000,
    "retry_window_s": 300,
    "dead_letter_max_len": 10000,
    "queue_capacity": 10000,
    "max_batch_size": 50,
    "flush_timeout_s": 5,
}
# Labels Prometheus adds to every series scraped through the ServiceMonitor.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "endpoint", "container"}


class CheckFailed(AssertionError):
    """The chart or the dashboard is wrong; the message says which and how."""


def fail(message: str):
    raise CheckFailed(message)


def check(condition: object, message: str) -> None:
    if not condition:
        fail(message)


# ----------------------------------------------------------------------------------------------
# Value sets


def production_values() -> dict:
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


# Secrets with every character class the TOML rendering must escape.
TRICKY_SECRET = 'se"cr\\et\t<&> é ☃ #=$x{{y}}'

RICH_VALUES = {
    "config": {
        "server": {"activity_timeout_s": 60, "shutdown_grace_s": 3, "max_queued_frames": 1000000},
        "backplane": {"driver": "memory", "prefix": "fc.test-1", "node_ttl_s": 9},
        "webhooks": {"leave_delay_ms": 1500, "timeout_ms": 2000, "retry_backoff_ms": 100, "retry_window_s": 60,
                     "dead_letter_max_len": 500, "queue_capacity": 100, "max_batch_size": 10, "flush_timeout_s": 2},
        "apps": [
            {
                "id": "app-1",
                "key": "key-1",
                "secret": TRICKY_SECRET,
                "enabled": True,
                "enable_client_messages": True,
                "enable_user_authentication": False,
                "enable_subscription_count": False,
                "enable_webhook_batching": True,
                "user_authentication_timeout_s": 30,
                "max_connections": 1000000,
                "max_client_events_per_second": 20,
                "max_backend_events_per_second": 5000,
                "max_read_requests_per_second": 100,
                "max_presence_members_per_channel": 250,
                "max_presence_member_size_kb": 2,
                "max_channel_name_length": 200,
                "max_event_channels_at_once": 50,
                "max_event_name_length": 100,
                "max_event_payload_kb": 64,
                "max_event_batch_size": 20,
                "allowed_origins": ["https://app.example.com", "https://*.example.org"],
                "webhooks": [
                    {"url": "https://hooks.example.com/pusher", "events": ["channel_occupied", "channel_vacated"]},
                    {"url": "http://hooks.internal:8080/all"},
                ],
            },
            {"id": "12345", "key": "numeric-id-app", "secret": "s3cr3t"},
            {"id": "disabled.app", "key": "key-3", "secret": "x", "enabled": False},
        ],
    },
    "lifecycle": {"preStopSleepSeconds": 2},
}

CLUSTER_VALUES = {
    "replicaCount": 2,
    "config": {"backplane": {"driver": "redis"}, "apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret"}]},
    "redis": {"bundled": {"enabled": True}},
    "ingress": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
}

# Every [server] key the chart lets users set, each different from its default (within the
# server's bounds), except tls_cert / tls_key (the run has no certificate files; they are
# checked by rendering only).
EDGE_SERVER = {
    "activity_timeout_s": 30, "shutdown_grace_s": 2, "max_queued_frames": 500, "max_queued_bytes": 65536 * 4,
    "worker_threads": 2, "request_header_timeout_s": 5, "request_body_timeout_s": 7, "keep_alive_timeout_s": 11,
    "reserved_file_descriptors": 64, "max_connections_per_ip": 50, "max_connection_rate_per_ip": 20,
    "trusted_proxy_hops": 2, "proxy_protocol": False,
}
EDGE_VALUES = {"config": {"server": dict(EDGE_SERVER)}, "lifecycle": {"preStopSleepSeconds": 0},
               "service": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}}

# The whole ferrocast.toml from an existing Secret (the chart renders no config), with the Redis
# URL from another.
WHOLE_CONFIG_SECRET_VALUES = {
    "replicaCount": 3,
    "config": {"backplane": {"driver": "redis"}, "apps": []},
    "existingSecret": "ferrocast-config",
    "redis": {"urlSecret": {"name": "ferrocast-redis", "key": "url"}},
    "extraEnv": [{"name": "FERROCAST_LOG", "value": "info"}],
    "tests": {"enabled": True, "appKey": "live-key"},
}

def walkthrough_values() -> dict:
    """The values of docs/operations.md's walk-through (its step 4), so the doc stays installable."""
    doc = (REPO / "docs" / "operations.md").read_text()
    step = doc.index("4. **Values**")
    start = doc.index("```yaml\n", step) + len("```yaml\n")
    block = textwrap.dedent(doc[start : doc.index("```", start)])
    values = yaml.safe_load(block)
    check(isinstance(values, dict) and values, "the walk-through's values block is empty")
    return values


# Three nodes on a Redis Cluster (the redis-cluster driver): seeds in config.backplane.urls.
REDIS_CLUSTER_DRIVER_VALUES = {
    "replicaCount": 3,
    "config": {"backplane": {"driver": "redis-cluster", "buckets": 256,
                             "urls": ["redis://rc-0.rc:6379", "redis://rc-1.rc:6379", "redis://rc-2.rc:6379"]}},
}

VALUE_SETS = {
    "default": lambda: {},
    "operations-walkthrough": walkthrough_values,
    "whole-config-secret": lambda: copy.deepcopy(WHOLE_CONFIG_SECRET_VALUES),
    "edge-config": lambda: copy.deepcopy(EDGE_VALUES),
    "node-tls": lambda: {"tls": {"existingSecret": "ferrocast-node-tls"}},
    "production": production_values,
    "rich-config": lambda: copy.deepcopy(RICH_VALUES),
    "bundled-redis-cluster": lambda: copy.deepcopy(CLUSTER_VALUES),
    "redis-cluster-driver": lambda: copy.deepcopy(REDIS_CLUSTER_DRIVER_VALUES),
}


# ----------------------------------------------------------------------------------------------
# Rendering


@functools.lru_cache(maxsize=None)
def _render(values_json: str) -> tuple[tuple[str, str], ...]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return tuple(sorted(rendered.items()))


def render_files(values: dict | None = None) -> dict[str, str]:
    return dict(_render(json.dumps(values or {}, sort_keys=True)))


def render(values: dict | None = None) -> list[dict]:
    """Every rendered manifest, each with `_template` (its template file)."""
    docs = []
    for path, text in render_files(values).items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["_template"] = path
                docs.append(doc)
    return docs


def notes(values: dict | None = None) -> str:
    files = render_files(values)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def render_error(values: dict) -> str:
    """The message of a render that must fail."""
    try:
        with helm.Chart.load(str(CHART)) as chart:
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        return str(e)
    fail(f"rendering with {values} succeeded; it must be refused")


def strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "_template"}


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(docs, kind, name)
    check(len(found) == 1, f"expected one {kind} {name or ''}, rendered {len(found)}")
    return found[0]


def deployment(values: dict | None = None) -> dict:
    return one(render(values), "Deployment", FULLNAME)


def container(values: dict | None = None) -> dict:
    """The ferrocast container: the pod's first (sidecars come after it)."""
    containers = deployment(values)["spec"]["template"]["spec"]["containers"]
    check(containers and containers[0]["name"] == "ferrocast",
          f"the pod's first container is {[c['name'] for c in containers]}, expected ferrocast")
    sidecars = len((merged(values or {}).get("sidecars")) or [])
    check(len(containers) == 1 + sidecars, f"the pod has {len(containers)} containers, expected 1 + {sidecars} sidecars")
    return containers[0]


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def rendered_toml(values: dict | None = None) -> str:
    secret = one(render(values), "Secret", FULLNAME)
    return base64.b64decode(secret["data"]["ferrocast.toml"]).decode()


def merged(values: dict) -> dict:
    with helm.Chart.load(str(CHART)) as chart:
        return chart.merge_values(values)


# ----------------------------------------------------------------------------------------------
# Chart files, lint, schema


def test_chart_metadata_and_files():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    check(meta.get("apiVersion") == "v2", f"Chart.yaml apiVersion is {meta.get('apiVersion')!r}, expected v2")
    check(meta.get("name") == "ferrocast", f"Chart.yaml name is {meta.get('name')!r}")
    check(meta.get("appVersion") == "0.1.0", f"Chart.yaml appVersion is {meta.get('appVersion')!r}, expected '0.1.0'")
    check(re.fullmatch(r"\d+\.\d+\.\d+", str(meta.get("version", ""))), "Chart.yaml version must be SemVer")
    check(
        meta.get("kubeVersion") == f">={OLDEST_KUBE}.0-0",
        f"Chart.yaml kubeVersion is {meta.get('kubeVersion')!r}; the manifests are validated from {OLDEST_KUBE} on",
    )
    for name in (
        "values.yaml", "values.schema.json", "README.md", "templates/_helpers.tpl", "templates/NOTES.txt",
        "templates/deployment.yaml", "templates/service.yaml", "templates/ingress.yaml", "templates/secret.yaml",
        "templates/hpa.yaml", "templates/pdb.yaml", "templates/servicemonitor.yaml",
        "templates/prometheusrule.yaml", "templates/serviceaccount.yaml", "templates/redis.yaml",
        "templates/tests/websocket.yaml", "files/helm-test-websocket.sh",
    ):
        check((CHART / name).is_file(), f"helm/ferrocast/{name} is missing")
    with helm.Chart.load(str(CHART)) as chart:
        check(chart.name == "ferrocast" and chart.schema is not None, "the chart does not load with its schema")


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(value_set):
    report = helm.lint(str(CHART), VALUE_SETS[value_set](), strict=True, namespace=NAMESPACE,
                       kube_version=f"v{NEWEST_KUBE}.0")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    check(
        not report.get("errors") and not problems,
        f"helm lint --strict ({value_set} values) reports:\n"
        + "\n".join(f"{m['path']}: {m['error']}" for m in problems)
        + "\n".join(report.get("errors") or []),
    )
    check(report.get("total_charts_linted") == 1, f"helm lint linted {report.get('total_charts_linted')} charts")


def test_values_schema_is_strict_json_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    check(schema.get("additionalProperties") is False, "values.schema.json must refuse unknown top-level keys")
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    check(
        set(defaults) <= set(schema["properties"]),
        f"values.yaml keys missing from the schema: {sorted(set(defaults) - set(schema['properties']))}",
    )
    with helm.Chart.load(str(CHART)) as chart:
        for name, make in VALUE_SETS.items():
            try:
                chart.validate_schema(make())
            except helm.HelmError as e:
                fail(f"the {name} values do not pass values.schema.json: {e}")


BAD_VALUES = [
    ({"bogus": 1}, "bogus"),
    ({"config": {"server": {"host": "127.0.0.1"}}}, "host"),
    ({"config": {"server": {"node_id": "a"}}}, "node_id"),
    ({"config": {"server": {"shutdown_grace_s": 0}}}, "shutdown_grace_s"),
    ({"config": {"backplane": {"driver": "etcd"}}}, "driver"),
    ({"config": {"backplane": {"url": "redis://x:6379"}}}, "url"),
    ({"config": {"apps": [{"id": "a", "key": "k", "secret": "s", "max_conections": 5}]}}, "max_conections"),
    ({"config": {"apps": [{"id": 123, "key": "k", "secret": "s"}]}}, "id"),
    ({"config": {"apps": [{"id": "a b", "key": "k", "secret": "s"}]}}, "id"),
    ({"config": {"apps": [{"id": "a", "key": "k:1", "secret": "s"}]}}, "key"),
    ({"config": {"apps": [{"id": "a", "key": "k"}]}}, "secret"),
    ({"config": {"apps": [{"id": "a", "key": "k", "secret": "s", "webhooks": [{"url": "ftp://x/y"}]}]}}, "url"),
    ({"config": {"apps": [{"id": "a", "key": "k", "secret": "s",
                           "webhooks": [{"url": "https://x/y", "events": ["channel_exploded"]}]}]}}, "events"),
    ({"config": {"apps": [{"id": "a", "key": "k", "secret": "s", "enable_webhook_batching": "yes"}]}},
     "enable_webhook_batching"),
    ({"config": {"webhooks": {"retry_windows_s": 5}}}, "retry_windows_s"),
    ({"config": {"webhooks": {"leave_delay_ms": 10001}}}, "leave_delay_ms"),
    ({"config": {"webhooks": {"leave_delay_ms": -1}}}, "leave_delay_ms"),
    ({"config": {"webhooks": {"timeout_ms": 99}}}, "timeout_ms"),
    ({"config": {"webhooks": {"retry_backoff_ms": 9}}}, "retry_backoff_ms"),
    ({"config": {"webhooks": {"retry_window_s": 0}}}, "retry_window_s"),
    ({"config": {"webhooks": {"queue_capacity": 0}}}, "queue_capacity"),
    ({"config": {"webhooks": {"max_batch_size": 0}}}, "max_batch_size"),
    ({"config": {"webhooks": {"flush_timeout_s": -1}}}, "flush_timeout_s"),
    ({"config": {"webhooks": {"flush_timeout_s": 601}}}, "flush_timeout_s"),
    ({"config": {"webhooks": {"max_batch_size": 1001}}}, "max_batch_size"),
    ({"config": {"webhooks": {"flush_timeout_s": "5"}}}, "flush_timeout_s"),
    ({"config": {"webhooks": {"leave_delay_ms": None}}}, "leave_delay_ms"),
    ({"terminationGracePeriodSeconds": "30"}, "terminationGracePeriodSeconds"),
    ({"podDisruptionBudget": {"maxUnavailable": "half"}}, "maxUnavailable"),
    ({"serviceMonitor": {"interval": "30 seconds"}}, "interval"),
    ({"redis": {"url": "http://redis:6379"}}, "url"),
    ({"ingress": {"hosts": [{"host": "x", "paths": [{"path": "/", "pathType": "Fuzzy"}]}]}}, "pathType"),
    ({"prometheusRule": {"rules": {"slowConsumers": {"threshold": -1}}}}, "threshold"),
    ({"ports": {"ws": 70000}}, "ws"),
    ({"config": {"server": {"trusted_proxy_hops": 17}}}, "trusted_proxy_hops"),
    ({"config": {"server": {"trusted_proxy_hops": -1}}}, "trusted_proxy_hops"),
    ({"config": {"server": {"max_connections_per_ip": 10000001}}}, "max_connections_per_ip"),
    ({"config": {"server": {"max_connection_rate_per_ip": -1}}}, "max_connection_rate_per_ip"),
    ({"config": {"server": {"request_header_timeout_s": 0}}}, "request_header_timeout_s"),
    ({"config": {"server": {"request_body_timeout_s": 3601}}}, "request_body_timeout_s"),
    ({"config": {"server": {"keep_alive_timeout_s": 0}}}, "keep_alive_timeout_s"),
    ({"config": {"server": {"reserved_file_descriptors": 31}}}, "reserved_file_descriptors"),
    ({"config": {"server": {"reserved_file_descriptors": 1000001}}}, "reserved_file_descriptors"),
    ({"config": {"server": {"max_queued_bytes": 65535}}}, "max_queued_bytes"),
    ({"config": {"server": {"worker_threads": -1}}}, "worker_threads"),
    ({"config": {"server": {"proxy_protocol": "yes"}}}, "proxy_protocol"),
    ({"config": {"server": {"tls_cert": "/c.pem"}}}, "tls_key"),
    ({"config": {"server": {"tls_cert": "", "tls_key": "/k.pem"}}}, "tls_cert"),
    ({"config": {"server": {"metrics_port": 9000}}}, "metrics_port"),
    ({"config": {"server": {"port": 6002}}}, "port"),
    ({"service": {"externalTrafficPolicy": "Nearest"}}, "externalTrafficPolicy"),
    # Strict about typos in the keys well-kept charts accept.
    ({"extraVolume": []}, "extraVolume"),
    ({"extraVolumes": {"name": "x"}}, "extraVolumes"),
    ({"sidecar": []}, "sidecar"),
    ({"commonLabels": {"team": 1}}, "commonLabels"),
    ({"global": {"imageRegistry": 5}}, "imageRegistry"),
    ({"image": {"digest": "latest"}}, "digest"),
    ({"image": {"digests": "sha256:00"}}, "digests"),
    ({"service": {"nodePorts": {"ws": "30001"}}}, "ws"),
    ({"service": {"nodePorts": {"websocket": 30001}}}, "websocket"),
    ({"probes": {"liveness": {"periodSecond": 5}}}, "periodSecond"),
    ({"serviceMonitor": {"honorLabels": "yes"}}, "honorLabels"),
    ({"revisionHistoryLimit": -1}, "revisionHistoryLimit"),
    ({"metricsService": {"type": "LoadBalancer"}}, "type"),
    ({"config": {"backplane": {"replay_log_max_len": -1}}}, "replay_log_max_len"),
    ({"config": {"log": {"format": "xml"}}}, "format"),
    ({"appReload": "sometimes"}, "appReload"),
    ({"config": {"log": {"filter": ""}}}, "filter"),
    # Two sources of one secret: the schema's oneOf names the app.
    ({"config": {"apps": [{"id": "a", "key": "k", "secret": "s",
                           "existingSecret": {"name": "n", "key": "k"}}]}}, "/config/apps/0"),
    ({"config": {"apps": [{"id": "a", "key": "k", "existingSecret": {"name": "n"}}]}}, "key"),
    ({"config": {"apps": [{"id": "a", "key": "k", "secret_env": "A-B"}]}}, "secret_env"),
    ({"tests": {"enabled": True, "image": {"repository": "busybox", "pullPolicy": "Sometimes"}}}, "pullPolicy"),
    ({"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}],
                    "timeouts": {"request": "forever", "backendRequest": "0s"}}}, "request"),
    ({"httpRoute": {"enabled": True, "parentRef": []}}, "parentRef"),
    ({"networkPolicy": {"enabled": True, "metricFrom": []}}, "metricFrom"),
    ({"networkPolicy": {"enabled": True, "egress": {"enabled": True, "redis": {"to": [], "ports": [0]}}}}, "ports"),
    ({"grafanaDashboard": {"enabled": True, "labelValue": 1}}, "labelValue"),
    ({"prometheusRule": {"runbookBaseUrl": "docs/operations.md"}}, "runbookBaseUrl"),
    ({"prometheusRule": {"rules": {"rest5xx": {"ratio": 5}}}}, "ratio"),
]


@pytest.mark.parametrize("values,needle", BAD_VALUES, ids=[json.dumps(v)[:60] for v, _ in BAD_VALUES])
def test_values_schema_refuses(values, needle):
    message = render_error(values)
    check(
        "schema" in message and needle in message,
        f"values {values} were refused, but not by the schema naming {needle!r}: {message}",
    )


# ----------------------------------------------------------------------------------------------
# Kubernetes validation of every manifest


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_manifests_validate_against_kubernetes(value_set, kube):
    check(
        tuple(int(p) for p in NEWEST_KUBE.split(".")) >= (1, 33),
        f"kubernetes-validate only knows Kubernetes up to {NEWEST_KUBE}: update it in requirements.txt",
    )
    docs = render(VALUE_SETS[value_set]())
    check(docs, f"the {value_set} values render nothing")
    skipped = []
    for doc in docs:
        what = f"{doc['_template']}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
            skipped.append(doc["kind"])
            try:
                kubernetes_validate.validate(strip(doc), kube, strict=True)
            except kv_utils.SchemaNotFoundError:
                continue  # checked by test_service_monitor / test_prometheus_rule / test_http_route
            continue
        try:
            kubernetes_validate.validate(strip(doc), kube, strict=True)
        except kv_utils.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            fail(f"{what} is not a valid Kubernetes {kube} object: {path}: {e.message}")
        except kv_utils.SchemaNotFoundError as e:
            fail(f"{what}: {e.message}")
        meta = doc["metadata"]
        check(meta.get("namespace") == NAMESPACE, f"{what}: namespace is {meta.get('namespace')!r}, expected {NAMESPACE!r}")
        labels = meta.get("labels") or {}
        for label in ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                      "app.kubernetes.io/managed-by"):
            check(label in labels, f"{what}: label {label} missing")
    kinds = {d["kind"] for d in docs}
    check({"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"} <= kinds, f"{value_set}: kinds are {kinds}")
    if value_set == "production":
        check(
            {"HorizontalPodAutoscaler", "Ingress", "Pod"} <= kinds
            and sorted(skipped) == sorted(PRODUCTION_CRDS),
            f"production renders {sorted(kinds)} and the CRDs {sorted(skipped)}",
        )


# ----------------------------------------------------------------------------------------------
# The Deployment


@pytest.mark.parametrize(
    "values,grace,pre_stop,leave_ms,flush,expected",
    [
        # preStop + drain + ceil(leave delay) + flush + margin (10 s unless set)
        ({}, 10, 5, 3000, 5, 5 + 10 + 3 + 5 + 10),
        (None, 30, 5, 3000, 15, 5 + 30 + 3 + 15 + 10),  # production
        ({"config": {"server": {"shutdown_grace_s": 60}}, "lifecycle": {"preStopSleepSeconds": 0}},
         60, 0, 3000, 5, 0 + 60 + 3 + 5 + 10),
        ({"config": {"webhooks": {"leave_delay_ms": 2001, "flush_timeout_s": 30}}, "terminationGraceMarginSeconds": 4},
         10, 5, 2001, 30, 5 + 10 + 3 + 30 + 4),
        ({"config": {"webhooks": {"leave_delay_ms": 0, "flush_timeout_s": 0}}}, 10, 5, 0, 0, 5 + 10 + 0 + 0 + 10),
        ({"config": {"server": {"shutdown_grace_s": 20}}, "terminationGracePeriodSeconds": 40}, 20, 5, 3000, 5, 40),
    ],
    ids=["default", "production", "grace-60-no-prestop", "leave-2001ms-flush-30-margin-4", "no-leave-no-flush",
         "explicit-40"],
)
def test_termination_grace_covers_prestop_drain_leaves_and_flush(values, grace, pre_stop, leave_ms, flush, expected):
    values = production_values() if values is None else values
    pod = deployment(values)["spec"]["template"]["spec"]
    c = pod["containers"][0]
    tgps = pod.get("terminationGracePeriodSeconds")
    check(isinstance(tgps, int), f"terminationGracePeriodSeconds is {tgps!r}")
    check(tgps == expected, f"terminationGracePeriodSeconds is {tgps}, expected {expected}")
    shutdown = pre_stop + grace + -(-leave_ms // 1000) + flush
    check(
        tgps > shutdown,
        f"terminationGracePeriodSeconds {tgps} must exceed preStop {pre_stop} s + shutdown_grace_s {grace} s "
        f"+ leave_delay_ms {leave_ms} (rounded up to seconds) + flush_timeout_s {flush} s",
    )
    env = env_of(c)
    for name, value in {
        "FERROCAST_SERVER__SHUTDOWN_GRACE_S": grace,
        "FERROCAST_WEBHOOKS__LEAVE_DELAY_MS": leave_ms,
        "FERROCAST_WEBHOOKS__FLUSH_TIMEOUT_S": flush,
    }.items():
        check(env.get(name, {}).get("value") == str(value), f"{name} is {env.get(name)}, expected {value}")
    if pre_stop:
        command = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
        check(command == ["sleep", str(pre_stop)], f"preStop is {c.get('lifecycle')}, expected exec sleep {pre_stop}")
    else:
        check("lifecycle" not in c, "preStopSleepSeconds 0 must leave out the preStop hook")
    if not values.get("existingSecret"):
        toml = tomllib.loads(rendered_toml(values))
        check(toml["server"]["shutdown_grace_s"] == grace, f"ferrocast.toml shutdown_grace_s is {toml['server']}")
        check(toml["webhooks"]["leave_delay_ms"] == leave_ms and toml["webhooks"]["flush_timeout_s"] == flush,
              f"ferrocast.toml [webhooks] is {toml['webhooks']}")
    check(f"terminationGracePeriodSeconds ({tgps} s)" in notes(values), "NOTES must state the grace period")


def test_termination_grace_too_short_is_refused():
    message = render_error({"config": {"server": {"shutdown_grace_s": 30}}, "terminationGracePeriodSeconds": 30})
    check("terminationGracePeriodSeconds (30) must exceed" in message, f"unexpected refusal: {message}")
    # 5 s preStop + 10 s drain + 3 s leave delay + 5 s flush = 23 s: longer than the drain alone is not enough.
    message = render_error({"terminationGracePeriodSeconds": 16})
    check("must exceed" in message and "(5 + 10 + 3 + 5 = 23)" in message, f"unexpected refusal: {message}")
    message = render_error({"terminationGracePeriodSeconds": 23})
    check("terminationGracePeriodSeconds (23) must exceed" in message, f"unexpected refusal: {message}")
    message = render_error({"config": {"webhooks": {"leave_delay_ms": 1, "flush_timeout_s": 60}},
                            "terminationGracePeriodSeconds": 76})  # 5 + 10 + 1 (rounded up) + 60 = 76
    check("(5 + 10 + 1 + 60 = 76)" in message, f"unexpected refusal: {message}")
    check(deployment({"terminationGracePeriodSeconds": 24})["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
          == 24, "a grace period longer than the whole shutdown must be accepted")


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_probes(value_set):
    c = container(VALUE_SETS[value_set]())
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports == {"ws": 6001, "metrics": 9601}, f"container ports are {ports}")
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = (c.get(probe) or {}).get("httpGet") or {}
        # The metrics port survives a flood of the client port (own cap, descriptor reserve).
        check(get.get("path") == path and get.get("port") == "metrics", f"{probe} must GET {path} on port metrics, is {c.get(probe)}")
    startup = c["startupProbe"]
    check(
        startup["periodSeconds"] * startup["failureThreshold"] >= 30,
        "the startup probe must allow at least 30 s for the node to start",
    )


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_runs_as_non_root_read_only_without_capabilities(value_set):
    docs = render(VALUE_SETS[value_set]())
    for dep in find(docs, "Deployment"):
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        check(psc.get("runAsNonRoot") is True, f"{name}: pod securityContext.runAsNonRoot must be true")
        check(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0, f"{name}: runAsUser must be a non-root uid")
        check((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{name}: seccompProfile RuntimeDefault")
        check(pod.get("automountServiceAccountToken") is False, f"{name}: the service account token must not be mounted")
        for c in pod["containers"]:
            sc = c.get("securityContext") or {}
            check(sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: readOnlyRootFilesystem must be true")
            check(sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: allowPrivilegeEscalation must be false")
            check((sc.get("capabilities") or {}).get("drop") == ["ALL"], f"{name}/{c['name']}: must drop ALL capabilities")
            check(sc.get("runAsNonRoot") is True, f"{name}/{c['name']}: runAsNonRoot must be true")
            resources = c.get("resources") or {}
            check(resources.get("requests") and resources.get("limits"), f"{name}/{c['name']}: needs requests and limits")
    pod = deployment(VALUE_SETS[value_set]())["spec"]["template"]["spec"]
    check(pod["securityContext"]["runAsUser"] == UID, f"the node must run as the image's uid {UID}")


def test_node_environment_and_config_mount():
    c = container({})
    check(c.get("args") == ["--config", CONFIG_FILE], f"args are {c.get('args')}, expected --config {CONFIG_FILE}")
    check("command" not in c, "the image's ENTRYPOINT (ferrocast) must be kept")
    env = env_of(c)
    node_id = env.get("FERROCAST_SERVER__NODE_ID", {})
    check(
        node_id.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
        f"FERROCAST_SERVER__NODE_ID must come from the pod name (fieldRef metadata.name), is {node_id}",
    )
    for name, value in {
        "FERROCAST_SERVER__HOST": "0.0.0.0",
        "FERROCAST_SERVER__PORT": "6001",
        "FERROCAST_SERVER__METRICS_PORT": "9601",
        "FERROCAST_BACKPLANE__DRIVER": "memory",
        "FERROCAST_WEBHOOKS__LEAVE_DELAY_MS": "3000",
        "FERROCAST_WEBHOOKS__FLUSH_TIMEOUT_S": "5",
    }.items():
        check(env.get(name, {}).get("value") == value, f"{name} is {env.get(name)}, expected {value!r}")
    check("FERROCAST_BACKPLANE__URL" not in env, "with a rendered config the Redis URL belongs in the Secret, not the env")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    check(
        mounts.get("/etc/ferrocast", {}).get("readOnly") is True,
        f"the config Secret must be mounted read-only at /etc/ferrocast, mounts: {list(mounts)}",
    )
    volume = deployment({})["spec"]["template"]["spec"]["volumes"][0]
    check(volume["secret"]["secretName"] == FULLNAME, f"config volume is {volume}")
    check(volume["secret"]["items"] == [{"key": "ferrocast.toml", "path": "ferrocast.toml"}], f"config volume is {volume}")
    # 0440 (octal): readable through fsGroup only; without an fsGroup the node's uid must still read it.
    check(volume["secret"]["defaultMode"] == 0o440, f"config file mode is {oct(volume['secret']['defaultMode'])}")
    no_fs_group = deployment({"podSecurityContext": {"fsGroup": None}})  # null removes a default
    mode = no_fs_group["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"]
    check(mode == 0o444, f"without fsGroup the config file mode must be 0444, is {oct(mode)}")
    toml = tomllib.loads(rendered_toml({}))
    check(toml["server"]["host"] == "0.0.0.0", "the rendered config must listen on 0.0.0.0")
    check("node_id" not in toml["server"], "node_id must come from the pod name, not the file")


def test_existing_secret_and_redis_url_secret():
    values = copy.deepcopy(WHOLE_CONFIG_SECRET_VALUES)
    docs = render(values)
    check(not find(docs, "Secret"), "with existingSecret the chart must not render a config Secret")
    c = container(values)
    pod = deployment(values)["spec"]["template"]["spec"]
    check(pod["volumes"][0]["secret"]["secretName"] == values["existingSecret"], "config volume must use existingSecret")
    env = env_of(c)
    url = env.get("FERROCAST_BACKPLANE__URL", {})
    check(
        url.get("valueFrom", {}).get("secretKeyRef") == {"name": "ferrocast-redis", "key": "url"},
        f"FERROCAST_BACKPLANE__URL must come from redis.urlSecret, is {url}",
    )
    check(env["FERROCAST_BACKPLANE__DRIVER"]["value"] == "redis", "the whole-config values run the redis driver")
    check(env.get("FERROCAST_LOG", {}).get("value") == "info", "extraEnv must reach the container")
    # The helm test needs tests.appKey here (the chart cannot see the apps).
    test_pod = one(docs, "Pod")
    check(env_of(test_pod["spec"]["containers"][0])["FERROCAST_APP_KEY"]["value"] == "live-key",
          "the helm test must use tests.appKey with existingSecret")
    check(not find(render(dict(values, tests={"enabled": True, "appKey": ""})), "Pod"),
          "with existingSecret and no tests.appKey there is no key to test with: no test pod")
    # existingSecret with a plain external URL: set from the environment.
    plain = {"existingSecret": "cfg", "replicaCount": 2, "config": {"backplane": {"driver": "redis"}},
             "redis": {"url": "redis://redis.example:6379"}}
    env = env_of(container(plain))
    check(env.get("FERROCAST_BACKPLANE__URL", {}).get("value") == "redis://redis.example:6379", f"env is {env}")


def test_config_checksum_rolls_pods_on_config_change():
    def checksum(values):
        return deployment(values)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = copy.deepcopy(RICH_VALUES)
    changed = copy.deepcopy(RICH_VALUES)
    changed["config"]["apps"][1]["secret"] = "rotated"
    check(checksum(base) == checksum(changed),
          "appReload: live (the default): an app change is reloaded by the running nodes, not rolled")
    check(rendered_toml(changed) != rendered_toml(base) and "rotated" in rendered_toml(changed),
          "the app change still reaches the mounted file the nodes reload")
    restart = lambda v: dict(copy.deepcopy(v), appReload="restart")
    check(checksum(restart(base)) != checksum(restart(changed)),
          "appReload: restart: changing an app secret must change the pods' checksum/config")
    settings = copy.deepcopy(RICH_VALUES)
    settings["config"]["server"]["activity_timeout_s"] = 61
    check(checksum(base) != checksum(settings), "a settings change rolls the pods in either mode")
    scaled = copy.deepcopy(RICH_VALUES)
    scaled["podAnnotations"] = {"example.com/owner": "team"}
    check(checksum(base) == checksum(scaled), "the checksum must depend on the config only")
    annotations = deployment(scaled)["spec"]["template"]["metadata"]["annotations"]
    check(annotations.get("example.com/owner") == "team", "podAnnotations must reach the pods")


def test_webhooks_config_renders_into_the_toml():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    check(defaults["config"]["webhooks"] == WEBHOOK_DEFAULTS,
          f"values.yaml config.webhooks is {defaults['config']['webhooks']}, "
          f"expected the server's defaults {WEBHOOK_DEFAULTS}")
    toml = tomllib.loads(rendered_toml({}))
    check(toml["webhooks"] == WEBHOOK_DEFAULTS, f"the default [webhooks] section is {toml.get('webhooks')}")
    # A partial section keeps the other defaults.
    toml = tomllib.loads(rendered_toml({"config": {"webhooks": {"queue_capacity": 7, "leave_delay_ms": 0}}}))
    check(toml["webhooks"] == dict(WEBHOOK_DEFAULTS, queue_capacity=7, leave_delay_ms=0),
          f"[webhooks] with two keys set is {toml['webhooks']}")
    rich = RICH_VALUES["config"]
    toml = tomllib.loads(rendered_toml(copy.deepcopy(RICH_VALUES)))
    check(toml["webhooks"] == rich["webhooks"], f"[webhooks] is {toml['webhooks']}, expected {rich['webhooks']}")
    check(toml["apps"][0]["enable_webhook_batching"] is True, f"enable_webhook_batching is lost: {toml['apps'][0]}")
    check(toml["apps"][0]["webhooks"] == rich["apps"][0]["webhooks"], f"[[apps.webhooks]] are {toml['apps'][0]['webhooks']}")
    check(all("enable_webhook_batching" not in app for app in toml["apps"][1:]), "batching must stay off unless set")
    # The chart owns the two settings the grace period depends on: the pod's environment repeats them.
    env = env_of(container(copy.deepcopy(RICH_VALUES)))
    check(env["FERROCAST_WEBHOOKS__LEAVE_DELAY_MS"].get("value") == "1500"
          and env["FERROCAST_WEBHOOKS__FLUSH_TIMEOUT_S"].get("value") == "2", f"webhook env is {env}")
    # With existingSecret the file is the operator's, but those two still come from the values.
    env = env_of(container(production_values()))
    check(env["FERROCAST_WEBHOOKS__LEAVE_DELAY_MS"].get("value") == "3000"
          and env["FERROCAST_WEBHOOKS__FLUSH_TIMEOUT_S"].get("value") == "15", f"production webhook env is {env}")
    other = [n for n in env if n.startswith("FERROCAST_WEBHOOKS__")]
    check(sorted(other) == ["FERROCAST_WEBHOOKS__FLUSH_TIMEOUT_S", "FERROCAST_WEBHOOKS__LEAVE_DELAY_MS"],
          f"only the settings the grace period depends on may be set from the environment: {other}")

    def checksum(values):
        return deployment(values)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    check(checksum({}) != checksum({"config": {"webhooks": {"timeout_ms": 1000}}}),
          "changing config.webhooks must roll the pods")


def test_memory_backplane_with_several_nodes_is_refused():
    message = render_error({"replicaCount": 2})
    check('config.backplane.driver is "memory"' in message and "replicaCount is 2" in message, message)
    message = render_error({"autoscaling": {"enabled": True}})
    check("autoscaling.enabled needs config.backplane.driver=redis" in message, message)
    message = render_error({"redis": {"bundled": {"enabled": True}}})
    check("redis.bundled.enabled" in message, message)
    message = render_error({"replicaCount": 3, "config": {"backplane": {"driver": "redis"}}})
    check("no Redis is given" in message, message)
    message = render_error({"config": {"backplane": {"driver": "redis"}}, "redis": {"url": "redis://a:1", "bundled": {"enabled": True}}})
    check("not both" in message, message)
    # Accepted: one node in memory, several on Redis.
    check(deployment({})["spec"]["replicas"] == 1, "default must be one node")
    ok = {"replicaCount": 3, "config": {"backplane": {"driver": "redis"}}, "redis": {"url": "rediss://u:p@r.example:6380"}}
    check(deployment(ok)["spec"]["replicas"] == 3, "3 nodes on Redis must render")
    toml = tomllib.loads(rendered_toml(ok))
    check(toml["backplane"] == {"driver": "redis", "url": "rediss://u:p@r.example:6380", "prefix": "ferrocast", "node_ttl_s": 15},
          f"backplane section is {toml['backplane']}")


def test_redis_cluster_driver_renders_its_seeds_and_refuses_one_redis_settings():
    toml = tomllib.loads(rendered_toml(copy.deepcopy(REDIS_CLUSTER_DRIVER_VALUES)))
    check(toml["backplane"]["driver"] == "redis-cluster", f"backplane section is {toml['backplane']}")
    check(toml["backplane"]["urls"] == REDIS_CLUSTER_DRIVER_VALUES["config"]["backplane"]["urls"], f"{toml['backplane']}")
    check("url" not in toml["backplane"], "no single-Redis url with the redis-cluster driver")
    no_seeds = {"replicaCount": 3, "config": {"backplane": {"driver": "redis-cluster"}}}
    check("config.backplane.urls" in render_error(no_seeds), "a Redis Cluster without seeds must fail")
    both = copy.deepcopy(REDIS_CLUSTER_DRIVER_VALUES)
    both["redis"] = {"url": "redis://one:6379"}
    check("are for one Redis" in render_error(both), "redis.url with redis-cluster must fail")
    bundled = copy.deepcopy(REDIS_CLUSTER_DRIVER_VALUES)
    bundled["redis"] = {"bundled": {"enabled": True}}
    check("are for one Redis" in render_error(bundled), "redis.bundled with redis-cluster must fail")
    env = {e["name"]: e.get("value") for e in deployment(copy.deepcopy(REDIS_CLUSTER_DRIVER_VALUES))["spec"]["template"]["spec"]["containers"][0]["env"]}
    check(env.get("FERROCAST_BACKPLANE__DRIVER") == "redis-cluster" and "FERROCAST_BACKPLANE__URL" not in env, f"{env}")


def test_other_refusals():
    check("duplicate app id" in render_error({"config": {"apps": [
        {"id": "a", "key": "k1", "secret": "s"}, {"id": "a", "key": "k2", "secret": "s"}]}}), "duplicate ids must fail")
    check("duplicate app key" in render_error({"config": {"apps": [
        {"id": "a", "key": "k", "secret": "s"}, {"id": "b", "key": "k", "secret": "s"}]}}), "duplicate keys must fail")
    check("config.apps is empty" in render_error({"config": {"apps": []}}), "no apps must fail")
    check("must differ" in render_error({"ports": {"ws": 7000, "metrics": 7000}}), "equal ports must fail")
    check("not both" in render_error({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}), "PDB both must fail")


def server_section(values: dict) -> dict:
    return tomllib.loads(rendered_toml(values))["server"]


def test_edge_server_keys_render_into_the_toml():
    server = server_section(copy.deepcopy(EDGE_VALUES))
    check(server == dict(EDGE_SERVER, host="0.0.0.0", port=6001, metrics_port=9601),
          f"[server] is {server}, expected the values' keys and the chart's host and ports")
    tls = {"tls_cert": "/etc/ferrocast/tls/tls.crt", "tls_key": "/etc/ferrocast/tls/tls.key"}
    server = server_section({"config": {"server": dict(tls)}})
    check(server.items() >= tls.items(), f"tls_cert / tls_key are not rendered: {server}")
    # The defaults of values.yaml are the server's (docs/configuration.md).
    server = server_section({})
    expected = {"max_connections_per_ip": 1000, "max_connection_rate_per_ip": 200, "proxy_protocol": False,
                "request_header_timeout_s": 10, "request_body_timeout_s": 10, "keep_alive_timeout_s": 30,
                "reserved_file_descriptors": 256, "worker_threads": 0}
    check(server.items() >= expected.items() and "trusted_proxy_hops" not in server,
          f"default [server] is {server}; expected {expected} and no trusted_proxy_hops without the Ingress")


def test_client_address_behind_ingress_and_load_balancer():
    ingress = {"ingress": {"enabled": True}}
    check(server_section(ingress).get("trusted_proxy_hops") == 1,
          "behind the Ingress the chart must render trusted_proxy_hops = 1 (else every client shares its address)")
    check(server_section(copy.deepcopy(CLUSTER_VALUES)).get("trusted_proxy_hops") == 1,
          "the cluster values have the Ingress: trusted_proxy_hops must be 1")
    for hops in (0, 3):
        server = server_section({"ingress": {"enabled": True}, "config": {"server": {"trusted_proxy_hops": hops}}})
        check(server.get("trusted_proxy_hops") == hops, f"an explicit trusted_proxy_hops {hops} must win: {server}")
        check(rendered_toml({"ingress": {"enabled": True}, "config": {"server": {"trusted_proxy_hops": hops}}})
              .count("trusted_proxy_hops") == 1, "trusted_proxy_hops must be rendered once")
    server = server_section({"ingress": {"enabled": True}, "config": {"server": {"proxy_protocol": True}}})
    check(server.get("proxy_protocol") is True and "trusted_proxy_hops" not in server,
          f"with proxy_protocol the chart must not add trusted_proxy_hops: {server}")
    message = render_error({"config": {"server": {"proxy_protocol": True, "trusted_proxy_hops": 1}}})
    check("proxy_protocol" in message and "trusted_proxy_hops must be 0" in message, message)
    message = render_error({"ingress": {"enabled": True},
                            "config": {"server": {"proxy_protocol": True, "trusted_proxy_hops": 2}}})
    check("trusted_proxy_hops must be 0" in message, message)
    # externalTrafficPolicy: unset by default (the Kubernetes default), rendered when given.
    svc = one(render({}), "Service", FULLNAME)
    check("externalTrafficPolicy" not in svc["spec"], f"externalTrafficPolicy must be unset by default: {svc['spec']}")
    for policy in ("Local", "Cluster"):
        svc = one(render({"service": {"type": "LoadBalancer", "externalTrafficPolicy": policy}}), "Service", FULLNAME)
        check(svc["spec"].get("type") == "LoadBalancer" and svc["spec"].get("externalTrafficPolicy") == policy,
              f"service.externalTrafficPolicy {policy} is not rendered: {svc['spec']}")


def test_service_ingress_and_service_account():
    docs = render(production_values())
    svc = one(docs, "Service", FULLNAME)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    check(ports == {"ws": (6001, "ws")}, f"client service ports are {ports}: only the WebSocket / REST port")
    pod_labels = deployment(production_values())["spec"]["template"]["metadata"]["labels"]
    check(svc["spec"]["selector"].items() <= pod_labels.items(), "the Service selector must match the pods")
    msvc = one(docs, "Service", METRICS_SERVICE)
    check(msvc["spec"]["type"] == "ClusterIP", f"the metrics Service must be ClusterIP, is {msvc['spec']['type']}")
    mports = {p["name"]: (p["port"], p["targetPort"]) for p in msvc["spec"]["ports"]}
    check(mports == {"metrics": (9601, "metrics")}, f"metrics service ports are {mports}")
    check(msvc["spec"]["selector"].items() <= pod_labels.items(), "the metrics Service selector must match the pods")
    check(msvc["metadata"]["labels"].get("scrape") == "prometheus", "metricsService.labels must reach it")
    ingress = one(docs, "Ingress", FULLNAME)
    annotations = ingress["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        check(annotations.get(f"nginx.ingress.kubernetes.io/{key}") == "3600", f"ingress needs {key} 3600")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    check(backend == {"name": FULLNAME, "port": {"name": "ws"}}, f"ingress backend is {backend}")
    check(ingress["spec"]["tls"][0]["secretName"] == "ferrocast-tls", "ingress TLS missing")
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    check(
        defaults["ingress"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-read-timeout") == "3600"
        and defaults["ingress"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-send-timeout") == "3600",
        "values.yaml must default the nginx WebSocket timeouts to 3600",
    )
    check(not find(render({}), "Ingress"), "the ingress must be off by default")
    sa = one(docs, "ServiceAccount", FULLNAME)
    check(sa.get("automountServiceAccountToken") is False, "the ServiceAccount must not automount its token")
    check(deployment(production_values())["spec"]["template"]["spec"]["serviceAccountName"] == FULLNAME, "pods must use it")


def test_autoscaler():
    values = production_values()
    docs = render(values)
    hpa = one(docs, "HorizontalPodAutoscaler", FULLNAME)
    check(hpa["apiVersion"] == "autoscaling/v2", f"HPA apiVersion is {hpa['apiVersion']}")
    spec = hpa["spec"]
    check(spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}, "HPA target")
    check((spec["minReplicas"], spec["maxReplicas"]) == (3, 12), f"HPA bounds are {spec['minReplicas']}..{spec['maxReplicas']}")
    metrics = {m["type"]: m for m in spec["metrics"]}
    check(metrics["Resource"]["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}},
          f"CPU metric is {metrics.get('Resource')}")
    check(
        metrics.get("Pods", {}).get("pods") == {"metric": {"name": "ferrocast_connections"},
                                                "target": {"type": "AverageValue", "averageValue": "20000"}},
        f"connections metric is {metrics.get('Pods')}",
    )
    check(spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60, "scale-down must be damped (drains clients)")
    check("replicas" not in one(docs, "Deployment", FULLNAME)["spec"], "with an HPA the Deployment must not set replicas")
    check(not find(render({}), "HorizontalPodAutoscaler"), "autoscaling must be off by default")


def test_disruption_budget_and_rollout():
    check(production_values()["podDisruptionBudget"] == {"enabled": True, "minAvailable": 2},
          "the production values must set only podDisruptionBudget.minAvailable")
    pdb = one(render(production_values()), "PodDisruptionBudget", FULLNAME)
    check(pdb["spec"].get("minAvailable") == 2 and "maxUnavailable" not in pdb["spec"], f"PDB is {pdb['spec']}")
    only_min = one(render({"podDisruptionBudget": {"minAvailable": "50%"}}), "PodDisruptionBudget")
    check(set(only_min["spec"]) == {"minAvailable", "selector"} and only_min["spec"]["minAvailable"] == "50%",
          f"setting only minAvailable must render only minAvailable: {only_min['spec']}")
    only_max = one(render({"podDisruptionBudget": {"maxUnavailable": 2}}), "PodDisruptionBudget")
    check(set(only_max["spec"]) == {"maxUnavailable", "selector"} and only_max["spec"]["maxUnavailable"] == 2,
          f"setting only maxUnavailable must render only it: {only_max['spec']}")
    pod_labels = deployment({})["spec"]["template"]["metadata"]["labels"]
    check(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), "PDB selector must match the pods")
    default = one(render({}), "PodDisruptionBudget", FULLNAME)
    check(default["spec"] == {"maxUnavailable": 1, "selector": default["spec"]["selector"]}, f"default PDB is {default['spec']}")
    pct = one(render({"podDisruptionBudget": {"maxUnavailable": "25%"}}), "PodDisruptionBudget")
    check(pct["spec"]["maxUnavailable"] == "25%", "percentages must stay strings")
    strategy = deployment({})["spec"]["strategy"]
    check(strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0,
          f"rolling updates must keep capacity: {strategy}")
    recreate = deployment({"updateStrategy": {"type": "Recreate"}})["spec"]["strategy"]
    check(recreate == {"type": "Recreate"}, f"a Recreate strategy must not carry rollingUpdate: {recreate}")


def test_topology_spread_by_default():
    pod = deployment({})["spec"]["template"]["spec"]
    constraints = pod.get("topologySpreadConstraints") or []
    keys = [c["topologyKey"] for c in constraints]
    check(keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"], f"spread keys are {keys}")
    labels = deployment({})["spec"]["template"]["metadata"]["labels"]
    for c in constraints:
        check(c["labelSelector"]["matchLabels"].items() <= labels.items(), "spread selector must match the pods")
        check(c["whenUnsatisfiable"] == "ScheduleAnyway", "the default spread must not block scheduling")
    off = deployment({"topologySpread": {"enabled": False}})["spec"]["template"]["spec"]
    check("topologySpreadConstraints" not in off, "topologySpread.enabled=false must remove the constraints")


def test_bundled_redis():
    check(yaml.safe_load((CHART / "values.yaml").read_text())["redis"]["bundled"]["enabled"] is False,
          "the bundled Redis must be off by default")
    check(not [d for d in render({}) if "redis" in d["metadata"]["name"]], "no Redis objects by default")
    docs = render(CLUSTER_VALUES)
    name = f"{FULLNAME}-redis"
    redis_dep = one(docs, "Deployment", name)
    redis_svc = one(docs, "Service", name)
    image = redis_dep["spec"]["template"]["spec"]["containers"][0]["image"]
    check(re.fullmatch(r"redis:\d[\w.-]*", image), f"bundled Redis image is {image!r}, expected the official redis image")
    check(redis_dep["spec"]["replicas"] == 1, "the bundled Redis is a single replica")
    check(redis_svc["spec"]["ports"][0]["port"] == 6379, "the bundled Redis Service must listen on 6379")
    check(redis_svc["spec"]["selector"].items() <= redis_dep["spec"]["template"]["metadata"]["labels"].items(),
          "the Redis Service must select the Redis pod")
    server_selector = one(docs, "Service", FULLNAME)["spec"]["selector"]
    check(not server_selector.items() <= redis_dep["spec"]["template"]["metadata"]["labels"].items(),
          "the ferrocast Service must not select the Redis pod")
    toml = tomllib.loads(rendered_toml(CLUSTER_VALUES))
    check(toml["backplane"]["url"] == f"redis://{name}:6379", f"backplane.url is {toml['backplane'].get('url')}")


# ----------------------------------------------------------------------------------------------
# The keys well-kept charts accept, each wired into the manifests


# The keys added for issue 12: the production values must use each (dotted paths).
NEW_KEYS = [
    "global.imageRegistry", "image.digest", "commonLabels", "commonAnnotations", "revisionHistoryLimit",
    "config.server.worker_threads", "config.backplane.replay_log_max_len", "config.backplane.replay_log_ttl_s",
    "config.apps.0.existingSecret", "redis.urlSecret", "service.nodePorts", "metricsService.labels",
    "probes.liveness.terminationGracePeriodSeconds", "probes.readiness.initialDelaySeconds", "podLabels",
    "extraEnv", "extraEnvFrom", "extraVolumes", "extraVolumeMounts", "initContainers", "sidecars", "hostAliases",
    "dnsConfig", "podDisruptionBudget.minAvailable", "serviceMonitor.honorLabels", "serviceMonitor.relabelings",
    "serviceMonitor.metricRelabelings", "prometheusRule.runbookBaseUrl", "prometheusRule.rules.rest5xx",
    "tests.enabled", "networkPolicy.enabled", "networkPolicy.metricsFrom", "networkPolicy.egress.redis",
    "networkPolicy.egress.webhooks", "httpRoute.parentRefs", "httpRoute.timeouts", "grafanaDashboard.enabled",
    "config.log.format", "appReload",
]


def test_production_values_use_every_new_key():
    values = production_values()
    for path in NEW_KEYS:
        node = values
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else (node or {}).get(part) if isinstance(node, dict) else None
        check(node not in (None, "", [], {}), f"tests/helm/values-production.yaml does not use {path}")


def test_extra_env_volumes_containers_and_pod_settings():
    values = production_values()
    pod = deployment(values)["spec"]["template"]["spec"]
    c = container(values)
    env = env_of(c)
    for e in values["extraEnv"]:
        check(env.get(e["name"]) == e, f"extraEnv {e['name']} is {env.get(e['name'])} in the container")
    check(c.get("envFrom") == values["extraEnvFrom"], f"extraEnvFrom is rendered as {c.get('envFrom')}")
    mounts = c["volumeMounts"]
    check(mounts[0]["mountPath"] == CONFIG_DIR and mounts[1:] == values["extraVolumeMounts"],
          f"volumeMounts are {mounts}: the config, then extraVolumeMounts")
    check(pod["volumes"][1:] == values["extraVolumes"], f"volumes are {pod['volumes']}: the config, then extraVolumes")
    check(pod.get("initContainers") == values["initContainers"], f"initContainers are {pod.get('initContainers')}")
    check(pod["containers"][1:] == values["sidecars"], f"sidecars are {pod['containers'][1:]}")
    check(pod.get("hostAliases") == values["hostAliases"], f"hostAliases are {pod.get('hostAliases')}")
    check(pod.get("dnsConfig") == values["dnsConfig"], f"dnsConfig is {pod.get('dnsConfig')}")
    dep = deployment(values)
    check(dep["spec"]["revisionHistoryLimit"] == 3, f"revisionHistoryLimit is {dep['spec'].get('revisionHistoryLimit')}")
    check(deployment({})["spec"]["revisionHistoryLimit"] == 5, "the default revisionHistoryLimit is 5")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check(labels.get("cost-center") == "realtime" and labels.get("team") == "realtime",
          f"podLabels and commonLabels must reach the pods: {labels}")
    plain = deployment({})["spec"]["template"]["spec"]
    for key in ("initContainers", "hostAliases", "dnsConfig"):
        check(key not in plain, f"{key} must be absent by default")
    check(len(plain["volumes"]) == 1 and "envFrom" not in plain["containers"][0], "no extra volumes or envFrom by default")


CONFIG_DIR = "/etc/ferrocast"


def test_common_labels_and_annotations_on_every_object():
    values = production_values()
    docs = render(values)
    check(len(docs) >= 10, f"production renders only {len(docs)} objects")
    for doc in docs:
        what = f"{doc['kind']} {doc['metadata']['name']}"
        meta = doc["metadata"]
        check((meta.get("labels") or {}).get("team") == "realtime", f"{what}: commonLabels missing: {meta.get('labels')}")
        check((meta.get("annotations") or {}).get("example.com/owner") == "realtime-team",
              f"{what}: commonAnnotations missing: {meta.get('annotations')}")
    ingress = one(docs, "Ingress")
    check(ingress["metadata"]["annotations"].get("cert-manager.io/cluster-issuer") == "letsencrypt",
          "the Ingress keeps its own annotations beside commonAnnotations")
    # Bundled Redis objects too; and nothing by default.
    for doc in render(dict(copy.deepcopy(CLUSTER_VALUES), commonLabels={"team": "x"}, commonAnnotations={"a": "b"})):
        check(doc["metadata"]["labels"].get("team") == "x" and doc["metadata"]["annotations"].get("a") == "b",
              f"{doc['kind']} {doc['metadata']['name']}: commonLabels / commonAnnotations missing")
    for doc in render({}):
        if doc["kind"] != "Pod":
            check("annotations" not in doc["metadata"], f"{doc['kind']}: no annotations by default")


def test_image_registry_digest_and_tag():
    check(container({})["image"] == "ferrocast:0.1.0", f"default image is {container({})['image']}")
    values = production_values()
    digest = values["image"]["digest"]
    check(container(values)["image"] == f"registry.example.com/ferrocast@{digest}",
          f"global.imageRegistry + image.digest must give registry.example.com/ferrocast@{digest}, "
          f"got {container(values)['image']}")
    reg = {"global": {"imageRegistry": "mirror.example.com/hub/"}, "image": {"tag": "9.9.9"}}
    check(container(reg)["image"] == "mirror.example.com/hub/ferrocast:9.9.9",
          f"global.imageRegistry must prefix the repository: {container(reg)['image']}")
    bundled = copy.deepcopy(CLUSTER_VALUES)
    bundled["global"] = {"imageRegistry": "mirror.example.com"}
    redis_dep = one(render(bundled), "Deployment", f"{FULLNAME}-redis")
    image = redis_dep["spec"]["template"]["spec"]["containers"][0]["image"]
    check(image == "mirror.example.com/redis:7.4-alpine", f"the bundled Redis image must use the registry too: {image}")
    test_pod = one(render(values), "Pod")
    check(test_pod["spec"]["containers"][0]["image"] == "registry.example.com/busybox:1.37",
          f"the helm test image must use the registry too: {test_pod['spec']['containers'][0]['image']}")
    check(deployment(values)["metadata"]["labels"]["app.kubernetes.io/version"] == "0.1.0", "the tag names the version")


def test_service_node_ports():
    svc = one(render({"service": {"type": "NodePort", "nodePorts": {"ws": 30601}}}), "Service", FULLNAME)
    check(svc["spec"]["ports"][0].get("nodePort") == 30601, f"service.nodePorts.ws is not rendered: {svc['spec']}")
    lb = one(render({"service": {"type": "LoadBalancer", "nodePorts": {"ws": 30602}}}), "Service", FULLNAME)
    check(lb["spec"]["ports"][0].get("nodePort") == 30602, f"nodePorts with LoadBalancer: {lb['spec']}")
    check(all(p["port"] != 9601 and p["name"] != "metrics" for p in lb["spec"]["ports"]),
          f"a LoadBalancer must never expose the metrics port: {lb['spec']['ports']}")
    check(one(render({"service": {"type": "LoadBalancer"}}), "Service", METRICS_SERVICE)["spec"]["type"] == "ClusterIP",
          "the metrics Service stays ClusterIP whatever service.type is")
    cluster_ip = one(render({"service": {"nodePorts": {"ws": 30601}}}), "Service", FULLNAME)
    check("nodePort" not in cluster_ip["spec"]["ports"][0], "a ClusterIP Service has no nodePort")
    check("nodePort" not in one(render({}), "Service", FULLNAME)["spec"]["ports"][0], "no nodePort by default")


def test_probe_overrides_merge_over_the_defaults():
    c = container(production_values())
    liveness = c["livenessProbe"]
    check(liveness.get("terminationGracePeriodSeconds") == 20 and liveness["httpGet"] == {"path": "/healthz", "port": "metrics"}
          and liveness["periodSeconds"] == 10, f"a field given must be merged over the default probe: {liveness}")
    check(c["readinessProbe"].get("initialDelaySeconds") == 1 and c["readinessProbe"]["httpGet"]["path"] == "/readyz",
          f"readinessProbe is {c['readinessProbe']}")
    check(c["startupProbe"]["failureThreshold"] == 60 and c["startupProbe"]["timeoutSeconds"] == 2,
          f"startupProbe is {c['startupProbe']}")
    header = container({"probes": {"liveness": {"httpGet": {"httpHeaders": [{"name": "X-Probe", "value": "1"}]}}}})
    check(header["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics",
                                                 "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
          f"an httpGet given is merged over the chart's: {header['livenessProbe']}")
    tcp = container({"probes": {"liveness": {"tcpSocket": {"port": "metrics"}}}})["livenessProbe"]
    check(tcp.get("tcpSocket") == {"port": "metrics"} and "httpGet" not in tcp,
          f"another handler replaces the chart's httpGet: {tcp}")
    check(tcp["periodSeconds"] == 10, "the default timings stay")


def doc_keys(section: str) -> set[str]:
    """The keys of one table of docs/configuration.md (`## [server]`, ...)."""
    text = CONFIG_DOC.read_text()
    m = re.search(rf"^## `{re.escape(section)}`.*?\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    check(m, f"docs/configuration.md has no section {section}")
    body = m.group(1)
    if section == "[[apps]]":
        body = body.split("### `[[apps.webhooks]]`")[0]
    keys: set[str] = set()
    for row in re.findall(r"^\| (`[^|]+) \|", body, re.M):
        keys.update(re.findall(r"`([a-z_]+)`", row))
    check(keys, f"no keys found in the {section} table of docs/configuration.md")
    return keys


def test_schema_accepts_every_key_of_docs_configuration():
    """Every key docs/configuration.md lists is accepted under config.* (except those the chart
    owns and says so), and the schema has none the server does not know."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]
    owned = {"server": {"host", "port", "metrics_port", "node_id"}, "backplane": {"url"}, "webhooks": set(), "log": set()}
    for section in ("server", "backplane", "webhooks", "log"):
        documented = doc_keys(f"[{section}]")
        accepted = set(config[section]["properties"])
        check(documented - owned[section] == accepted,
              f"config.{section}: docs/configuration.md lists {sorted(documented - owned[section] - accepted)} "
              f"that the schema refuses, the schema accepts {sorted(accepted - documented)} the docs do not list")
    app = schema["definitions"]["app"]["properties"]
    documented = doc_keys("[[apps]]")
    # existingSecret is the chart's own (rendered as secret_env); webhooks is [[apps.webhooks]], below.
    accepted = set(app) - {"existingSecret", "webhooks"}
    check(documented == accepted, f"config.apps[]: documented but refused {sorted(documented - accepted)}, "
          f"accepted but undocumented {sorted(accepted - documented)}")
    text = CONFIG_DOC.read_text()
    hooks_table = text.split("### `[[apps.webhooks]]`")[1].split("\n\n")[1]
    documented = {k for row in re.findall(r"^\| (`[^|]+) \|", hooks_table, re.M) for k in re.findall(r"`([a-z_]+)`", row)}
    hook = set(schema["definitions"]["webhook"]["properties"])
    check(documented == hook and "webhooks" in app, f"[[apps.webhooks]] keys: documented {documented}, schema {hook}")
    # And they really pass the schema and reach the file.
    values = {"config": {"server": {"worker_threads": 3}, "backplane": {"replay_log_max_len": 0, "replay_log_ttl_s": 5},
                         "log": {"format": "json", "filter": "info,audit=warn"}}}
    toml = tomllib.loads(rendered_toml(values))
    check(toml["server"]["worker_threads"] == 3 and toml["backplane"]["replay_log_max_len"] == 0
          and toml["backplane"]["replay_log_ttl_s"] == 5, f"rendered: {toml['server']} {toml['backplane']}")
    check(toml["log"] == {"format": "json", "filter": "info,audit=warn"}, f"rendered [log]: {toml.get('log')}")


def test_app_secret_sources():
    values = {"config": {"apps": [
        {"id": "a", "key": "ka", "existingSecret": {"name": "app-secrets", "key": "a"}},
        {"id": "b", "key": "kb", "secret": "sb"},
        {"id": "c", "key": "kc", "secret_env": "C_SECRET"},
    ]}, "extraEnv": [{"name": "C_SECRET", "value": "from-extra-env"}]}
    toml = tomllib.loads(rendered_toml(values))
    check(toml["apps"][0] == {"id": "a", "key": "ka", "secret_env": "FERROCAST_APP_SECRET_0"},
          f"existingSecret must render secret_env: {toml['apps'][0]}")
    check(toml["apps"][1]["secret"] == "sb" and toml["apps"][2]["secret_env"] == "C_SECRET", f"apps are {toml['apps']}")
    env = env_of(container(values))
    check(env["FERROCAST_APP_SECRET_0"] == {"name": "FERROCAST_APP_SECRET_0", "valueFrom": {
        "secretKeyRef": {"name": "app-secrets", "key": "a"}}}, f"env is {env.get('FERROCAST_APP_SECRET_0')}")
    check(not [n for n in env if n.startswith("FERROCAST_APP_SECRET_") and n != "FERROCAST_APP_SECRET_0"],
          "only apps with existingSecret get a variable")
    check("existingSecret" not in rendered_toml(values), "existingSecret is the chart's key, not the server's")
    message = render_error({"config": {"apps": [{"id": "a", "key": "k", "secret": "s", "secret_env": "S"}]}})
    check("schema" in message or "exactly one of secret" in message, message)
    run_rendered(dict(values, config=dict(values["config"], server={"shutdown_grace_s": 2}),
                      lifecycle={"preStopSleepSeconds": 0}))


def test_postgres_registry_from_an_existing_secret():
    """registry.driver=postgres: the URL comes from a Secret (never the config file), no
    [[apps]] are rendered or required, and the node accepts the result (check-config)."""
    values = {"registry": {"driver": "postgres", "existingSecret": {"name": "ferrocast-pg", "key": "dsn"},
                           "refresh_s": 45, "migrate": False},
              "config": {"apps": []}, "tests": {"enabled": True, "appKey": "pg-key"}}
    c = container(values)
    env = env_of(c)
    check(env.get("FERROCAST_REGISTRY__URL", {}).get("valueFrom", {}).get("secretKeyRef")
          == {"name": "ferrocast-pg", "key": "dsn"}, f"FERROCAST_REGISTRY__URL is {env.get('FERROCAST_REGISTRY__URL')}")
    check(env["FERROCAST_REGISTRY__DRIVER"]["value"] == "postgres", f"env is {env}")
    check(env["FERROCAST_REGISTRY__REFRESH_S"]["value"] == "45", f"env is {env}")
    check(env["FERROCAST_REGISTRY__MIGRATE"]["value"] == "false", f"env is {env}")
    toml_text = rendered_toml(values)
    check("apps" not in tomllib.loads(toml_text), f"no [[apps]] with the postgres registry:\n{toml_text}")
    check("postgres://" not in toml_text, "the PostgreSQL URL must not be in the config file")
    check(not [n for n in env if n.startswith("FERROCAST_APP_SECRET_")], "no app secret variables")
    docs = render(values)
    test_pod = one(docs, "Pod")
    check(env_of(test_pod["spec"]["containers"][0])["FERROCAST_APP_KEY"]["value"] == "pg-key",
          "the helm test must use tests.appKey with the postgres registry")
    check(not find(render(dict(values, tests={"enabled": True, "appKey": ""})), "Pod"),
          "with the postgres registry and no tests.appKey there is no key to test with: no test pod")
    # The default config.apps (the demo app) is ignored rather than refused.
    check("apps" not in tomllib.loads(rendered_toml({"registry": values["registry"]})), "config.apps must be ignored")
    message = render_error({"registry": {"driver": "postgres"}})
    check("registry.existingSecret.name" in message, message)
    render_error({"registry": {"driver": "mysql"}})  # the schema refuses any other driver
    check("FERROCAST_REGISTRY__URL" not in env_of(container()), "the file registry sets no URL")
    # The real binary takes the rendered file and the pod's environment.
    pod_env = pod_environment(c, "ferrocast-0")
    pod_env["FERROCAST_REGISTRY__URL"] = "postgres://ferro:pw-never-shown@db.example:5432/apps"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ferrocast.toml"
        config.write_text(toml_text)
        run = subprocess.run([str(binary()), "check-config", str(config)], capture_output=True, text=True,
                             env={**{k: v for k, v in os.environ.items() if not k.startswith("FERROCAST_")}, **pod_env},
                             timeout=30)
    check(run.returncode == 0 and "apps from PostgreSQL" in run.stdout, f"check-config: {run.returncode} {run.stdout}{run.stderr}")
    check("pw-never-shown" not in run.stdout + run.stderr, "check-config printed the password")


def test_grafana_dashboard_config_map():
    check(CHART_DASHBOARD.read_bytes() == DASHBOARD.read_bytes(),
          "helm/ferrocast/dashboards/ferrocast.json differs from deploy/grafana-dashboard.json: copy it again "
          "(cp deploy/grafana-dashboard.json helm/ferrocast/dashboards/ferrocast.json)")
    check(not find(render({}), "ConfigMap"), "the dashboard ConfigMap must be off by default")
    cm = one(render(production_values()), "ConfigMap", f"{FULLNAME}-dashboard")
    check(cm["metadata"]["labels"].get("grafana_dashboard") == "1", f"sidecar label missing: {cm['metadata']['labels']}")
    check(cm["metadata"]["annotations"].get("grafana_folder") == "Ferrocast", "grafanaDashboard.annotations must reach it")
    check(json.loads(cm["data"]["ferrocast.json"]) == json.loads(DASHBOARD.read_text()),
          "the ConfigMap must hold the dashboard as it is")
    other = one(render({"grafanaDashboard": {"enabled": True, "label": "dashboards.example.com/load", "labelValue": "yes",
                                             "namespace": "monitoring"}}), "ConfigMap")
    check(other["metadata"]["labels"].get("dashboards.example.com/load") == "yes"
          and other["metadata"]["namespace"] == "monitoring", f"label / namespace not configurable: {other['metadata']}")


GATEWAY_DURATION = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
HTTP_ROUTE_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"}, "kind": {"const": "HTTPRoute"},
        "metadata": {"type": "object"},  # _META, set in test_http_route (defined further down)
        "spec": {"type": "object", "required": ["parentRefs", "rules"], "additionalProperties": False, "properties": {
            "parentRefs": {"type": "array", "minItems": 1, "maxItems": 32, "items": {
                "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                    "group": {"type": "string"}, "kind": {"type": "string"}, "namespace": {"type": "string"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 253},
                    "sectionName": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535}}}},
            "hostnames": {"type": "array", "maxItems": 16, "items": {"type": "string", "pattern":
                          r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}},
            "rules": {"type": "array", "minItems": 1, "maxItems": 16, "items": {
                "type": "object", "additionalProperties": False, "properties": {
                    "matches": {"type": "array", "maxItems": 64, "items": {
                        "type": "object", "additionalProperties": False, "properties": {
                            "path": {"type": "object", "additionalProperties": False, "required": ["type", "value"],
                                     "properties": {"type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                                                    "value": {"type": "string", "pattern": "^/"}}}}}},
                    "backendRefs": {"type": "array", "items": {
                        "type": "object", "required": ["name", "port"], "additionalProperties": False, "properties": {
                            "name": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "weight": {"type": "integer"}}}},
                    "timeouts": {"type": "object", "additionalProperties": False, "properties": {
                        "request": {"type": "string", "pattern": GATEWAY_DURATION},
                        "backendRequest": {"type": "string", "pattern": GATEWAY_DURATION}}}}}}}}}}


def test_http_route():
    HTTP_ROUTE_SCHEMA["properties"]["metadata"] = _META
    docs = render(production_values())
    route = one(docs, "HTTPRoute", FULLNAME)
    validate_crd(route, HTTP_ROUTE_SCHEMA)
    spec = route["spec"]
    check(spec["parentRefs"] == [{"name": "public-gateway", "namespace": "gateway", "sectionName": "https"}],
          f"parentRefs are {spec['parentRefs']}")
    check(spec["hostnames"] == ["ws.example.com"], f"hostnames are {spec.get('hostnames')}")
    rule = spec["rules"][0]
    svc = one(docs, "Service", FULLNAME)
    check(rule["backendRefs"] == [{"name": FULLNAME, "port": svc["spec"]["ports"][0]["port"]}],
          f"the route must send to the client Service's port: {rule['backendRefs']}")
    check(rule["timeouts"] == {"request": "0s", "backendRequest": "0s"},
          f"long-lived WebSockets need the request timeouts off by default: {rule['timeouts']}")
    long = one(render({"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}],
                                     "timeouts": {"request": "24h", "backendRequest": "24h"}}}), "HTTPRoute")
    validate_crd(long, HTTP_ROUTE_SCHEMA)
    check(long["spec"]["rules"][0]["timeouts"] == {"request": "24h", "backendRequest": "24h"}, "timeouts configurable")
    check(server_section({"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}]}}).get("trusted_proxy_hops") == 1,
          "behind the gateway the client is the last X-Forwarded-For entry: trusted_proxy_hops = 1")
    check("parentRefs" in render_error({"httpRoute": {"enabled": True}}), "a route without parentRefs must be refused")
    check(not find(render({}), "HTTPRoute"), "the HTTPRoute must be off by default")


def test_network_policy():
    docs = render(production_values())
    np_ = one(docs, "NetworkPolicy", FULLNAME)
    spec = np_["spec"]
    pod_labels = deployment(production_values())["spec"]["template"]["metadata"]["labels"]
    check(spec["podSelector"]["matchLabels"].items() <= pod_labels.items(), "the policy must select the nodes")
    check(spec["policyTypes"] == ["Ingress", "Egress"], f"policyTypes are {spec['policyTypes']}")
    rules = {r["ports"][0]["port"]: r for r in spec["ingress"]}
    check(set(rules) == {"ws", "metrics"}, f"ingress rules are for ports {sorted(rules)}")
    check("from" not in rules["ws"], "with clientFrom empty, clients come from anywhere")
    check(rules["metrics"]["from"] == production_values()["networkPolicy"]["metricsFrom"],
          f"metrics only from networkPolicy.metricsFrom: {rules['metrics']}")
    egress = spec["egress"]
    ports = [(p.get("port"), p.get("protocol")) for r in egress for p in r.get("ports", [])]
    check((53, "UDP") in ports and (53, "TCP") in ports, f"DNS must be allowed: {ports}")
    check((6380, "TCP") in ports and (443, "TCP") in ports, f"Redis and the webhooks must be allowed: {ports}")
    check({"ipBlock": {"cidr": "10.20.0.0/16"}} in [p for r in egress for p in r.get("to", [])], "Redis peers")
    # clientFrom: the listed peers and the helm test pod.
    restricted = one(render({"networkPolicy": {"enabled": True, "clientFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]}}), "NetworkPolicy")
    ws = restricted["spec"]["ingress"][0]
    test_pod = one(render({}), "Pod")
    peers = ws["from"]
    check(len(peers) == 2 and peers[1]["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items(),
          f"the helm test pod must stay allowed: {peers}")
    check("Egress" not in restricted["spec"]["policyTypes"] and len(restricted["spec"]["ingress"]) == 1,
          f"egress unrestricted, metrics closed by default: {restricted['spec']}")
    bundled = one(render(dict(copy.deepcopy(CLUSTER_VALUES), networkPolicy={"enabled": True, "egress": {"enabled": True}})),
                  "NetworkPolicy")
    redis_labels = one(render(CLUSTER_VALUES), "Deployment", f"{FULLNAME}-redis")["spec"]["template"]["metadata"]["labels"]
    check(any(p.get("podSelector", {}).get("matchLabels", {}).items() <= redis_labels.items()
              for r in bundled["spec"]["egress"] for p in r.get("to", []) if "podSelector" in p and "namespaceSelector" not in p),
          "the bundled Redis must be reachable")
    check(not find(render({}), "NetworkPolicy"), "the NetworkPolicy must be off by default")


# ----------------------------------------------------------------------------------------------
# helm test


def busybox_path(tmp: str) -> str:
    """A PATH of busybox applets only: the tools of the busybox image the test pod runs."""
    busybox = subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True, text=True).stdout.strip()
    check(busybox, "busybox is missing (Debian: apt-get install busybox; `make test-helm` installs it)")
    for applet in ("sh", "nc", "timeout", "grep", "printf", "sleep", "echo", "["):
        os.symlink(busybox, Path(tmp) / applet)
    return tmp


def test_helm_test_pod():
    docs = render(production_values())
    pod = one(docs, "Pod", f"{FULLNAME}-test-websocket")
    annotations = pod["metadata"]["annotations"]
    check(annotations.get("helm.sh/hook") == "test", f"the test pod needs helm.sh/hook: test, has {annotations}")
    check(pod["spec"]["restartPolicy"] == "Never", "a test pod must not restart")
    svc = one(docs, "Service", FULLNAME)
    check(not svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items(),
          "the Service must not select the test pod")
    c = pod["spec"]["containers"][0]
    env = env_of(c)
    check(env["FERROCAST_HOST"]["value"] == f"{FULLNAME}.{NAMESPACE}.svc" and env["FERROCAST_PORT"]["value"] == "6001",
          f"the test must connect to the client Service: {env}")
    check(env["FERROCAST_APP_KEY"]["value"] == "chat-key", f"the first app's key: {env['FERROCAST_APP_KEY']}")
    check(c["command"][:2] == ["sh", "-c"] and c["command"][2].strip() == HELM_TEST_SCRIPT.read_text().strip(),
          "the test pod must run files/helm-test-websocket.sh")
    sc = c["securityContext"]
    check(sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, f"securityContext {sc}")
    disabled = {"config": {"apps": [{"id": "off", "key": "off-key", "secret": "x", "enabled": False},
                                    {"id": "on", "key": "on-key", "secret": "y"}]}}
    check(env_of(one(render(disabled), "Pod")["spec"]["containers"][0])["FERROCAST_APP_KEY"]["value"] == "on-key",
          "the test must use the first enabled app")
    check(not find(render({"tests": {"enabled": False}}), "Pod"), "tests.enabled=false removes the test pod")


def run_helm_test_script(pod: dict, port: int) -> subprocess.CompletedProcess:
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    env.update(FERROCAST_HOST="127.0.0.1", FERROCAST_PORT=str(port))
    with tempfile.TemporaryDirectory() as tmp:
        path = busybox_path(tmp)
        return subprocess.run([str(Path(path) / "sh"), "-c", c["command"][2]], env=dict(env, PATH=path),
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_helm_test_command_passes_against_the_release_binary():
    """The test pod's command, run by busybox against the release binary on the rendered config:
    it passes on a live node and fails for an unknown app key (the node closes with 4001) and
    when nothing listens."""
    values = {"config": {"server": {"shutdown_grace_s": 2}, "apps": [
        {"id": "t", "key": "helm-test-key", "existingSecret": {"name": "s", "key": "t"}, "max_connections": 2}]},
        "lifecycle": {"preStopSleepSeconds": 0}}
    pod = one(render(values), "Pod")
    results = {}

    def exercise(port: int, metrics_port: int) -> None:
        # First the connection quota (the alerts' limit="max_connections"): a third socket is refused.
        held = [WebSocket(port, "helm-test-key") for _ in range(2)]
        for ws in held:
            ws.message()
        third = WebSocket(port, "helm-test-key")
        refused = third.close_code(timeout=5)
        check(refused == 4004, f"a connection over max_connections was closed with {refused}, expected 4004")
        third.sock.close()
        _, text = http(f"http://127.0.0.1:{metrics_port}/metrics")
        samples = metric_samples(text, "ferrocast_limit_rejections_total")
        check({"app_id": "t", "limit": "max_connections"} in samples,
              f"ferrocast_limit_rejections_total has {samples}, expected app_id t, limit max_connections")
        check(all(set(s) == LIMIT_COUNTERS["ferrocast_limit_rejections_total"] for s in samples),
              f"ferrocast_limit_rejections_total labels are {samples}")
        for ws in held:
            ws.close()
        time.sleep(0.5)  # the closes are counted before the script's connection
        results["ok"] = run_helm_test_script(pod, port)
        wrong = copy.deepcopy(pod)
        for e in wrong["spec"]["containers"][0]["env"]:
            if e["name"] == "FERROCAST_APP_KEY":
                e["value"] = "no-such-key"
        results["wrong-key"] = run_helm_test_script(wrong, port)

    run_rendered(values, exercise=exercise)
    ok = results["ok"]
    check(ok.returncode == 0 and "pusher:connection_established" in ok.stdout,
          f"the helm test command failed against a live node (exit {ok.returncode}): {ok.stdout} {ok.stderr}")
    bad = results["wrong-key"]
    check(bad.returncode != 0, f"the helm test command passed with an unknown app key: {bad.stdout}")
    down = run_helm_test_script(pod, free_port())
    check(down.returncode != 0, f"the helm test command passed with nothing listening: {down.stdout}")


def test_notes():
    default = notes({})
    check("DEMO CREDENTIALS" in default, "NOTES must warn about the demo credentials of the default values")
    check(f"kubectl -n {NAMESPACE} port-forward service/{FULLNAME} 6001:6001" in default, "NOTES must show the port-forward")
    check("memory backplane serves one node" in default, "NOTES must say the default is a single node")
    prod = notes(production_values())
    check("DEMO" not in prod, "NOTES must not warn about demo credentials with existingSecret")
    check("wss://ws.example.com/app/<app-key>" in prod, "NOTES must show the ingress URL")
    check("DEMO" not in notes(copy.deepcopy(RICH_VALUES)), "no demo warning for real apps")


# ----------------------------------------------------------------------------------------------
# ServiceMonitor and PrometheusRule (CRDs): the monitoring.coreos.com/v1 fields the chart uses.

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_META = {"type": "object", "required": ["name", "namespace"],
         "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}}},
         "additionalProperties": False}
_SELECTOR = {"type": "object", "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array"}}, "additionalProperties": False}
SERVICE_MONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"}, "metadata": _META,
        "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False, "properties": {
            "selector": _SELECTOR,
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "jobLabel": {"type": "string"},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "properties": {
                    "port": {"type": "string"}, "path": {"type": "string"}, "scheme": {"enum": ["http", "https"]},
                    "interval": {"type": "string", "pattern": DURATION},
                    "scrapeTimeout": {"type": "string", "pattern": DURATION},
                    "honorLabels": {"type": "boolean"},
                    "relabelings": {"type": "array", "items": {"type": "object"}},
                    "metricRelabelings": {"type": "array", "items": {"type": "object"}}}}}}}}}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"}, "metadata": _META,
        "spec": {"type": "object", "required": ["groups"], "additionalProperties": False, "properties": {
            "groups": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False, "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "rules": {"type": "array", "items": {
                        "type": "object", "required": ["expr"], "additionalProperties": False,
                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                        "properties": {
                            "alert": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                            "record": {"type": "string"},
                            "expr": {"type": "string", "minLength": 1},
                            "for": {"type": "string", "pattern": DURATION},
                            "keep_firing_for": {"type": "string", "pattern": DURATION},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}}}}}


RUNBOOK_BASE = "https://github.com/ferrocast/ferrocast/blob/main/docs/operations.md"


@functools.lru_cache(maxsize=1)
def runbook_anchors() -> set[str]:
    """GitHub anchors of the '#### Ferrocast...' headings of docs/operations.md."""
    text = (REPO / "docs" / "operations.md").read_text()
    return {m.lower() for m in re.findall(r"^#### (Ferrocast[A-Za-z0-9]+)\s*$", text, re.M)}


def endpoint_of(sm: dict) -> dict:
    return sm["spec"]["endpoints"][0]


def validate_crd(doc: dict, schema: dict) -> None:
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(strip(doc)), key=lambda e: list(e.path))
    check(not errors, f"{doc['kind']} is malformed:\n" + "\n".join(
        f"  {'.'.join(str(p) for p in e.path)}: {e.message}" for e in errors))


def test_service_monitor():
    docs = render(production_values())
    sm = one(docs, "ServiceMonitor", FULLNAME)
    validate_crd(sm, SERVICE_MONITOR_SCHEMA)
    svc = one(docs, "Service", METRICS_SERVICE)
    check(sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
          "the ServiceMonitor selector must match the metrics Service's labels")
    client = one(docs, "Service", FULLNAME)
    check(not sm["spec"]["selector"]["matchLabels"].items() <= client["metadata"]["labels"].items(),
          "the ServiceMonitor must not select the client Service")
    check(endpoint_of(sm).get("honorLabels") is False, "serviceMonitor.honorLabels must be rendered")
    values = production_values()["serviceMonitor"]
    check(endpoint_of(sm).get("relabelings") == values["relabelings"]
          and endpoint_of(sm).get("metricRelabelings") == values["metricRelabelings"],
          f"relabelings / metricRelabelings are not rendered as given: {endpoint_of(sm)}")
    honored = one(render({"serviceMonitor": {"enabled": True, "honorLabels": True}}), "ServiceMonitor")
    check(endpoint_of(honored)["honorLabels"] is True, "serviceMonitor.honorLabels true must be rendered")
    check(sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE], "the ServiceMonitor must look in the release namespace")
    endpoint = sm["spec"]["endpoints"][0]
    check(endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}, f"endpoint port {endpoint['port']} is not a Service port")
    check(endpoint["port"] == "metrics" and endpoint["path"] == "/metrics", f"endpoint is {endpoint}")
    check(sm["metadata"]["labels"].get("release") == "kube-prometheus-stack", "serviceMonitor.labels must reach it")
    check(not find(render({}), "ServiceMonitor"), "the ServiceMonitor must be off by default")


EXPECTED_ALERTS = {"FerrocastNodeNotReady", "FerrocastRedisUnreachable", "FerrocastWebhookFailures", "FerrocastSlowConsumers",
                   "FerrocastConnectionQuotaSaturated", "FerrocastLimitRejections", "FerrocastWebhookQueueGrowing",
                   "FerrocastRest5xx", "FerrocastMemoryNearLimit", "FerrocastNodesReaped"}
# Alerts that only make sense with Redis.
REDIS_ALERTS = {"FerrocastRedisUnreachable", "FerrocastNodesReaped"}
# Metrics of other exporters the alerts may use (kube-state-metrics, Prometheus itself).
FOREIGN_METRICS = {"up", "kube_pod_status_ready", "kube_pod_container_resource_limits"}


def alert_rules(values: dict) -> dict[str, dict]:
    rule = one(render(values), "PrometheusRule", FULLNAME)
    validate_crd(rule, PROMETHEUS_RULE_SCHEMA)
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


def test_prometheus_rule():
    alerts = alert_rules(production_values())
    check(set(alerts) == EXPECTED_ALERTS, f"alerts are {sorted(alerts)}, expected {sorted(EXPECTED_ALERTS)}")
    exposed = exposed_metrics()
    for name, rule in alerts.items():
        for key in ("summary", "description"):
            check(rule.get("annotations", {}).get(key), f"{name} needs annotation {key}")
        check(rule.get("labels", {}).get("severity") in ("warning", "critical"), f"{name} severity is {rule.get('labels')}")
        runbook = rule.get("annotations", {}).get("runbook_url", "")
        base = production_values()["prometheusRule"]["runbookBaseUrl"]
        check(runbook == f"{base}#{name.lower()}", f"{name}: runbook_url is {runbook!r}, expected {base}#{name.lower()}")
        check(name.lower() in runbook_anchors(), f"{name}: docs/operations.md has no heading #### {name} (its runbook)")
        selectors = check_promql(rule["expr"], f"alert {name}", exposed)
        ours = [s for s in selectors if s["name"].startswith("ferrocast_") or s["name"] == "up"]
        check(ours, f"{name} queries no ferrocast series")
        for s in ours:
            check(s["matchers"].get("namespace") == NAMESPACE and s["matchers"].get("job") == METRICS_SERVICE,
                  f"{name}: {s['name']} must select namespace={NAMESPACE!r} and job={METRICS_SERVICE!r} "
                  "(the metrics Service's name)")
    check(alerts["FerrocastRedisUnreachable"]["for"] == "1m", "FerrocastRedisUnreachable must fire after 1m")
    check("ferrocast_backplane_up" in alerts["FerrocastRedisUnreachable"]["expr"]
          and "== 0" in alerts["FerrocastRedisUnreachable"]["expr"], "RedisUnreachable: ferrocast_backplane_up == 0")
    check(alerts["FerrocastWebhookFailures"]["for"] == "10m", "FerrocastWebhookFailures must wait 10m")
    check("rate(ferrocast_webhook_failures_total" in alerts["FerrocastWebhookFailures"]["expr"], "webhook alert on the rate")
    check("sum by (namespace, job, app_id, reason)" in alerts["FerrocastWebhookFailures"]["expr"],
          "the webhook alert must say which app and which reason")
    check(alerts["FerrocastSlowConsumers"]["expr"].rstrip().endswith("> 1"), "slowConsumers.threshold must be the limit")
    check("kube_pod_status_ready" in alerts["FerrocastNodeNotReady"]["expr"], "NodeNotReady must use kube_pod_status_ready")
    check('limit="max_connections"' in alerts["FerrocastConnectionQuotaSaturated"]["expr"]
          and 'limit!="max_connections"' in alerts["FerrocastLimitRejections"]["expr"],
          "the quota alert and the limits alert must split ferrocast_limit_rejections_total by limit")
    check("ferrocast_webhook_oldest_job_age_seconds" in alerts["FerrocastWebhookQueueGrowing"]["expr"]
          and "deriv(ferrocast_webhook_queue_depth" in alerts["FerrocastWebhookQueueGrowing"]["expr"],
          "the webhook queue alert must use the oldest job's age and the queue's growth")
    check('status=~"5.."' in alerts["FerrocastRest5xx"]["expr"], "the REST alert counts 5xx")
    check("ferrocast_process_resident_memory_bytes" in alerts["FerrocastMemoryNearLimit"]["expr"]
          and 'resource="memory"' in alerts["FerrocastMemoryNearLimit"]["expr"]
          and alerts["FerrocastMemoryNearLimit"]["expr"].rstrip().endswith("> 0.9"), "memory vs its limit, 90%")
    check("increase(ferrocast_node_reaped_total" in alerts["FerrocastNodesReaped"]["expr"], "reaped nodes")
    check(alerts["FerrocastRest5xx"]["expr"].rstrip().endswith("> 0.02"), "rest5xx.ratio must be the limit")
    other = alert_rules({"prometheusRule": {"enabled": True, "runbookBaseUrl": "https://docs.example.com/ops/"},
                         "config": {"backplane": {"driver": "redis"}}, "redis": {"url": "redis://r:6379"}})
    check(other["FerrocastRest5xx"]["annotations"]["runbook_url"] == "https://docs.example.com/ops#ferrocastrest5xx",
          f"prometheusRule.runbookBaseUrl must be the base: {other['FerrocastRest5xx']['annotations']}")
    default = alert_rules({"prometheusRule": {"enabled": True}})
    check(all(r["annotations"]["runbook_url"].startswith(RUNBOOK_BASE + "#") for r in default.values()),
          "the default runbook base is this repository's docs/operations.md")
    # A single node on the memory backplane has no Redis to lose.
    memory = alert_rules({"prometheusRule": {"enabled": True}})
    check(not REDIS_ALERTS & set(memory), "no Redis alert on the memory backplane")
    check(set(memory) == EXPECTED_ALERTS - REDIS_ALERTS, f"memory backplane alerts: {sorted(memory)}")
    check(not find(render({}), "PrometheusRule"), "the PrometheusRule must be off by default")


# ----------------------------------------------------------------------------------------------
# PromQL


def substitute_grafana_variables(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def known_labels(name: str, exposed: dict[str, set[str]]) -> set[str] | None:
    """The labels of a ferrocast metric as scraped; None if the binary does not expose it."""
    return exposed.get(name)


def check_promql(expr: str, where: str, exposed: dict[str, set[str]]) -> list[dict]:
    """Parse `expr`, check every ferrocast metric and label it uses; returns its selectors."""
    try:
        ast = promql_parser.parse(expr)
    except ValueError as e:
        fail(f"{where}: invalid PromQL {expr!r}: {e}")
    selectors: list[dict] = []
    grouped: list[tuple[list[str], list[dict]]] = []

    def collect(node) -> list[dict]:
        found: list[dict] = []

        def visit(n):
            if isinstance(n, promql_parser.MatrixSelector):
                n = n.vector_selector
            if isinstance(n, promql_parser.VectorSelector):
                found.append({"name": n.name, "matchers": {m.name: m.value for m in n.matchers.matchers}})
            return True

        promql_parser.walk(node, pre_visit=visit)
        return found

    def visit_all(n):
        if isinstance(n, promql_parser.AggregateExpr) and n.modifier is not None:
            grouped.append((list(n.modifier.labels), collect(n.expr)))
        return True

    selectors = collect(ast)
    promql_parser.walk(ast, pre_visit=visit_all)
    seen: set[tuple] = set()
    unique = []
    for s in selectors:
        key = (s["name"], tuple(sorted(s["matchers"].items())))
        if key not in seen:
            seen.add(key)
            unique.append(s)
    for s in unique:
        name = s["name"]
        check(name, f"{where}: a selector without a metric name in {expr!r}")
        if not name.startswith("ferrocast_"):
            check(name in FOREIGN_METRICS, f"{where}: unexpected foreign metric {name}")
            continue
        known = known_labels(name, exposed)
        check(known is not None, f"{where}: {name} is not exposed by the server ({sorted(exposed)})")
        unknown = set(s["matchers"]) - known - TARGET_LABELS
        check(not unknown, f"{where}: {name} has no label {sorted(unknown)} (it has {sorted(known)})")
    for labels, inside in grouped:
        names = {s["name"] for s in inside}
        if any(known_labels(n, exposed) is None for n in names):
            continue  # a foreign metric (up, kube_pod_status_ready): its labels are not known here
        available = set().union(*(known_labels(n, exposed) for n in names)) | TARGET_LABELS
        unknown = set(labels) - available
        check(not unknown, f"{where}: grouping by {sorted(unknown)}, which {sorted(names)} do not have")
    return unique


# ----------------------------------------------------------------------------------------------
# The rendered config on the real binary


def binary() -> Path:
    path = Path(os.environ.get("FERROCAST_BIN", REPO / "target" / "release" / "ferrocast")).resolve()
    check(path.is_file() and os.access(path, os.X_OK), f"{path} is missing: build it first (`make build`; `make test-helm` does)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None, ""


def signed_get(port: int, app: dict, path_tail: str = "channels") -> tuple[int | None, str]:
    """A REST GET signed like the Pusher server SDKs do."""
    path = f"/apps/{app['id']}/{path_tail}"
    params = {"auth_key": app["key"], "auth_timestamp": str(int(time.time())), "auth_version": "1.0"}
    to_sign = "GET\n" + path + "\n" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["auth_signature"] = hmac.new(app["secret"].encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return http(f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}")


class WebSocket:
    """A minimal WebSocket client (RFC 6455): enough to connect, read frames and close."""

    def __init__(self, port: int, key: str, origin: str | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /app/{urllib.parse.quote(key)}?protocol=7&client=check-helm&version=1.0 HTTP/1.1\r\n"
             f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
             + (f"Origin: {origin}\r\n" if origin else "") + "\r\n").encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            check(chunk, "the node closed the WebSocket handshake")
            data += chunk
        head, _, self.rest = data.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 101"), f"WebSocket upgrade refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self.rest) < n:
            chunk = self.sock.recv(4096)
            check(chunk, "the node closed the TCP connection without a WebSocket close frame")
            self.rest += chunk
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload)."""
        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        return b0 & 0x0F, self._read(length)

    def message(self) -> dict:
        opcode, payload = self.frame()
        check(opcode == 1, f"expected a text frame, got opcode {opcode} {payload[:100]!r}")
        return json.loads(payload)

    def close_code(self, timeout: float) -> int:
        """Wait for the server's close frame (answering pings) and return its code."""
        self.sock.settimeout(timeout)
        while True:
            opcode, payload = self.frame()
            if opcode == 8:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if opcode == 9:
                self.send(10, payload)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
                          + bytes(p ^ mask[i % 4] for i, p in enumerate(payload)))

    def close(self) -> None:
        try:
            self.send(8, (1000).to_bytes(2, "big"))
            self.sock.recv(64)
        except OSError:
            pass
        self.sock.close()


def parse_metrics(text: str) -> dict[str, set[str]]:
    metrics: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        check(m, f"unparseable metrics line {line!r}")
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        metrics.setdefault(m.group(1), set()).update(labels)
    return metrics


def stand_in_secret(name: str, key: str) -> str:
    """What the kubelet would read from key `key` of Secret `name` (a stand-in, per key)."""
    return f"stand-in {name}/{key} \"secret\" é"


def pod_environment(c: dict, pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet would set it (secret refs: stand-ins, the
    Redis URL a loopback one)."""
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = pod_name
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = ("redis://127.0.0.1:6379" if e["name"] == "FERROCAST_BACKPLANE__URL"
                              else stand_in_secret(ref["name"], ref["key"]))
        else:
            fail(f"env {e['name']}: unexpected source {e}")
    return env


def expected_apps(values: dict) -> list[dict]:
    """config.apps as the rendered [[apps]] must read: existingSecret becomes secret_env."""
    apps = copy.deepcopy(merged(values)["config"]["apps"])
    for i, app in enumerate(apps):
        if "existingSecret" in app:
            del app["existingSecret"]
            app["secret_env"] = f"FERROCAST_APP_SECRET_{i}"
    return apps


def apps_with_secrets(values: dict, pod_env: dict[str, str]) -> list[dict]:
    """The apps with the secrets the node will use (secret_env resolved from the pod's env)."""
    apps = expected_apps(values)
    for app in apps:
        if "secret_env" in app:
            app["secret"] = pod_env[app["secret_env"]]
    return apps


def run_node(config: Path, pod_env: dict[str, str], apps: list[dict], budget: int,
             hold_socket: bool = False,
             exercise: Callable[[int, int], None] | None = None) -> dict[str, set[str]]:
    """Run the release binary like the pod does; returns the metrics it exposed.

    `budget`: the seconds the pod leaves between SIGTERM and SIGKILL. With `hold_socket`, one
    WebSocket stays open through SIGTERM and must be closed with 4200 by the drain. `exercise`,
    given the WebSocket / REST port and the metrics port, runs once every app has been checked,
    before the scrape and SIGTERM.
    """
    grace = int(pod_env["FERROCAST_SERVER__SHUTDOWN_GRACE_S"])
    base_env = {k: v for k, v in os.environ.items() if not (k.startswith("FERROCAST_") and "__" in k)}
    for attempt in range(3):
        port, metrics_port = free_port(), free_port()
        if port == metrics_port:
            continue
        env = dict(base_env, **pod_env)
        env.update(
            # No Redis and no pod network here; everything else is the pod's.
            FERROCAST_BACKPLANE__DRIVER="memory",
            FERROCAST_SERVER__HOST="127.0.0.1",
            FERROCAST_SERVER__PORT=str(port),
            FERROCAST_SERVER__METRICS_PORT=str(metrics_port),
        )
        with tempfile.TemporaryFile(mode="w+") as log:
            process = subprocess.Popen([str(binary()), "--config", str(config)], cwd=REPO, env=env,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

            def output() -> str:
                log.seek(0)
                return log.read().strip()

            try:
                deadline = time.monotonic() + 20
                ready = False
                while time.monotonic() < deadline and process.poll() is None:
                    if http(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                        ready = True
                        break
                    time.sleep(0.1)
                if not ready:
                    if process.poll() is None:
                        fail(f"the node did not answer 200 on /readyz within 20 s; output:\n{output()}")
                    text = output()
                    if process.returncode == 1 and "address already in use" in text.lower() and attempt < 2:
                        continue
                    fail(f"the node refused the rendered config (exit {process.returncode}):\n{text}")
                check(http(f"http://127.0.0.1:{port}/healthz")[0] == 200, "/healthz did not answer 200")
                held = None
                for app in apps:
                    status, body = signed_get(port, app)
                    expected = 200 if app.get("enabled", True) else 403
                    check(status == expected,
                          f"app {app['id']}: signed GET /channels answered {status} {body!r}, expected {expected}: "
                          "the secret did not survive the TOML rendering")
                    if app.get("enabled", True):
                        origins = [o for o in app.get("allowed_origins", []) if "*" not in o]
                        ws = WebSocket(port, app["key"], origins[0] if origins else None)
                        message = ws.message()
                        check(message.get("event") == "pusher:connection_established",
                              f"app {app['id']}: first WebSocket message is {message}")
                        if hold_socket and held is None:
                            held = ws  # stays open through SIGTERM
                        else:
                            ws.close()
                if exercise is not None:
                    exercise(port, metrics_port)
                time.sleep(0.3)  # let the closes be counted
                status, text = http(f"http://127.0.0.1:{metrics_port}/metrics")
                check(status == 200, f"/metrics answered {status}")
                metrics = parse_metrics(text)
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                if held is not None:
                    # The drain closes open sockets with 4200 within shutdown_grace_s.
                    close = held.close_code(timeout=grace + 5)
                    held.sock.close()
                    check(close == 4200, f"a socket open at SIGTERM was closed with {close}, expected 4200")
                try:
                    code = process.wait(timeout=budget)
                except subprocess.TimeoutExpired:
                    fail(f"the node was still running {budget} s after SIGTERM, when Kubernetes would kill it "
                         f"(terminationGracePeriodSeconds minus the preStop sleep); output:\n{output()}")
                took = time.monotonic() - started
                check(code == 0, f"the node exited with {code} after SIGTERM, expected 0; output:\n{output()}")
                check(took < budget, f"the drain took {took:.1f} s, more than the pod's {budget} s")
                return metrics
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    fail("could not find two free ports for the node after 3 attempts")


def run_rendered(values: dict, exercise: Callable[[int, int], None] | None = None) -> dict[str, set[str]]:
    toml_text = rendered_toml(values)
    try:
        parsed = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        fail(f"the rendered ferrocast.toml is not TOML: {e}\n{toml_text}")
    merged_values = merged(values)
    apps = expected_apps(values)
    check(parsed["apps"] == apps, f"the rendered [[apps]] differ from the values:\n{parsed['apps']}\n!=\n{apps}")
    webhooks = merged_values["config"]["webhooks"]
    check(parsed.get("webhooks") == webhooks,
          f"the rendered [webhooks] differ from the values: {parsed.get('webhooks')} != {webhooks}")
    c = container(values)
    pod = deployment(values)["spec"]["template"]["spec"]
    pre_stop_exec = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {"command": ["sleep", "0"]}
    pre_stop = int(pre_stop_exec["command"][1])
    budget = pod["terminationGracePeriodSeconds"] - pre_stop
    pod_env = pod_environment(c, "ferrocast-7d9f8b6c5d-x2kqp")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ferrocast.toml"
        config.write_text(toml_text)
        # A socket held through the drain, where the drain is short enough for a test.
        short = int(pod_env["FERROCAST_SERVER__SHUTDOWN_GRACE_S"]) <= 5
        return run_node(config, pod_env, apps_with_secrets(values, pod_env), budget, hold_socket=short,
                        exercise=exercise)


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh TCP connection to the node and return what it answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)


def check_proxy_protocol_port(port: int) -> None:
    """A request behind a PROXY v1 header is answered; one without it is not."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    proxied = raw_exchange(port, b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 6001\r\n" + request)
    check(proxied.startswith(b"HTTP/1.1 200"),
          f"with proxy_protocol, a request behind a PROXY header was answered {proxied[:80]!r}")
    bare = raw_exchange(port, request)
    check(not bare.startswith(b"HTTP/1.1 200"),
          f"with proxy_protocol, a request without a PROXY header was answered {bare[:80]!r}")


def accepted_by_binary(values: dict, check_port: Callable[[int], None] = check_proxy_protocol_port,
                       files: dict[str, bytes] | None = None) -> None:
    """The release binary starts on the rendered config (the pod's probes use the metrics port):
    ready on the metrics port, `check_port` passes on the client port, SIGTERM ends it with exit
    0. `files`: pod path -> content, written to a temporary directory and the rendered config's
    paths pointed there."""
    toml_text = rendered_toml(values)
    pod_env = pod_environment(container(values), "ferrocast-7d9f8b6c5d-x2kqp")
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not (k.startswith("FERROCAST_") and "__" in k)}
    env.update(pod_env, FERROCAST_BACKPLANE__DRIVER="memory", FERROCAST_SERVER__HOST="127.0.0.1",
               FERROCAST_SERVER__PORT=str(port), FERROCAST_SERVER__METRICS_PORT=str(metrics_port))
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile(mode="w+") as log:
        for i, (path, content) in enumerate((files or {}).items()):
            local = Path(tmp) / f"file-{i}"
            local.write_bytes(content)
            check(json.dumps(path) in toml_text, f"the rendered config does not name {path}:\n{toml_text}")
            toml_text = toml_text.replace(json.dumps(path), json.dumps(str(local)))
        config = Path(tmp) / "ferrocast.toml"
        config.write_text(toml_text)
        process = subprocess.Popen([str(binary()), "--config", str(config)], cwd=REPO, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while http(f"http://127.0.0.1:{metrics_port}/readyz")[0] != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    fail(f"the node did not become ready on the rendered config (exit {process.poll()}):\n{log.read()}")
                time.sleep(0.1)
            check_port(port)
            process.send_signal(signal.SIGTERM)
            check(process.wait(timeout=30) == 0, f"the node exited {process.returncode} on SIGTERM")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


# The scrape the dashboard and the alerts are checked against: the default config with a webhook
# on the demo app, since the webhook gauge and histogram are exposed once an app has one. Nothing
# subscribes to a channel in that run, so the webhook (a loopback port nothing listens on) is
# never called.
SCRAPE_VALUES = {"config": {"apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret",
                                      "webhooks": [{"url": "http://127.0.0.1:9/never-called"}]}]}}


@functools.lru_cache(maxsize=1)
def exposed_metrics() -> dict[str, set[str]]:
    """Metric name -> label names, scraped from the binary running SCRAPE_VALUES."""
    metrics = run_rendered(copy.deepcopy(SCRAPE_VALUES))
    missing = DOCUMENTED - set(metrics)
    check(not missing, f"the server no longer exposes {sorted(missing)}: update the dashboard, alerts and this list")
    check(metrics["ferrocast_webhook_queue_depth"] == {"app_id"},
          f"ferrocast_webhook_queue_depth has labels {sorted(metrics['ferrocast_webhook_queue_depth'])}, expected app_id")
    check(metrics["ferrocast_webhook_request_duration_seconds_bucket"] == {"le"},
          "ferrocast_webhook_request_duration_seconds must have no label but le")
    for name, labels in FROM_START.items():
        check(metrics.get(name) == labels,
              f"{name} has labels {sorted(metrics.get(name, []))} before any webhook, FROM_START declares {sorted(labels)}")
    return metrics


def test_node_tls_from_existing_secret_runs_on_the_release_binary():
    """tls.existingSecret: the Secret's tls.crt / tls.key rendered as tls_cert / tls_key; the
    release binary serves TLS on the client port with them, and nothing in plain text."""
    import ssl

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"], check=True, capture_output=True)
        files = {"/etc/ferrocast/tls/tls.crt": Path(f"{tmp}/cert.pem").read_bytes(),
                 "/etc/ferrocast/tls/tls.key": Path(f"{tmp}/key.pem").read_bytes()}

    def check_tls(port: int) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
        check(answer.startswith(b"HTTP/1.1 200"), f"GET /healthz over TLS answered {answer[:80]!r}")
        plain = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check(not plain.startswith(b"HTTP/1.1 200"), f"with TLS, a plain-text request was answered {plain[:80]!r}")

    accepted_by_binary({"tls": {"existingSecret": "ferrocast-node-tls"}, "config": {"server": {"shutdown_grace_s": 2}}},
                       check_port=check_tls, files=files)


def test_tls_existing_secret_renders_mount_and_paths():
    values = {"tls": {"existingSecret": "ferrocast-node-tls"}}
    server = server_section(values)
    check(server.get("tls_cert") == "/etc/ferrocast/tls/tls.crt" and server.get("tls_key") == "/etc/ferrocast/tls/tls.key",
          f"tls.existingSecret must render tls_cert / tls_key: {server}")
    check("tls_cert" not in server_section({}), "no TLS by default")
    pod = deployment(values)["spec"]["template"]["spec"]
    volume = pod["volumes"][0]
    sources = volume.get("projected", {}).get("sources", [])
    check([s["secret"]["name"] for s in sources] == [FULLNAME, "ferrocast-node-tls"], f"config volume is {volume}")
    check(sources[1]["secret"]["items"] == [{"key": "tls.crt", "path": "tls/tls.crt"}, {"key": "tls.key", "path": "tls/tls.key"}],
          f"TLS items are {sources[1]}")
    check(volume["projected"]["defaultMode"] == 0o440, f"TLS files must be readable by the group only: {volume}")
    mount = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}["/etc/ferrocast"]
    check(mount.get("readOnly") is True and not mount.get("subPath"), f"mount is {mount} (no subPath: renewals must show)")
    svc = one(render(values), "Service", FULLNAME)
    check({p["name"]: p["appProtocol"] for p in svc["spec"]["ports"]} == {"ws": "https"},
          f"Service appProtocols are {svc['spec']['ports']}")
    msvc = one(render(values), "Service", METRICS_SERVICE)
    check({p["name"]: p["appProtocol"] for p in msvc["spec"]["ports"]} == {"metrics": "http"},
          f"the metrics port stays plain: {msvc['spec']['ports']}")
    check(not find(render(values), "Pod"), "the helm test (plain nc) must not be rendered when the client port is TLS")
    # With the operator's own file: the paths come from the environment.
    env = env_of(container(dict(copy.deepcopy(WHOLE_CONFIG_SECRET_VALUES), tls={"existingSecret": "ferrocast-node-tls"})))
    check(env.get("FERROCAST_SERVER__TLS_CERT", {}).get("value") == "/etc/ferrocast/tls/tls.crt"
          and env.get("FERROCAST_SERVER__TLS_KEY", {}).get("value") == "/etc/ferrocast/tls/tls.key",
          f"with existingSecret, the TLS paths must be set from the environment: {sorted(env)}")
    check("FERROCAST_SERVER__TLS_CERT" not in env_of(container(values)), "the rendered file has the paths: no env")
    message = render_error({"tls": {"existingSecret": "x"},
                            "config": {"server": {"tls_cert": "/a.pem", "tls_key": "/b.pem"}}})
    check("tls.existingSecret" in message and "not both" in message, message)


@pytest.mark.parametrize("value_set", ["default", "webhook-scrape", "rich-config", "bundled-redis-cluster",
                                       "edge-config", "ingress-proxy-hops", "proxy-protocol", "redis-cluster-driver"])
def test_rendered_config_runs_on_the_release_binary(value_set):
    if value_set == "default":
        run_rendered({})
    elif value_set == "webhook-scrape":
        exposed_metrics()
    elif value_set == "ingress-proxy-hops":
        # The trusted_proxy_hops = 1 the chart adds behind the Ingress.
        run_rendered({"ingress": {"enabled": True}, "config": {"server": {"shutdown_grace_s": 2}},
                      "lifecycle": {"preStopSleepSeconds": 0}})
    elif value_set == "proxy-protocol":
        # Rendered and parsed only up to readiness would need a PROXY-speaking client: the binary
        # must at least accept the file (it exits 2 on a bad [server] section).
        accepted_by_binary({"ingress": {"enabled": True},
                            "config": {"server": {"proxy_protocol": True, "shutdown_grace_s": 2}}})
    elif value_set == "redis-cluster-driver":
        # `check-config` runs every check of a start without connecting (no Redis Cluster here):
        # the seeds, the driver and the buckets must pass the binary's validation.
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "ferrocast.toml"
            config.write_text(rendered_toml(VALUE_SETS[value_set]()))
            env = {k: v for k, v in os.environ.items() if not (k.startswith("FERROCAST_") and "__" in k)}
            done = subprocess.run([str(binary()), "check-config", str(config)], env=env, cwd=REPO,
                                  capture_output=True, text=True, timeout=30)
            check(done.returncode == 0, f"check-config refused the redis-cluster config:\n{done.stdout}{done.stderr}")
    else:
        run_rendered(VALUE_SETS[value_set]())


def test_production_config_with_app_secrets_from_secrets_runs_on_the_binary():
    """The production values: the chart-managed ferrocast.toml with secret_env for every app, and
    the pod's environment with each app's secret (secretKeyRef) and the Redis URL from Secrets.
    The release binary starts on them, and every app's secret (the Secret's, not the file's)
    signs a REST call and connects a WebSocket; without the variables it refuses to start."""
    values = production_values()
    toml = tomllib.loads(rendered_toml(values))
    check(all("secret" not in app and app.get("secret_env") for app in toml["apps"]),
          f"production apps must carry secret_env and no secret: {toml['apps']}")
    env = env_of(container(values))
    for i, app in enumerate(values["config"]["apps"]):
        name = toml["apps"][i]["secret_env"]
        check(env.get(name, {}).get("valueFrom", {}).get("secretKeyRef") == app["existingSecret"],
              f"apps[{i}]: {name} must come from the Secret {app['existingSecret']}, is {env.get(name)}")
    url = env.get("FERROCAST_BACKPLANE__URL", {})
    check(url.get("valueFrom", {}).get("secretKeyRef") == {"name": "ferrocast-redis", "key": "url"},
          f"FERROCAST_BACKPLANE__URL must come from redis.urlSecret with the chart-managed config, is {url}")
    check("url" not in toml["backplane"], "the Redis URL (with its password) must not be in the config Secret")
    run_rendered(values)
    # The same file without the variables: exit 2 naming the key.
    pod_env = pod_environment(container(values), "ferrocast-7d9f8b6c5d-x2kqp")
    missing = toml["apps"][0]["secret_env"]
    del pod_env[missing]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ferrocast.toml"
        config.write_text(rendered_toml(values))
        base = {k: v for k, v in os.environ.items() if not (k.startswith("FERROCAST_") and "__" in k)}
        done = subprocess.run([str(binary()), "--config", str(config)], env=dict(base, **pod_env),
                              capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    check(done.returncode == 2 and "apps[0].secret_env" in done.stderr and missing in done.stderr,
          f"without {missing} the node must exit 2 naming apps[0].secret_env; it exited {done.returncode}: "
          f"{done.stderr.strip()[:500]}")


def test_whole_config_secret_pod_environment_is_accepted_by_the_binary():
    """existingSecret: the chart renders no file, but the pod's variables must be valid keys."""
    values = copy.deepcopy(WHOLE_CONFIG_SECRET_VALUES)
    values["config"]["server"] = {"shutdown_grace_s": 30}
    pod_env = pod_environment(container(values), "ferrocast-7d9f8b6c5d-x2kqp")
    check(pod_env["FERROCAST_SERVER__SHUTDOWN_GRACE_S"] == "30", "the values drain for 30 s")
    # Stand-in for the operator's Secret: the chart's own rendering of one demo app.
    stand_in = {"config": {"server": {"shutdown_grace_s": 1}}}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ferrocast.toml"
        config.write_text(rendered_toml(stand_in))
        pod_env["FERROCAST_SERVER__SHUTDOWN_GRACE_S"] = "2"  # keep the run short; the keys are what is checked
        leave = -(-int(pod_env["FERROCAST_WEBHOOKS__LEAVE_DELAY_MS"]) // 1000)
        budget = 2 + leave + int(pod_env["FERROCAST_WEBHOOKS__FLUSH_TIMEOUT_S"]) + 10
        run_node(config, pod_env, merged(stand_in)["config"]["apps"], budget, hold_socket=True)


# ----------------------------------------------------------------------------------------------
# Webhooks delivered by the release binary, to receivers on loopback


class WebhookReceiver:
    """Webhook endpoints on 127.0.0.1: /ok answers 200, any other path 500. Records every request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"method": self.command, "path": self.path, "at": time.monotonic(),
                                              "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body})
                self.send_response(200 if self.path == "/ok" else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = handle_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self, path: str) -> list[dict]:
        """The requests to `path` so far, each with `events` (its body's, [] when unreadable)."""
        with self.lock:
            requests = [dict(r) for r in self.requests if r["path"] == path]
        for r in requests:
            try:
                r["json"] = json.loads(r["body"])
            except ValueError:
                r["json"] = None
            events = r["json"].get("events") if isinstance(r["json"], dict) else None
            r["events"] = events if isinstance(events, list) else []
        return requests

    def events(self, path: str, name: str, channel: str) -> list[tuple[float, dict]]:
        return [(r["at"], e) for r in self.received(path) for e in r["events"]
                if isinstance(e, dict) and e.get("name") == name and e.get("channel") == channel]

    def wait_for(self, path: str, name: str, channel: str, timeout: float = 10) -> float:
        """When the first `name` event of `channel` reached `path`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(path, name, channel)
            if found:
                return found[0][0]
            time.sleep(0.02)
        fail(f"no {name} webhook for {channel} reached {path} within {timeout} s; it received "
             f"{[(r['method'], r['json'] if r['json'] is not None else r['body'][:200]) for r in self.received(path)]}")


def ws_send_json(ws: WebSocket, message: dict) -> None:
    payload = json.dumps(message, separators=(",", ":")).encode()
    check(len(payload) < 126, "the test's WebSocket client only sends short frames")
    ws.send(1, payload)


def ws_subscribe(ws: WebSocket, *channels: str) -> None:
    """Subscribe to public channels (all requests first, then the answers)."""
    for channel in channels:
        ws_send_json(ws, {"event": "pusher:subscribe", "data": {"channel": channel}})
    for channel in channels:
        message = ws.message()
        check(message.get("event") == "pusher_internal:subscription_succeeded" and message.get("channel") == channel,
              f"subscribing to {channel}: got {message}")


def metric_samples(text: str, name: str) -> list[dict[str, str]]:
    """The label sets of the samples of `name` in a /metrics text."""
    samples = []
    for line in text.splitlines():
        m = re.match(rf"{re.escape(name)}(\{{([^}}]*)\}})?\s", line)
        if m:
            samples.append(dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
    return samples


def test_webhooks_are_delivered_by_the_release_binary():
    """[webhooks] and [[apps.webhooks]] from the chart, run: signed deliveries, the leave delay and
    its cancellation, the events filter, retries, expiry and the queue limit, and the webhook
    metrics with the labels the dashboard and the alerts rely on."""
    leave_ms = 300
    with WebhookReceiver() as receiver:
        values = {
            "config": {
                "server": {"shutdown_grace_s": 2},
                "webhooks": {"leave_delay_ms": leave_ms, "timeout_ms": 2000, "retry_backoff_ms": 100,
                             "retry_window_s": 1, "queue_capacity": 2, "max_batch_size": 2, "flush_timeout_s": 2},
                "apps": [
                    {"id": "hooked", "key": "hooked-key", "secret": TRICKY_SECRET,
                     "webhooks": [{"url": receiver.url("/ok")}]},
                    {"id": "failing", "key": "failing-key", "secret": "failing-secret", "enable_webhook_batching": True,
                     "webhooks": [{"url": receiver.url("/fail"), "events": ["channel_occupied"]}]},
                ],
            },
            "lifecycle": {"preStopSleepSeconds": 0},
        }
        hooked, failing = values["config"]["apps"]
        scraped: dict[str, str] = {}

        def exercise(port: int, metrics_port: int) -> None:
            ws = WebSocket(port, hooked["key"])
            ws.message()  # pusher:connection_established
            ws_subscribe(ws, "hook-test", "hook-flap")
            receiver.wait_for("/ok", "channel_occupied", "hook-test")
            receiver.wait_for("/ok", "channel_occupied", "hook-flap")
            # Leaving and coming back within the delay: neither is reported.
            ws_send_json(ws, {"event": "pusher:unsubscribe", "data": {"channel": "hook-flap"}})
            ws_subscribe(ws, "hook-flap")
            # Leaving for good: channel_vacated, no sooner than the delay.
            left = time.monotonic()
            ws_send_json(ws, {"event": "pusher:unsubscribe", "data": {"channel": "hook-test"}})
            vacated = receiver.wait_for("/ok", "channel_vacated", "hook-test")
            check(vacated - left >= leave_ms / 1000,
                  f"channel_vacated came {vacated - left:.3f} s after the last unsubscribe, "
                  f"before leave_delay_ms ({leave_ms}) was over")
            time.sleep(max(0.0, left + leave_ms / 1000 + 0.7 - time.monotonic()))  # the flap's delay is over too
            flap_occupied = len(receiver.events("/ok", "channel_occupied", "hook-flap"))
            flap_vacated = len(receiver.events("/ok", "channel_vacated", "hook-flap"))
            check(flap_occupied == 1 and flap_vacated == 0,
                  f"a subscriber back within leave_delay_ms must cancel the leave and the return: hook-flap got "
                  f"{flap_occupied} channel_occupied and {flap_vacated} channel_vacated, expected 1 and 0")
            ws.close()
            # The failing endpoint: retried, then expired after retry_window_s; a burst beyond
            # queue_capacity is dropped.
            fws = WebSocket(port, failing["key"])
            fws.message()
            ws_subscribe(fws, *(f"burst-{i}" for i in range(10)))
            wanted = {
                "ferrocast_webhook_deliveries_total": {"app_id": "hooked"},
                "ferrocast_webhook_events_total": {"app_id": "hooked", "event": "channel_vacated"},
                "ferrocast_webhook_retries_total": {"app_id": "failing"},
                "ferrocast_webhook_failures_total": {"app_id": "failing", "reason": "expired"},
            }
            also = {"app_id": "failing", "reason": "queue_full"}
            deadline = time.monotonic() + 20
            text = ""
            while time.monotonic() < deadline:
                _, text = http(f"http://127.0.0.1:{metrics_port}/metrics")
                samples = {name: metric_samples(text, name) for name in wanted}
                missing = {name: labels for name, labels in wanted.items()
                           if not any(labels.items() <= s.items() for s in samples[name])}
                if not missing and any(also.items() <= s.items()
                                       for s in samples["ferrocast_webhook_failures_total"]):
                    break
                time.sleep(0.1)
            else:
                fail(f"the webhook metrics did not show a delivery, a retry, an expiry and a queue_full drop "
                     f"within 20 s; /metrics:\n" + "\n".join(line for line in text.splitlines() if "webhook" in line))
            scraped["text"] = text
            fws.close()

        metrics = run_rendered(values, exercise=exercise)

        for name, labels in FROM_START.items():
            check(metrics.get(name) == labels,
                  f"{name} has labels {sorted(metrics.get(name, []))}, FROM_START declares {sorted(labels)}")
        reasons = {s.get("reason") for s in metric_samples(scraped["text"], "ferrocast_webhook_failures_total")}
        check(reasons <= WEBHOOK_FAILURE_REASONS, f"unexpected failure reasons {sorted(reasons - WEBHOOK_FAILURE_REASONS)}")
        events = {s.get("event") for s in metric_samples(scraped["text"], "ferrocast_webhook_events_total")}
        check({"channel_occupied", "channel_vacated"} <= events, f"ferrocast_webhook_events_total events are {events}")

        ok, failed = receiver.received("/ok"), receiver.received("/fail")
        check(ok and failed, f"requests received: /ok {len(ok)}, /fail {len(failed)}")
        check(len(failed) >= 2, f"the failing endpoint got {len(failed)} request(s): a failed request must be retried")
        for path, requests, app in (("/ok", ok, hooked), ("/fail", failed, failing)):
            for r in requests:
                h = r["headers"]
                check(r["method"] == "POST", f"{path}: a webhook request was {r['method']}, expected POST")
                check(h.get("content-type") == "application/json",
                      f"{path}: Content-Type is {h.get('content-type')!r}, expected exactly application/json")
                check(h.get("x-pusher-key") == app["key"], f"{path}: X-Pusher-Key is {h.get('x-pusher-key')!r}")
                signature = hmac.new(app["secret"].encode(), r["body"], hashlib.sha256).hexdigest()
                check(h.get("x-pusher-signature") == signature,
                      f"{path}: X-Pusher-Signature {h.get('x-pusher-signature')!r} is not the HMAC-SHA256 of the body "
                      f"with app {app['id']}'s secret ({signature})")
                body = r["json"]
                check(isinstance(body, dict) and isinstance(body.get("time_ms"), int) and r["events"],
                      f"{path}: body is {r['body'][:300]!r}, expected {{\"time_ms\": ..., \"events\": [...]}}")
                check(abs(body["time_ms"] - time.time() * 1000) < 120_000, f"{path}: time_ms {body['time_ms']} is not now")
        check(all(len(r["events"]) == 1 for r in ok), "without enable_webhook_batching, one event per request")
        check(all(len(r["events"]) <= 2 for r in failed), "a batch must not exceed max_batch_size (2)")
        names = {e.get("name") for r in failed for e in r["events"]}
        check(names == {"channel_occupied"}, f"the events filter lets through {sorted(names)} to /fail")
        # In order, exactly once.
        test_events = [e["name"] for r in ok for e in r["events"] if e.get("channel") == "hook-test"]
        check(test_events == ["channel_occupied", "channel_vacated"],
              f"hook-test webhooks arrived as {test_events}, expected channel_occupied then channel_vacated, once each")


# ----------------------------------------------------------------------------------------------
# Grafana dashboard


def dashboard_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def test_grafana_dashboard():
    try:
        dashboard = json.loads(DASHBOARD.read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail(f"deploy/grafana-dashboard.json does not parse: {e}")
    check(dashboard.get("schemaVersion", 0) >= 36, f"schemaVersion is {dashboard.get('schemaVersion')}, expected >= 36")
    check(dashboard.get("title") and dashboard.get("uid"), "the dashboard needs a title and a uid")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    check(ds and ds.get("type") == "datasource" and ds.get("query") == "prometheus",
          "the dashboard needs a datasource variable DS_PROMETHEUS of type prometheus")
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    exposed = exposed_metrics()
    used: set[str] = set()
    ids = []
    cells: dict[tuple[int, int], int] = {}
    for v in variables.values():
        if v["type"] == "query":
            check(v.get("datasource") == datasource, f"variable {v['name']} must use ${{DS_PROMETHEUS}}")
            query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            check(m, f"variable {v['name']}: unexpected query {query!r}")
            for s in check_promql(substitute_grafana_variables(m.group(1)), f"variable {v['name']}", exposed):
                used.add(s["name"])
                check(m.group(2) in exposed.get(s["name"], set()) | TARGET_LABELS,
                      f"variable {v['name']}: {s['name']} has no label {m.group(2)}")
    panels = dashboard_panels(dashboard)
    check(len(panels) >= 10, f"the dashboard has only {len(panels)} panels")
    for panel in panels:
        ids.append(panel["id"])
        pos = panel["gridPos"]
        check(pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, f"panel {panel['title']!r} is outside the grid")
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                check((x, y) not in cells, f"panels {panel['id']} and {cells.get((x, y))} overlap at {x},{y}")
                cells[(x, y)] = panel["id"]
        if panel["type"] == "row":
            continue
        check(panel.get("datasource") == datasource, f"panel {panel['title']!r} must use ${{DS_PROMETHEUS}}")
        check(panel.get("targets"), f"panel {panel['title']!r} has no queries")
        for t in panel["targets"]:
            check(t.get("datasource") == datasource, f"panel {panel['title']!r}: target {t.get('refId')} datasource")
            for s in check_promql(substitute_grafana_variables(t["expr"]), f"panel {panel['title']!r}", exposed):
                used.add(s["name"])
    check(len(ids) == len(set(ids)), f"panel ids repeat: {ids}")
    wanted = {
        "ferrocast_connections", "ferrocast_ws_messages_in_total", "ferrocast_ws_messages_out_total",
        "ferrocast_rest_requests_total", "ferrocast_connections_closed_total",
        "ferrocast_slow_consumer_disconnects_total", "ferrocast_backplane_up", "ferrocast_backplane_errors_total",
        "ferrocast_backplane_reconnects_total", "ferrocast_process_cpu_seconds_total",
        "ferrocast_process_resident_memory_bytes", "ferrocast_webhook_queue_depth",
        "ferrocast_webhook_request_duration_seconds_bucket", *FROM_START,
    }
    check(wanted <= used, f"the dashboard does not chart {sorted(wanted - used)}")
    texts = json.dumps(dashboard)
    check('"uid": "${DS_PROMETHEUS}"' in texts, "datasource references must be ${DS_PROMETHEUS}")
    check("histogram_quantile(0.99, sum by (le) (rate(ferrocast_webhook_request_duration_seconds_bucket{" in texts,
          "the dashboard must chart the p99 of the webhook request duration")
    for label in ("app_id", "pod", "code", "route", "status", "event", "reason"):
        check("{{" + label + "}}" in texts or f"by ({label}" in texts, f"the dashboard never breaks down by {label}")


if __name__ == "__main__":
    sys.exit(pytest.main(["-p", "no:cacheprovider", "-v", __file__]))
