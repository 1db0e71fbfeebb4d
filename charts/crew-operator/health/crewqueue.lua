-- Argo CD health check for crew.dev/CrewQueue
-- (resource.customizations.health.crew.dev_CrewQueue in argocd-cm).
-- Receives the object as `obj`; returns {status = ..., message = ...}. Written for Lua 5.1 (Argo CD's gopher-lua).
local hs = {}

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the queue's status"
  return hs
end

local function count(value)
  if value == nil then
    return "0"
  end
  return string.format("%d", value)
end

local max = "?"
if obj.spec ~= nil and obj.spec.maxRunning ~= nil then
  max = count(obj.spec.maxRunning)
end
hs.status = "Healthy"
hs.message = "running " .. count(status.running) .. "/" .. max .. ", queued " .. count(status.queued)
  .. ", succeeded " .. count(status.succeeded) .. ", failed " .. count(status.failed)
return hs
