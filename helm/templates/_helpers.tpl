{{- define "oci-storage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "oci-storage.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "oci-storage.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The configuration file: chart-managed keys over the user's `config`. */}}
{{- define "oci-storage.credentialsDir" -}}/etc/oci-storage/credentials{{- end -}}

{{- define "oci-storage.storage" -}}
{{- $type := .Values.storage.type -}}
{{- $dir := include "oci-storage.credentialsDir" . -}}
{{- if eq $type "fs" -}}
{{- toYaml (dict "type" "fs" "fs" (dict "path" "/data")) -}}
{{- else if eq $type "s3" -}}
{{- $s3 := deepCopy .Values.storage.s3 -}}
{{- if .Values.storage.credentialsSecret -}}
{{- $_ := set $s3 "accessKeyIdFile" (printf "%s/accessKeyId" $dir) -}}
{{- $_ := set $s3 "secretAccessKeyFile" (printf "%s/secretAccessKey" $dir) -}}
{{- end -}}
{{- toYaml (dict "type" "s3" "s3" $s3) -}}
{{- else if eq $type "gcs" -}}
{{- $gcs := deepCopy .Values.storage.gcs -}}
{{- if .Values.storage.credentialsSecret -}}
{{- $_ := set $gcs "credentialsFile" (printf "%s/credentials.json" $dir) -}}
{{- end -}}
{{- toYaml (dict "type" "gcs" "gcs" $gcs) -}}
{{- else -}}
{{- fail (printf "storage.type must be fs, s3 or gcs, not %q" $type) -}}
{{- end -}}
{{- end -}}

{{- define "oci-storage.config" -}}
{{- if and (eq .Values.storage.type "fs") (gt (int .Values.replicaCount) 1) -}}
{{- fail "fs storage is one volume for one replica: use storage.type s3 or gcs to run several" -}}
{{- end -}}
{{- $managed := dict
  "server" (dict "host" "0.0.0.0" "port" (int .Values.service.port))
  "storage" (include "oci-storage.storage" . | fromYaml)
  "auth" (dict "anonymousPull" .Values.auth.anonymousPull "users" .Values.auth.users) -}}
{{- toYaml (mergeOverwrite (deepCopy .Values.config) $managed) -}}
{{- end -}}
