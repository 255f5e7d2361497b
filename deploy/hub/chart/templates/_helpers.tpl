{{/*
The chart name, overridable with nameOverride.
*/}}
{{- define "hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, else the release name when it
contains "policyhub" (release `policyhub` → Service `policyhub`, the collector chart's
default hub address), else <release>-policyhub; at most 63 characters.
*/}}
{{- define "hub.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "policyhub" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-policyhub" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource; `component` is hub, migrate or postgresql.
*/}}
{{- define "hub.labels" -}}
helm.sh/chart: {{ include "hub.chart" .root }}
{{ include "hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: policyhub
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/*
Selector labels (immutable in a Deployment or StatefulSet: never add to them).
*/}}
{{- define "hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding the database URL, and its key.
*/}}
{{- define "hub.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "hub.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "hub.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}url{{ end }}
{{- end }}

{{- define "hub.postgresqlName" -}}
{{- printf "%s-postgresql" (include "hub.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hub.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The database URL variable, from the Secret (never a plain value).
*/}}
{{- define "hub.databaseEnv" -}}
- name: POLICYHUB_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "hub.databaseSecretName" . }}
      key: {{ include "hub.databaseSecretKey" . }}
{{- end }}

{{/*
Fails on values that cannot work.
*/}}
{{- define "hub.validate" -}}
{{- $sources := 0 }}
{{- if .Values.database.existingSecret }}{{ $sources = add1 $sources }}{{ end }}
{{- if .Values.database.url }}{{ $sources = add1 $sources }}{{ end }}
{{- if .Values.postgresql.enabled }}{{ $sources = add1 $sources }}{{ end }}
{{- if ne $sources 1 }}
{{- fail "set exactly one of database.existingSecret (a Secret holding the PostgreSQL URL), database.url, or postgresql.enabled=true (evaluation only)" }}
{{- end }}
{{- if and .Values.database.url (not (hasPrefix "postgres" .Values.database.url)) }}
{{- fail "database.url must be a postgres:// URL (SQLite cannot be shared by replicas)" }}
{{- end }}
{{- if not (has .Values.migrations.mode (list "initContainer" "job")) }}
{{- fail (printf "migrations.mode must be initContainer or job, not %q" .Values.migrations.mode) }}
{{- end }}
{{- if and (eq .Values.migrations.mode "job") (not .Values.database.existingSecret) }}
{{- fail "migrations.mode=job needs database.existingSecret (the hook Job runs before the release's own Secret and PostgreSQL exist)" }}
{{- end }}
{{- if lt (int .Values.replicaCount) 1 }}
{{- fail "replicaCount must be at least 1" }}
{{- end }}
{{- end }}
