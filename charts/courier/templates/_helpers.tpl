{{/* The release's full name: the release name, with "courier" unless it says so already. */}}
{{- define "courier.fullname" -}}
{{- if contains "courier" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-courier" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "courier.selectorLabels" -}}
app.kubernetes.io/name: courier
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "courier.labels" -}}
{{ include "courier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "courier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "courier.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "courier.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "courier.leaderElection" -}}
{{- and (eq .Values.mode "deployment") (gt (int .Values.replicas) 1) -}}
{{- end -}}

{{/* Where manifests come from, as courier's arguments. */}}
{{- define "courier.source" -}}
{{- if .Values.manifests.fromCluster -}}
- --from-cluster
{{- else -}}
- /manifests
{{- end -}}
{{- end -}}

{{/* courier.dev/instance on every target: `default`, as the CLI's, so a target first
written by `courier apply` is the chart's too. */}}
{{- define "courier.instance" -}}
{{- default "default" .Values.instance -}}
{{- end -}}

{{- define "courier.commonArgs" -}}
- --instance
- {{ include "courier.instance" . | quote }}
- --max-deletions
- {{ .Values.maxDeletions | quote }}
- --concurrency
- {{ .Values.concurrency | quote }}
- --log-format
- {{ .Values.logFormat }}
- --log-level
- {{ .Values.logLevel }}
{{- with .Values.clusters.fromSecretsNamespace }}
- --clusters-from-secrets
- {{ . | quote }}
{{- end }}
{{- if .Values.adoptExistingTargets }}
- --adopt-existing-targets
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The pod spec both modes share, but for the container's args and probes. */}}
{{- define "courier.podMeta" -}}
labels:
  {{- include "courier.selectorLabels" . | nindent 2 }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "courier.podExtras" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "courier.volumes" -}}
{{- if not .Values.manifests.fromCluster }}
volumes:
  - name: manifests
    configMap:
      name: {{ .Values.manifests.configMap.name }}
{{- end }}
{{- end -}}

{{- define "courier.volumeMounts" -}}
{{- if not .Values.manifests.fromCluster }}
volumeMounts:
  - name: manifests
    mountPath: /manifests
    readOnly: true
{{- end }}
{{- end -}}
