{{/* Chart name, truncated to a DNS label. */}}
{{- define "crew-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "crew-operator.fullname" -}}
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

{{- define "crew-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "crew-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crew-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "crew-operator.labels" -}}
helm.sh/chart: {{ include "crew-operator.chart" . }}
{{ include "crew-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "crew-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crew-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false (an existing ServiceAccount used by nothing else: the chart binds the operator's role to it)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "crew-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when leader election is on (enabled: true, or "auto" with replicaCount > 1), else "". */}}
{{- define "crew-operator.leaderElection" -}}
{{- $on := .Values.leaderElection.enabled }}
{{- if eq (toString $on) "auto" }}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- else if $on }}true
{{- end }}
{{- end }}

{{/*
The Deployment's update strategy, so that one operator writes during an upgrade:
- leader election on: RollingUpdate through a warm standby (maxSurge 1, maxUnavailable 0). The new pod waits for
  the Lease, which the old one releases on SIGTERM.
- off: Recreate. Nothing else stops two operators from reconciling side by side, so the old pod is gone before the
  new one starts. One exception, for one upgrade: a live Deployment on RollingUpdate with rollingUpdate fields the
  chart did not set (the API server's defaults, on a release installed before the chart set a strategy) gets
  RollingUpdate with maxSurge 0 and maxUnavailable 1. The API server refuses Recreate next to rollingUpdate
  fields, and a server-side apply cannot remove defaulted ones (no field manager owns them). That upgrade already
  stops the old pod before it creates the new one and makes the chart own the fields; the next upgrade switches to
  Recreate and drops them. `lookup` sees the live object only in `helm install` / `helm upgrade` (`helm template`
  renders Recreate).
*/}}
{{- define "crew-operator.strategy" -}}
{{- if include "crew-operator.leaderElection" . -}}
type: RollingUpdate
rollingUpdate:
  maxSurge: 1
  maxUnavailable: 0
{{- else -}}
{{- $live := lookup "apps/v1" "Deployment" .Release.Namespace (include "crew-operator.fullname" .) -}}
{{- $rolling := dig "spec" "strategy" "rollingUpdate" dict $live -}}
{{- $ours := has (printf "%v/%v" (dig "maxSurge" "" $rolling) (dig "maxUnavailable" "" $rolling)) (list "0/1" "1/0") -}}
{{- if and (eq (dig "spec" "strategy" "type" "" $live) "RollingUpdate") (not $ours) -}}
type: RollingUpdate
rollingUpdate:
  maxSurge: 0
  maxUnavailable: 1
{{- else -}}
type: Recreate
rollingUpdate: null
{{- end -}}
{{- end -}}
{{- end }}

{{/* "true" when the PodDisruptionBudget is rendered (enabled: true, or "auto" with replicaCount > 1), else "". */}}
{{- define "crew-operator.pdb" -}}
{{- $on := .Values.podDisruptionBudget.enabled }}
{{- if eq (toString $on) "auto" }}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- else if $on }}true
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches: validated list (empty = all namespaces). The operator accepts a single
--namespace today, so more than one fails the render.
*/}}
{{- define "crew-operator.watchNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces | default list }}
{{- if gt (len $namespaces) 1 }}
{{- fail (printf "watchNamespaces lists %d namespaces (%s), but the operator watches either all namespaces or exactly one (--namespace) for now: list at most one, or leave it empty for all namespaces" (len $namespaces) (join ", " $namespaces)) }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{/* The RBAC rules of the operator (shared by the ClusterRole and the per-namespace Roles). */}}
{{- define "crew-operator.rules" -}}
# CrewExecutions: watched; deleted when ttlSecondsAfterFinished expires; patched (metadata only) to add and
# remove the crew.dev/retain finalizer while a CrewSink has events of them to deliver.
- apiGroups: ["crew.dev"]
  resources: ["crewexecutions"]
  verbs: ["get", "list", "watch", "delete", "patch"]
# Status is written with server-side apply.
- apiGroups: ["crew.dev"]
  resources: ["crewexecutions/status"]
  verbs: ["get", "patch", "update"]
# Worker Jobs and ConfigMaps carry an ownerReference with blockOwnerDeletion: true to their execution, which the
# OwnerReferencesPermissionEnforcement admission plugin only allows with update on the owner's finalizers.
- apiGroups: ["crew.dev"]
  resources: ["crewexecutions/finalizers"]
  verbs: ["update"]
- apiGroups: ["crew.dev"]
  resources: ["crewqueues"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["crew.dev"]
  resources: ["crewqueues/status"]
  verbs: ["get", "patch", "update"]
# CrewSinks: watched; their status (counts, the delivery position) written with server-side apply.
- apiGroups: ["crew.dev"]
  resources: ["crewsinks"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["crew.dev"]
  resources: ["crewsinks/status"]
  verbs: ["get", "patch", "update"]
{{- if .Values.sinks.credentials }}
# Sink credentials: the operator watches only Secrets labelled crew.dev/sink-credentials=true (a label selector;
# RBAC cannot say so, the operator's one watch does). sinks.credentials=false: no Secret is read at all.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
{{- end }}
# One worker Job per step attempt; deleted on cancel and timeout; annotated with the result its worker posted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# The <execution>-crew-<uid hash> ConfigMap (spec.crew / spec.inputs) is only ever created. A step's result
# ConfigMap (<execution>-result-<hash>, from POST /v1/result) is written with server-side apply. No ConfigMap is
# ever read, but by the archive.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "patch"]
{{- if .Values.archive.enabled }}
# The archive reads each posted result's ConfigMap once, to store it with its run.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end }}
# The ServiceAccount a worker runs as is read (its metadata) to check that its namespace's owner opened it, and
# the Secrets it lists, to workers. Those Secrets themselves are never read.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
# Worker pods are only read (termination messages, exit codes).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Why a Job has had no pod for a while: the Job controller's FailedCreate Events about Jobs, watched (a field
# selector; nothing else of the events is read).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list", "watch"]
# One Event per transition, created and never updated.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* The URL workers post progress to. */}}
{{- define "crew-operator.progressUrl" -}}
{{- if .Values.progress.url -}}
{{- .Values.progress.url -}}
{{- else -}}
{{- printf "http://%s-progress.%s.svc:%d/v1/progress" (include "crew-operator.fullname" .) .Release.Namespace (int .Values.progress.port) -}}
{{- end -}}
{{- end -}}

{{/* The dashboard's pods: a name of their own, so no selector of the operator's (Deployment, Service, PDB,
NetworkPolicy) picks them up. */}}
{{- define "crew-operator.dashboardSelectorLabels" -}}
app.kubernetes.io/name: {{ include "crew-operator.name" . }}-dashboard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "crew-operator.dashboardLabels" -}}
helm.sh/chart: {{ include "crew-operator.chart" . }}
{{ include "crew-operator.dashboardSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: dashboard
{{- end }}
