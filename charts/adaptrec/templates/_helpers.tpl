{{/*
Name of the chart, unless nameOverride replaces it.
*/}}
{{- define "adaptrec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: fullnameOverride, or the release name when it
already contains the chart name, or <release>-<chart>. Truncated to leave room
for the longest suffix ("-training").
*/}}
{{- define "adaptrec.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "adaptrec.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "adaptrec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels of the operator Pod.
*/}}
{{- define "adaptrec.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "adaptrec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "adaptrec.operatorServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "adaptrec.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the ServiceAccount that tuning Jobs run as.
*/}}
{{- define "adaptrec.trainingServiceAccountName" -}}
{{- default (printf "%s-training" (include "adaptrec.fullname" .)) .Values.training.serviceAccount.name }}
{{- end }}

{{/*
Namespaced API rights of the operator. They become a ClusterRole when the
operator watches every namespace, and a Role in watchNamespace otherwise.
*/}}
{{- define "adaptrec.namespacedRules" -}}
# Reconcile policies; kopf patches status and adds a finalizer.
- apiGroups: ["adaptrec.io"]
  resources: ["hyperparampolicies"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["adaptrec.io"]
  resources: ["hyperparampolicies/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["adaptrec.io"]
  resources: ["hyperparampolicies/finalizers"]
  verbs: ["update"]
# Run tuning Jobs.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "delete"]
# Read a finished trainer Pod's termination message (the training result).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Create the headless Service that torchrun pods of a multi-replica training Job
# use to find each other; the policy owns it, so garbage collection removes it.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create"]
# Write the rollout file of the userHash strategy.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
# Route canary traffic with the kserve strategy.
- apiGroups: ["serving.kserve.io"]
  resources: ["inferenceservices"]
  verbs: ["get", "list", "watch", "patch"]
# kopf posts Kubernetes Events about each policy.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
