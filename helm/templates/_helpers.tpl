{{/*
Names, labels, and the configuration plan: what goes into the ConfigMap (the configuration, no
secret in it), into the chart's Secret, and which Secret keys are mounted where.
*/}}

{{- define "oci-storage.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oci-storage.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "oci-storage.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "oci-storage.selector" -}}
app.kubernetes.io/name: {{ include "oci-storage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "oci-storage.labels" -}}
{{ include "oci-storage.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{- define "oci-storage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "oci-storage.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "oci-storage.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Where the configuration and the secrets are mounted in the container. */}}
{{- define "oci-storage.configDir" -}}/etc/oci-storage/config{{- end -}}
{{- define "oci-storage.secretsDir" -}}/etc/oci-storage/secrets{{- end -}}

{{/* Deep merge of .src into .dst (in place): maps merge key by key, anything else (lists,
     scalars, false, 0, "") replaces. Sprig's mergeOverwrite would keep `true` over `false`. */}}
{{- define "oci-storage.merge" -}}
{{- $dst := .dst -}}
{{- range $k, $v := .src -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) -}}
{{- include "oci-storage.merge" (dict "dst" (get $dst $k) "src" $v) -}}
{{- else -}}
{{- $_ := set $dst $k $v -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Keys the binary treats as secrets (config/src/lib.rs SECRET_KEYS): none may reach the
     ConfigMap. Fails naming the first one found under .value. */}}
{{- define "oci-storage.noSecrets" -}}
{{- $secretKeys := list "password" "token" "secretAccessKey" "sessionToken" "accessKeyId" "privateKey" "credentialsJson" -}}
{{- $path := .path -}}
{{- if kindIs "map" .value -}}
{{- range $k, $v := .value -}}
{{- if and (has $k $secretKeys) (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) -}}
{{- fail (printf "%s%s is a secret, and the configuration is rendered into a ConfigMap: give it in the values that put it into a Secret (auth.users[].password, storage.s3.secretAccessKey, …), as an existingSecret, or as %sFile with the Secret mounted through extraVolumes" $path $k $k) -}}
{{- end -}}
{{- include "oci-storage.noSecrets" (dict "path" (printf "%s%s." $path $k) "value" $v) -}}
{{- end -}}
{{- else if kindIs "slice" .value -}}
{{- range $i, $v := .value -}}
{{- include "oci-storage.noSecrets" (dict "path" (printf "%s[%d]." (trimSuffix "." $path) $i) "value" $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Adds a Secret key to the plan: .plan (the plan being built), .secret (the Secret's name),
     .key (its key), .path (the file, relative to the secrets directory). */}}
{{- define "oci-storage.mount" -}}
{{- $items := .plan.items -}}
{{- $_ := set .plan "items" (append $items (dict "secret" .secret "key" .key "path" .path)) -}}
{{- end -}}

{{/* The credentials of one cloud target (storage, or a backup target), moved out of its
     settings: inline values go into the chart's Secret, an existing Secret's keys are mounted,
     and the settings read both from files (`accessKeyIdFile`, `credentialsFile`).
     .plan, .settings (modified in place), .kind (s3 or gcs), .scope (storage, backup),
     .existing (an existing Secret's name, or ""), .where (the values path, for errors). */}}
{{- define "oci-storage.cloudCredentials" -}}
{{- $plan := .plan -}}
{{- $settings := .settings -}}
{{- $scope := .scope -}}
{{- $dir := $plan.dir -}}
{{- $keys := ternary (list "accessKeyId" "secretAccessKey" "sessionToken") (list "credentialsJson") (eq .kind "s3") -}}
{{- $inline := list -}}
{{- range $keys -}}
{{- if get $settings . -}}
{{- $inline = append $inline . -}}
{{- end -}}
{{- end -}}
{{- if and $inline .existing -}}
{{- fail (printf "%s: give the credentials either inline (%s) or in existingSecret %q, not both" .where (join ", " $inline) .existing) -}}
{{- end -}}
{{- range $inline -}}
{{- $file := ternary "credentials.json" . (eq . "credentialsJson") -}}
{{- $key := printf "%s-%s" $scope $file -}}
{{- $_ := set $plan.data $key (toString (get $settings .)) -}}
{{- include "oci-storage.mount" (dict "plan" $plan "secret" $plan.chartSecret "key" $key "path" (printf "%s/%s" $scope $file)) -}}
{{- $_ := unset $settings . -}}
{{- if eq . "credentialsJson" -}}
{{- $_ := set $settings "credentialsFile" (printf "%s/%s/%s" $dir $scope $file) -}}
{{- else -}}
{{- $_ := set $settings (printf "%sFile" .) (printf "%s/%s/%s" $dir $scope $file) -}}
{{- end -}}
{{- end -}}
{{- if .existing -}}
{{- if eq .kind "s3" -}}
{{- range list "accessKeyId" "secretAccessKey" -}}
{{- include "oci-storage.mount" (dict "plan" $plan "secret" $.existing "key" . "path" (printf "%s/%s" $scope .)) -}}
{{- $_ := set $settings (printf "%sFile" .) (printf "%s/%s/%s" $dir $scope .) -}}
{{- end -}}
{{- else -}}
{{- include "oci-storage.mount" (dict "plan" $plan "secret" .existing "key" "credentials.json" "path" (printf "%s/credentials.json" $scope)) -}}
{{- $_ := set $settings "credentialsFile" (printf "%s/%s/credentials.json" $dir $scope) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The plan, as YAML: `config` (the configuration file: files/config.yaml, a copy of the
project's config/config.yaml made by scripts/copy-config.sh, under `config` from the values,
under the chart's own settings), `data` (the chart's Secret), `items` (Secret keys mounted
into the secrets directory), `metrics` (whether metrics are served, and on which port).
*/}}
{{- define "oci-storage.plan" -}}
{{- $v := .Values -}}
{{- $base := .Files.Get "files/config.yaml" | fromYaml -}}
{{- if or (not $base) (hasKey $base "Error") -}}
{{- fail "files/config.yaml is missing or invalid: run scripts/copy-config.sh" -}}
{{- end -}}
{{- $plan := dict "dir" (include "oci-storage.secretsDir" .) "chartSecret" (include "oci-storage.fullname" .) "data" dict "items" list -}}
{{- $config := deepCopy $base -}}
{{- include "oci-storage.merge" (dict "dst" $config "src" (deepCopy ($v.config | default dict))) -}}

{{- /* storage */ -}}
{{- $type := $v.storage.type -}}
{{- $storage := dict "type" $type -}}
{{- if eq $type "fs" -}}
{{- if or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled -}}
{{- fail "fs storage is one volume for one replica: use storage.type s3 or gcs to run several replicas or an autoscaler" -}}
{{- end -}}
{{- if $v.podDisruptionBudget.enabled -}}
{{- fail "a PodDisruptionBudget needs several replicas, and fs storage runs one: use storage.type s3 or gcs" -}}
{{- end -}}
{{- $_ := set $storage "fs" (dict "path" $v.persistence.mountPath) -}}
{{- else if or (eq $type "s3") (eq $type "gcs") -}}
{{- $settings := deepCopy (get $v.storage $type | default dict) -}}
{{- if not $settings.bucket -}}
{{- fail (printf "storage.%s.bucket is required with storage.type %s" $type $type) -}}
{{- end -}}
{{- include "oci-storage.cloudCredentials" (dict "plan" $plan "settings" $settings "kind" $type "scope" "storage" "existing" $v.storage.existingSecret "where" (printf "storage.%s" $type)) -}}
{{- $_ := set $storage $type $settings -}}
{{- else -}}
{{- fail (printf "storage.type must be fs, s3 or gcs, not %q" $type) -}}
{{- end -}}
{{- include "oci-storage.merge" (dict "dst" $config "src" (dict "storage" $storage)) -}}

{{- /* auth: users (password hashes in a Secret), htpasswd */ -}}
{{- $auth := dict "anonymousPull" $v.auth.anonymousPull -}}
{{- if $v.auth.users -}}
{{- $users := list -}}
{{- range $i, $u := $v.auth.users -}}
{{- if not $u.username -}}
{{- fail (printf "auth.users[%d] has no username" $i) -}}
{{- end -}}
{{- $user := dict "username" $u.username -}}
{{- with $u.groups -}}
{{- $_ := set $user "groups" . -}}
{{- end -}}
{{- $file := printf "users/%d" $i -}}
{{- if $u.password -}}
{{- $key := printf "user-%d-password" $i -}}
{{- $_ := set $plan.data $key (toString $u.password) -}}
{{- include "oci-storage.mount" (dict "plan" $plan "secret" $plan.chartSecret "key" $key "path" $file) -}}
{{- $_ := set $user "passwordFile" (printf "%s/%s" $plan.dir $file) -}}
{{- else if $u.passwordFile -}}
{{- $_ := set $user "passwordFile" $u.passwordFile -}}
{{- else if $v.auth.existingSecret -}}
{{- include "oci-storage.mount" (dict "plan" $plan "secret" $v.auth.existingSecret "key" ($u.passwordKey | default $u.username) "path" $file) -}}
{{- $_ := set $user "passwordFile" (printf "%s/%s" $plan.dir $file) -}}
{{- else -}}
{{- fail (printf "auth.users[%d] (%s) has no password: give its hash (oci-storage hash-password) as password, or set auth.existingSecret" $i $u.username) -}}
{{- end -}}
{{- $users = append $users $user -}}
{{- end -}}
{{- $_ := set $auth "users" $users -}}
{{- end -}}
{{- if $v.auth.htpasswd.enabled -}}
{{- if $v.auth.htpasswd.content -}}
{{- $_ := set $plan.data "htpasswd" $v.auth.htpasswd.content -}}
{{- include "oci-storage.mount" (dict "plan" $plan "secret" $plan.chartSecret "key" "htpasswd" "path" "auth/htpasswd") -}}
{{- else if $v.auth.existingSecret -}}
{{- include "oci-storage.mount" (dict "plan" $plan "secret" $v.auth.existingSecret "key" $v.auth.htpasswd.existingSecretKey "path" "auth/htpasswd") -}}
{{- else -}}
{{- fail "auth.htpasswd.enabled: give the file as auth.htpasswd.content, or set auth.existingSecret (key auth.htpasswd.existingSecretKey)" -}}
{{- end -}}
{{- $providers := ($config.auth.providers | default list) -}}
{{- $_ := set $auth "providers" (append $providers (dict "type" "htpasswd" "path" (printf "%s/auth/htpasswd" $plan.dir))) -}}
{{- end -}}
{{- include "oci-storage.merge" (dict "dst" $config "src" (dict "auth" $auth)) -}}

{{- /* backup */ -}}
{{- $b := $v.backup -}}
{{- $backup := dict "enabled" $b.enabled -}}
{{- $targets := list -}}
{{- range $name, $kind := dict "aws" "s3" "gcp" "gcs" "target" "" -}}
{{- $settings := deepCopy (get $b $name | default dict) -}}
{{- if $settings -}}
{{- $targets = append $targets (printf "backup.%s" $name) -}}
{{- $k := $kind | default (toString $settings.type) -}}
{{- if or (eq $k "s3") (eq $k "gcs") -}}
{{- include "oci-storage.cloudCredentials" (dict "plan" $plan "settings" $settings "kind" $k "scope" "backup" "existing" $b.existingSecret "where" (printf "backup.%s" $name)) -}}
{{- end -}}
{{- $_ := set $backup $name $settings -}}
{{- end -}}
{{- end -}}
{{- if gt (len $targets) 1 -}}
{{- fail (printf "backup takes one target, not %s" (join " and " $targets)) -}}
{{- end -}}
{{- if and $b.enabled (not $targets) -}}
{{- fail "backup.enabled needs a target: backup.aws, backup.gcp or backup.target" -}}
{{- end -}}
{{- with $b.schedule -}}
{{- $_ := set $backup "schedule" . -}}
{{- end -}}
{{- with $b.keep -}}
{{- $_ := set $backup "keep" . -}}
{{- end -}}
{{- include "oci-storage.merge" (dict "dst" $config "src" (dict "backup" $backup)) -}}

{{- /* garbage collection: passed through when set */ -}}
{{- with $v.gc -}}
{{- include "oci-storage.merge" (dict "dst" $config "src" (dict "gc" (deepCopy .))) -}}
{{- end -}}

{{- /* metrics: only with a binary that has them (its config.yaml has a `metrics` section) */ -}}
{{- $metrics := dict "enabled" false "port" 0 -}}
{{- if hasKey $base "metrics" -}}
{{- $m := dict "enabled" $v.metrics.enabled "access" $v.metrics.access -}}
{{- if $v.metrics.listen -}}
{{- $_ := set $m "listen" $v.metrics.listen -}}
{{- end -}}
{{- include "oci-storage.merge" (dict "dst" $config "src" (dict "metrics" $m)) -}}
{{- $_ := set $metrics "enabled" $config.metrics.enabled -}}
{{- with $config.metrics.listen -}}
{{- $port := regexFind "[0-9]+$" (toString .) -}}
{{- if not $port -}}
{{- fail (printf "metrics.listen must be an address and port such as 0.0.0.0:9102, not %q" .) -}}
{{- end -}}
{{- $_ := set $metrics "port" (int $port) -}}
{{- end -}}
{{- else if or $v.metrics.serviceMonitor.enabled $v.metrics.prometheusRule.enabled -}}
{{- fail "this chart's configuration (files/config.yaml) has no metrics section: the oci-storage it was made for serves no metrics (run scripts/copy-config.sh with a newer one)" -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not $metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (eq (toString $v.metrics.access) "admins") (not (or $v.metrics.serviceMonitor.basicAuth $v.metrics.serviceMonitor.authorization)) -}}
{{- fail "metrics.access admins: Prometheus needs an administrator's credentials (metrics.serviceMonitor.basicAuth or .authorization), or serve the metrics to anyone on their own port (metrics.listen)" -}}
{{- end -}}

{{- include "oci-storage.noSecrets" (dict "path" "config." "value" $config) -}}
{{- $https := false -}}
{{- if and $config.server (get $config.server "tls") -}}
{{- $https = true -}}
{{- end -}}
{{- toYaml (dict "config" $config "data" $plan.data "items" $plan.items "metrics" $metrics "https" $https) -}}
{{- end -}}

{{/* The rendered configuration file. */}}
{{- define "oci-storage.config" -}}
{{- (include "oci-storage.plan" . | fromYaml).config | toYaml -}}
{{- end -}}
