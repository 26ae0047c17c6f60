{{/*
Names and labels.
*/}}
{{- define "ferrocast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects; 57 characters at most, so "<fullname>-redis" stays a valid
63-character DNS label.
*/}}
{{- define "ferrocast.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrocast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferrocast.labels" -}}
helm.sh/chart: {{ include "ferrocast.chart" . }}
{{ include "ferrocast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferrocast
{{- include "ferrocast.commonLabels" . }}
{{- end }}

{{/* commonLabels, each on its own line (after the chart's labels, which they cannot replace). */}}
{{- define "ferrocast.commonLabels" -}}
{{- range $k, $v := .Values.commonLabels }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}

{{/*
The metadata annotations of an object: commonAnnotations plus the object's own (which win).
Call with (dict "root" $ "extra" <map or nil>); renders nothing when both are empty.
*/}}
{{- define "ferrocast.annotations" -}}
{{- $all := merge (dict) (deepCopy (.extra | default dict)) (deepCopy (.root.Values.commonAnnotations | default dict)) }}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Selector of the ferrocast nodes (the bundled Redis has component "redis"). */}}
{{- define "ferrocast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrocast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "ferrocast.redis.fullname" -}}
{{- printf "%s-redis" (include "ferrocast.fullname" .) }}
{{- end }}

{{- define "ferrocast.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrocast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "ferrocast.redis.labels" -}}
helm.sh/chart: {{ include "ferrocast.chart" . }}
{{ include "ferrocast.redis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.redis.bundled.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferrocast
{{- include "ferrocast.commonLabels" . }}
{{- end }}

{{- define "ferrocast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ferrocast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference: [global.imageRegistry/]repository, then @digest when a digest is given, else
:tag. Call with (dict "root" $ "image" <image values> "tag" <default tag>).
*/}}
{{- define "ferrocast.imageRef" -}}
{{- $registry := "" }}
{{- with .root.Values.global }}{{ $registry = .imageRegistry | default "" | trimSuffix "/" }}{{ end }}
{{- $repo := .image.repository }}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.image.tag | default .tag) }}
{{- end }}
{{- end }}

{{- define "ferrocast.image" -}}
{{- include "ferrocast.imageRef" (dict "root" . "image" .Values.image "tag" .Chart.AppVersion) }}
{{- end }}

{{/* The metrics Service: its name, and the label that tells it from the client Service. */}}
{{- define "ferrocast.metricsServiceName" -}}
{{- printf "%s-metrics" (include "ferrocast.fullname" .) }}
{{- end }}
{{- define "ferrocast.metricsServiceLabel" -}}
ferrocast.io/service: metrics
{{- end }}

{{/* The variable holding the secret of config.apps[i] when it comes from existingSecret. */}}
{{- define "ferrocast.appSecretEnv" -}}
{{- printf "FERROCAST_APP_SECRET_%d" (int .) }}
{{- end }}

{{/*
The app key the helm test connects with: tests.appKey, else the first enabled app of
config.apps (none with existingSecret or the postgres registry).
*/}}
{{- define "ferrocast.testAppKey" -}}
{{- if .Values.tests.appKey }}
{{- .Values.tests.appKey }}
{{- else if and (not .Values.existingSecret) (ne .Values.registry.driver "postgres") }}
{{- $key := "" }}
{{- range .Values.config.apps }}
{{- if and (not $key) (ne (toString .enabled) "false") }}{{ $key = toString .key }}{{ end }}
{{- end }}
{{- $key }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding ferrocast.toml. */}}
{{- define "ferrocast.configSecretName" -}}
{{- .Values.existingSecret | default (include "ferrocast.fullname" .) }}
{{- end }}

{{/* Where tls.existingSecret's certificate and key appear in the pod. */}}
{{- define "ferrocast.tlsCert" -}}/etc/ferrocast/tls/tls.crt{{- end }}
{{- define "ferrocast.tlsKey" -}}/etc/ferrocast/tls/tls.key{{- end }}

{{/* Where the config Secret is mounted, and the file the node reads. */}}
{{- define "ferrocast.configDir" -}}/etc/ferrocast{{- end }}
{{- define "ferrocast.configFile" -}}/etc/ferrocast/ferrocast.toml{{- end }}

{{/*
The Redis URL the chart knows of: the bundled Redis, else redis.url (may be empty).
*/}}
{{- define "ferrocast.redisUrl" -}}
{{- if .Values.redis.bundled.enabled }}
{{- printf "redis://%s:6379" (include "ferrocast.redis.fullname" .) }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/*
config.webhooks.leave_delay_ms in whole seconds, rounded up.
*/}}
{{- define "ferrocast.leaveDelaySeconds" -}}
{{- div (add (int64 .Values.config.webhooks.leave_delay_ms) 999) 1000 }}
{{- end }}

{{/*
Seconds from pod deletion to the end of the node's shutdown, without the margin: the preStop
sleep, the drain of the connections (config.server.shutdown_grace_s), the delayed leaves
(config.webhooks.leave_delay_ms, rounded up) and the webhook flush (config.webhooks.flush_timeout_s).
*/}}
{{- define "ferrocast.shutdownSeconds" -}}
{{- add (int64 .Values.lifecycle.preStopSleepSeconds) (int64 .Values.config.server.shutdown_grace_s) (int64 (include "ferrocast.leaveDelaySeconds" .)) (int64 .Values.config.webhooks.flush_timeout_s) }}
{{- end }}

{{/*
Seconds between pod deletion and SIGKILL: the shutdown above and a margin for leaving the
cluster and exiting.
*/}}
{{- define "ferrocast.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (int64 (include "ferrocast.shutdownSeconds" .)) (int64 .Values.terminationGraceMarginSeconds) }}
{{- else }}
{{- int64 .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Refuse values that would deploy a broken cluster. Included by deployment.yaml, so `helm
template`, `helm install` and `helm upgrade` all stop with the message.
*/}}
{{- define "ferrocast.validate" -}}
{{- $driver := .Values.config.backplane.driver }}
{{- if not (has $driver (list "memory" "redis" "redis-cluster")) }}
{{- fail (printf "config.backplane.driver must be \"memory\", \"redis\" or \"redis-cluster\", not %q" $driver) }}
{{- end }}
{{- if eq $driver "memory" }}
{{- if gt (int64 .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount is %d but config.backplane.driver is \"memory\": nodes on the in-process backplane do not share channels or presence. Set config.backplane.driver=redis (with redis.url, redis.urlSecret or redis.bundled.enabled) or replicaCount=1." (int64 .Values.replicaCount)) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs config.backplane.driver=redis: nodes on the in-process (memory) backplane do not share channels or presence." }}
{{- end }}
{{- if .Values.redis.bundled.enabled }}
{{- fail "redis.bundled.enabled is set but config.backplane.driver is \"memory\": set config.backplane.driver=redis to use it." }}
{{- end }}
{{- else if eq $driver "redis-cluster" }}
{{- if or .Values.redis.bundled.enabled .Values.redis.url .Values.redis.urlSecret.name }}
{{- fail "config.backplane.driver is \"redis-cluster\": its seed nodes are config.backplane.urls; redis.url, redis.urlSecret and redis.bundled are for one Redis" }}
{{- end }}
{{- if and (not .Values.existingSecret) (not .Values.config.backplane.urls) }}
{{- fail "config.backplane.driver is \"redis-cluster\" but config.backplane.urls (the Redis Cluster's seed nodes) is empty" }}
{{- end }}
{{- else }}
{{- if and .Values.redis.bundled.enabled .Values.redis.url }}
{{- fail "set either redis.url (external Redis) or redis.bundled.enabled, not both" }}
{{- end }}
{{- if and (not .Values.existingSecret) (not .Values.redis.urlSecret.name) (not (include "ferrocast.redisUrl" .)) }}
{{- fail "config.backplane.driver is \"redis\" but no Redis is given: set redis.url, redis.urlSecret.name or redis.bundled.enabled=true" }}
{{- end }}
{{- $url := include "ferrocast.redisUrl" . }}
{{- if and $url (not (or (hasPrefix "redis://" $url) (hasPrefix "rediss://" $url))) }}
{{- fail (printf "redis.url must start with redis:// or rediss://, is %q" $url) }}
{{- end }}
{{- end }}
{{- $server := .Values.config.server }}
{{- if and $server.proxy_protocol (gt (int64 ($server.trusted_proxy_hops | default 0)) 0) }}
{{- fail (printf "config.server.proxy_protocol is true and config.server.trusted_proxy_hops is %d: with the PROXY protocol the header names the client, so trusted_proxy_hops must be 0 (the node refuses both)" (int64 $server.trusted_proxy_hops)) }}
{{- end }}
{{- if and .Values.tls.existingSecret (or (hasKey $server "tls_cert") (hasKey $server "tls_key")) }}
{{- fail "set either tls.existingSecret or config.server.tls_cert / tls_key, not both" }}
{{- end }}
{{- if eq (int64 .Values.ports.ws) (int64 .Values.ports.metrics) }}
{{- fail "ports.ws and ports.metrics must differ" }}
{{- end }}
{{- $shutdown := int64 (include "ferrocast.shutdownSeconds" .) }}
{{- $tgps := int64 (include "ferrocast.terminationGracePeriodSeconds" .) }}
{{- if le $tgps $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds + config.server.shutdown_grace_s + ceil(config.webhooks.leave_delay_ms / 1000) + config.webhooks.flush_timeout_s (%d + %d + %d + %d = %d): Kubernetes would kill the node before its connections are drained and its webhooks sent. Leave it empty to derive it." $tgps (int64 .Values.lifecycle.preStopSleepSeconds) (int64 .Values.config.server.shutdown_grace_s) (int64 (include "ferrocast.leaveDelaySeconds" .)) (int64 .Values.config.webhooks.flush_timeout_s) $shutdown) }}
{{- end }}
{{- if eq .Values.registry.driver "postgres" }}
{{- if not .Values.registry.existingSecret.name }}
{{- fail "registry.driver is \"postgres\" but registry.existingSecret.name is empty: name the Secret holding the PostgreSQL URL (key registry.existingSecret.key)" }}
{{- end }}
{{- end }}
{{- if and (not .Values.existingSecret) (ne .Values.registry.driver "postgres") }}
{{- if not .Values.config.apps }}
{{- fail "config.apps is empty: give at least one app (id, key, secret) or an existingSecret" }}
{{- end }}
{{- $ids := dict }}
{{- $keys := dict }}
{{- range $i, $app := .Values.config.apps }}
{{- if hasKey $ids (toString $app.id) }}
{{- fail (printf "config.apps[%d].id: duplicate app id %q" $i (toString $app.id)) }}
{{- end }}
{{- if hasKey $keys (toString $app.key) }}
{{- fail (printf "config.apps[%d].key: duplicate app key %q" $i (toString $app.key)) }}
{{- end }}
{{- $sources := 0 }}
{{- range $field := list "secret" "existingSecret" "secret_env" }}{{ if hasKey $app $field }}{{ $sources = add1 $sources }}{{ end }}{{ end }}
{{- if ne (int $sources) 1 }}
{{- fail (printf "config.apps[%d] (id %q): give exactly one of secret, existingSecret and secret_env" $i (toString $app.id)) }}
{{- end }}
{{- $_ := set $ids (toString $app.id) true }}
{{- $_ := set $keys (toString $app.key) true }}
{{- end }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if not (or .Values.autoscaling.targetCPUUtilizationPercentage .Values.autoscaling.targetMemoryUtilizationPercentage .Values.autoscaling.connections.enabled) }}
{{- fail "autoscaling.enabled needs a metric: targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or connections.enabled" }}
{{- end }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled needs httpRoute.parentRefs: the Gateway(s) the route attaches to" }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- $max := .Values.podDisruptionBudget.maxUnavailable }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "invalid" $max)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"true" when the chart sets server.trusted_proxy_hops = 1: behind the Ingress, unless the user set
trusted_proxy_hops or proxy_protocol. Without it every client would share the ingress
controller's address, and the per-IP caps would apply to all of them together.
*/}}
{{- define "ferrocast.defaultProxyHops" -}}
{{- $server := .Values.config.server }}
{{- if and (or .Values.ingress.enabled .Values.httpRoute.enabled) (not (hasKey $server "trusted_proxy_hops")) (not $server.proxy_protocol) -}}
true
{{- end }}
{{- end }}

{{/*
One TOML value: strings as basic strings (JSON string escapes are valid TOML escapes), integers,
booleans and arrays of those.
*/}}
{{- define "ferrocast.tomlValue" -}}
{{- if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{ int64 . }}
{{- else if kindIs "slice" . -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "ferrocast.tomlValue" $v }}{{ end }}]
{{- else -}}
{{ fail (printf "cannot write %v (%s) into ferrocast.toml" . (kindOf .)) }}
{{- end -}}
{{- end }}

{{/*
The node configuration (ferrocast.toml) rendered from values.
*/}}
{{- define "ferrocast.tomlSettings" -}}
# Ferrocast node configuration, rendered by the {{ include "ferrocast.chart" . }} Helm chart for
# release {{ .Release.Name }}. Keys: docs/configuration.md. The pod's environment overrides
# server.host, server.port, server.metrics_port, server.node_id (the pod name),
# server.shutdown_grace_s, backplane.driver, webhooks.leave_delay_ms and webhooks.flush_timeout_s
# with the same values.

[server]
host = "0.0.0.0"
port = {{ int64 .Values.ports.ws }}
metrics_port = {{ int64 .Values.ports.metrics }}
{{- range $k := keys .Values.config.server | sortAlpha }}
{{ $k }} = {{ include "ferrocast.tomlValue" (get $.Values.config.server $k) }}
{{- end }}
{{- if include "ferrocast.defaultProxyHops" . }}
# Behind the Ingress: the client is the last X-Forwarded-For entry (ingress-nginx appends it).
trusted_proxy_hops = 1
{{- end }}
{{- if .Values.tls.existingSecret }}
# TLS on the client port, from the Secret {{ .Values.tls.existingSecret }} (reloaded when it changes).
tls_cert = {{ include "ferrocast.tlsCert" . | toJson }}
tls_key = {{ include "ferrocast.tlsKey" . | toJson }}
{{- end }}

[backplane]
{{- range $k := keys .Values.config.backplane | sortAlpha }}
{{ $k }} = {{ include "ferrocast.tomlValue" (get $.Values.config.backplane $k) }}
{{- end }}
{{- $url := include "ferrocast.redisUrl" . }}
{{- if $url }}
url = {{ toJson $url }}
{{- end }}

[webhooks]
{{- range $k := keys .Values.config.webhooks | sortAlpha }}
{{ $k }} = {{ include "ferrocast.tomlValue" (get $.Values.config.webhooks $k) }}
{{- end }}
{{- with .Values.config.log }}

[log]
{{- range $k := keys . | sortAlpha }}
{{ $k }} = {{ include "ferrocast.tomlValue" (get $.Values.config.log $k) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The [[apps]] of ferrocast.toml: the part a running node reloads by itself (appReload: live).
*/}}
{{- define "ferrocast.tomlApps" -}}
{{- if eq .Values.registry.driver "postgres" }}

# No [[apps]]: they are in PostgreSQL ([registry], set from the pod's environment).
{{- else }}
{{- range $i, $app := .Values.config.apps }}

[[apps]]
{{- range $k := keys $app | sortAlpha }}
{{- if eq $k "existingSecret" }}
# The secret: key {{ $app.existingSecret.key }} of the Secret {{ $app.existingSecret.name }}, in the pod's environment.
secret_env = {{ include "ferrocast.appSecretEnv" $i | toJson }}
{{- else if ne $k "webhooks" }}
{{ $k }} = {{ include "ferrocast.tomlValue" (get $app $k) }}
{{- end }}
{{- end }}
{{- range $hook := $app.webhooks | default list }}

[[apps.webhooks]]
{{- range $k := keys $hook | sortAlpha }}
{{ $k }} = {{ include "ferrocast.tomlValue" (get $hook $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The node configuration (ferrocast.toml): the settings, then the apps.
*/}}
{{- define "ferrocast.toml" -}}
{{ include "ferrocast.tomlSettings" . }}
{{- include "ferrocast.tomlApps" . }}
{{ end }}

{{/* An IntOrString value: a number as an integer, a percentage as a quoted string. */}}
{{- define "ferrocast.intOrString" -}}
{{- if kindIs "string" . }}{{ quote . }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}

{{/*
A probe: the chart's GET <path> on port metrics, with the user's fields merged over it; a
httpGet the user gives is merged over the chart's; another handler (tcpSocket, exec, grpc)
replaces it.
Call with (dict "path" "/healthz" "probe" .Values.probes.liveness).
*/}}
{{- define "ferrocast.probe" -}}
{{- $probe := deepCopy (.probe | default dict) }}
{{- $handlers := list "httpGet" "tcpSocket" "exec" "grpc" }}
{{- $own := false }}
{{- range (without $handlers "httpGet") }}{{ if hasKey $probe . }}{{ $own = true }}{{ end }}{{ end }}
{{- if not $own }}
{{- $_ := set $probe "httpGet" (mergeOverwrite (dict "path" .path "port" "metrics") ($probe.httpGet | default dict)) }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/* "true" when the helm test pod is rendered: tests.enabled, an app key known, plain WebSocket. */}}
{{- define "ferrocast.testEnabled" -}}
{{- if and .Values.tests.enabled (include "ferrocast.testAppKey" .) (not .Values.tls.existingSecret) -}}
true
{{- end }}
{{- end }}
