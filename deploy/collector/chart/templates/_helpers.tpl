{{/*
The chart name, overridable with nameOverride.
*/}}
{{- define "collector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, else the release name
(plus the chart name when the release name does not contain it; the chart name alone when
it already starts with the release name, as in the umbrella chart's release `policyhub`),
at most 63 characters.
*/}}
{{- define "collector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "collector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "collector.labels" -}}
helm.sh/chart: {{ include "collector.chart" . }}
{{ include "collector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: collector
app.kubernetes.io/part-of: policyhub
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels (immutable in a DaemonSet: never add to them).
*/}}
{{- define "collector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "collector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount's name.
*/}}
{{- define "collector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "collector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding the cluster token and its key.
*/}}
{{- define "collector.tokenSecretName" -}}
{{- if .Values.hub.token }}
{{- printf "%s-token" (include "collector.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "hub.existingSecret (a Secret holding the cluster token) or hub.token is required" .Values.hub.existingSecret }}
{{- end }}
{{- end }}

{{- define "collector.tokenSecretKey" -}}
{{- if .Values.hub.token }}token{{ else }}{{ .Values.hub.existingSecretKey }}{{ end }}
{{- end }}

{{/*
The image reference: repository@digest, else repository:tag (default appVersion).
*/}}
{{- define "collector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Fails on values the collector would reject at start.
*/}}
{{- define "collector.validate" -}}
{{- if not (has .Values.source (list "ebpf" "hubble")) }}
{{- fail (printf "source must be ebpf or hubble, not %q" .Values.source) }}
{{- end }}
{{- if not .Values.hub.url }}
{{- fail "hub.url (the hub's base URL) is required" }}
{{- end }}
{{- if not (has .Values.logFormat (list "json" "text")) }}
{{- fail (printf "logFormat must be json or text, not %q" .Values.logFormat) }}
{{- end }}
{{- if and .Values.hubble.tls.existingSecret (hasPrefix "unix://" .Values.hubble.address) (eq .Values.source "hubble") }}
{{- fail "hubble.tls needs a TCP hubble.address (host:port or https://host:port), not a unix:// socket" }}
{{- end }}
{{- end }}
