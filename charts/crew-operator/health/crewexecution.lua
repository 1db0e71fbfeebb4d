-- Argo CD health check for crew.dev/CrewExecution
-- (resource.customizations.health.crew.dev_CrewExecution in argocd-cm).
-- Receives the object as `obj`; returns {status = ..., message = ...}. Written for Lua 5.1 (Argo CD's gopher-lua).
local hs = {}

local function text(value)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local phase = status.phase
local display = nil
if status.progress ~= nil then
  display = text(status.progress.display)
end
-- "Running 1/2 (50%)": the phase with the progress column, when there is one.
local summary = phase
if display ~= nil then
  summary = phase .. " " .. display
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = text(status.message) or summary
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = text(status.message) or text(status.reason) or summary
elseif phase == "Cancelled" then
  hs.status = "Degraded"
  hs.message = text(status.message) or "Cancelled"
elseif phase == "Paused" then
  local generation = obj.metadata and obj.metadata.generation
  local observed = status.observedGeneration
  if generation ~= nil and observed ~= nil and observed < generation then
    -- e.g. spec.suspend was just cleared: resuming, not suspended.
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to observe generation " .. string.format("%d", generation)
  else
    hs.status = "Suspended"
    hs.message = text(status.message) or summary
  end
elseif phase == "Pending" or phase == "Queued" or phase == "Running" then
  hs.status = "Progressing"
  hs.message = text(status.message) or summary
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
