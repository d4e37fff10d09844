{{/* Names ------------------------------------------------------------------------------ */}}
{{- define "retention-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "retention-worker.fullname" -}}
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

{{- define "retention-worker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "retention-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "retention-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "retention-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "retention-worker.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The ConfigMap that holds the configuration files, and the paths it holds. */}}
{{- define "retention-worker.configMapName" -}}
{{- .Values.config.existingConfigMap | default (printf "%s-config" (include "retention-worker.fullname" .)) }}
{{- end }}

{{- define "retention-worker.configPaths" -}}
{{- if .Values.config.existingConfigMap }}
{{- toJson .Values.config.existingConfigMapFiles }}
{{- else }}
{{- toJson (keys .Values.config.files | sortAlpha) }}
{{- end }}
{{- end }}

{{/* The products that get a CronJob: those of the configuration plus cronjobs.products. */}}
{{- define "retention-worker.cronProducts" -}}
{{- $products := dict }}
{{- range $path := include "retention-worker.configPaths" . | fromJsonArray }}
{{- if and (hasPrefix "products/" $path) (hasSuffix ".yaml" $path) }}
{{- $_ := set $products (trimSuffix ".yaml" (trimPrefix "products/" $path)) dict }}
{{- end }}
{{- end }}
{{- range $name, $spec := .Values.cronjobs.products }}
{{- $_ := set $products $name ($spec | default dict) }}
{{- end }}
{{- toJson $products }}
{{- end }}

{{/* Restricted Pod Security Standard: pod and container security contexts. */}}
{{- define "retention-worker.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "retention-worker.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Environment of every worker container: settings, secret files, extra variables. */}}
{{- define "retention-worker.env" -}}
- name: RETENTION_CONFIG_DIR
  value: /etc/retention-worker/config
- name: RETENTION_HTTP_HOST
  value: "0.0.0.0"
- name: RETENTION_HTTP_PORT
  value: {{ .Values.settings.httpPort | quote }}
- name: RETENTION_LOG_LEVEL
  value: {{ .Values.settings.logLevel | quote }}
- name: RETENTION_LOG_FORMAT
  value: {{ .Values.settings.logFormat | quote }}
- name: RETENTION_STOP_GRACE_SECONDS
  value: {{ .Values.settings.stopGraceSeconds | quote }}
{{- range $name, $key := .Values.secrets.keys }}
- name: {{ $name }}_FILE
  value: /etc/retention-worker/secrets/{{ $key }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Volumes: configuration, secrets, and the writable emptyDirs of a read-only root. */}}
{{- define "retention-worker.volumes" -}}
{{ include "retention-worker.configVolume" . | trim }}
{{ include "retention-worker.baseVolumes" . | trim }}
{{- end }}

{{- define "retention-worker.configVolume" -}}
- name: config
  configMap:
    name: {{ include "retention-worker.configMapName" . }}
    items:
    {{- range $path := include "retention-worker.configPaths" . | fromJsonArray }}
      - key: {{ $path | replace "/" "." }}
        path: {{ $path }}
    {{- else }}
      []
    {{- end }}
{{- end }}

{{/* Secrets and emptyDirs: all the migrate hook needs (it runs before the ConfigMap exists). */}}
{{- define "retention-worker.baseVolumes" -}}
{{- if .Values.secrets.keys }}
- name: secrets
  secret:
    secretName: {{ required "secrets.existingSecret: name the Secret that holds the keys of secrets.keys" .Values.secrets.existingSecret }}
    defaultMode: 0440
    items:
    {{- range $name, $key := .Values.secrets.keys }}
      - key: {{ $key }}
        path: {{ $key }}
    {{- end }}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataSizeLimit }}
{{- end }}

{{- define "retention-worker.volumeMounts" -}}
- name: config
  mountPath: /etc/retention-worker/config
  readOnly: true
{{ include "retention-worker.baseVolumeMounts" . | trim }}
{{- end }}

{{- define "retention-worker.baseVolumeMounts" -}}
{{- if .Values.secrets.keys }}
- name: secrets
  mountPath: /etc/retention-worker/secrets
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/retention-worker
{{- end }}

{{/* Pod fields shared by the Deployment, the migrate Job and the CronJobs. */}}
{{- define "retention-worker.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
securityContext:
  {{- include "retention-worker.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Rolls the pods when the chart's configuration changes. */}}
{{- define "retention-worker.checksums" -}}
checksum/config: {{ toJson .Values.config | sha256sum }}
checksum/secret-keys: {{ toJson .Values.secrets | sha256sum }}
{{- end }}
