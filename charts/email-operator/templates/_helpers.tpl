{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "email-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release name contains it. */}}
{{- define "email-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "email-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "email-operator.labels" -}}
helm.sh/chart: {{ include "email-operator.chart" . }}
{{ include "email-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "email-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "email-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "email-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "email-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the chart creates from defaultRelay.host and friends. */}}
{{- define "email-operator.defaultRelaySecretName" -}}
{{- printf "%s-default-relay" (include "email-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* NAMESPACE/NAME for --default-relay-secret, or empty when there is no default relay. */}}
{{- define "email-operator.defaultRelaySecret" -}}
{{- $relay := .Values.defaultRelay }}
{{- if and $relay.existingSecret $relay.host }}
{{- fail "defaultRelay: set either existingSecret or host (the chart then creates the Secret), not both" }}
{{- end }}
{{- if $relay.existingSecret }}
{{- printf "%s/%s" (default .Release.Namespace $relay.existingSecretNamespace) $relay.existingSecret }}
{{- else if $relay.host }}
{{- printf "%s/%s" .Release.Namespace (include "email-operator.defaultRelaySecretName" .) }}
{{- end }}
{{- end }}

{{/*
The name of the leader-election Lease. Fixed in the operator (it is not a flag), so every
replica of every release in a namespace competes for the same Lease.
*/}}
{{- define "email-operator.leaseName" -}}
email-operator
{{- end }}
