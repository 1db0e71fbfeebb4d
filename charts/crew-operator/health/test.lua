-- Tests of the Argo CD health checks: `lua5.4 charts/crew-operator/health/test.lua` (also runs under Lua 5.1,
-- the dialect of Argo CD's gopher-lua). Exits non-zero when a case fails.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

-- Runs the health script `name` with the global `obj` set, as Argo CD does.
local function health(name, object)
  local path = dir .. "/" .. name
  local env = setmetatable({ obj = object }, { __index = _G })
  local chunk, err
  if setfenv ~= nil then
    chunk, err = loadfile(path)
    if chunk ~= nil then
      setfenv(chunk, env)
    end
  else
    chunk, err = loadfile(path, "t", env)
  end
  if chunk == nil then
    error("cannot load " .. path .. ": " .. tostring(err))
  end
  return chunk()
end

local function cx(status, generation)
  return {
    apiVersion = "crew.dev/v1alpha1",
    kind = "CrewExecution",
    metadata = { name = "market-report", namespace = "team-a", generation = generation or 1 },
    spec = { image = "busybox", steps = { { name = "research" }, { name = "write" } } },
    status = status,
  }
end

local function progress(display)
  return { percent = 50, completedSteps = 1, totalSteps = 2, display = display }
end

local cases = {
  { "crewexecution.lua", "no status yet", cx(nil), "Progressing",
    "Waiting for the operator to report a status" },
  { "crewexecution.lua", "status without a phase", cx({}), "Progressing",
    "Waiting for the operator to report a status" },
  { "crewexecution.lua", "Pending on a missing queue",
    cx({ phase = "Pending", reason = "QueueNotFound", message = "queue gpu-crews not found" }),
    "Progressing", "queue gpu-crews not found" },
  { "crewexecution.lua", "Queued",
    cx({ phase = "Queued", message = "waiting for a slot in queue gpu-crews (2/2 running)",
      progress = progress("0/2 (0%)") }),
    "Progressing", "waiting for a slot in queue gpu-crews (2/2 running)" },
  { "crewexecution.lua", "Running: message from progress.display",
    cx({ phase = "Running", progress = progress("1/2 (50%)") }), "Progressing", "Running 1/2 (50%)" },
  { "crewexecution.lua", "Running: status.message wins",
    cx({ phase = "Running", message = "step write: attempt 2 of 3", progress = progress("1/2 (50%)") }),
    "Progressing", "step write: attempt 2 of 3" },
  { "crewexecution.lua", "Running without progress", cx({ phase = "Running" }), "Progressing", "Running" },
  { "crewexecution.lua", "Paused",
    cx({ phase = "Paused", reason = "Paused", observedGeneration = 2, progress = progress("1/2 (50%)") }, 2),
    "Suspended", "Paused 1/2 (50%)" },
  { "crewexecution.lua", "Paused, resume not yet observed",
    cx({ phase = "Paused", observedGeneration = 2, progress = progress("1/2 (50%)") }, 3),
    "Progressing", "Waiting for the operator to observe generation 3" },
  { "crewexecution.lua", "Succeeded",
    cx({ phase = "Succeeded", progress = progress("2/2 (100%)") }), "Healthy", "Succeeded 2/2 (100%)" },
  { "crewexecution.lua", "Failed: message = status.message",
    cx({ phase = "Failed", reason = "RetriesExhausted", message = "step write failed after 3 attempts (exit 1)",
      progress = progress("1/2 (50%)") }),
    "Degraded", "step write failed after 3 attempts (exit 1)" },
  { "crewexecution.lua", "Failed without a message: the reason",
    cx({ phase = "Failed", reason = "TimedOut" }), "Degraded", "TimedOut" },
  { "crewexecution.lua", "Cancelled",
    cx({ phase = "Cancelled", message = "cancelled by spec.cancel" }), "Degraded", "cancelled by spec.cancel" },
  { "crewexecution.lua", "Cancelled without a message", cx({ phase = "Cancelled" }), "Degraded", "Cancelled" },
  { "crewexecution.lua", "unknown phase", cx({ phase = "Exploded" }), "Unknown", "Unknown phase Exploded" },
  { "crewqueue.lua", "queue without status",
    { kind = "CrewQueue", metadata = { name = "gpu-crews" }, spec = { maxRunning = 2 } },
    "Progressing", "Waiting for the operator to report the queue's status" },
  { "crewqueue.lua", "queue with status",
    { kind = "CrewQueue", metadata = { name = "gpu-crews" }, spec = { maxRunning = 2 },
      status = { running = 2, queued = 5, succeeded = 41, failed = 3, successRate = 93 } },
    "Healthy", "running 2/2, queued 5, succeeded 41, failed 3" },
  { "crewexecution.lua", "numbers decoded from JSON as floats",
    cx({ phase = "Paused", observedGeneration = 2.0 }, 3.0),
    "Progressing", "Waiting for the operator to observe generation 3" },
  { "crewqueue.lua", "numbers decoded from JSON as floats",
    { kind = "CrewQueue", metadata = { name = "gpu-crews" }, spec = { maxRunning = 2.0 },
      status = { running = 1.0, queued = 0.0, succeeded = 7.0, failed = 1.0 } },
    "Healthy", "running 1/2, queued 0, succeeded 7, failed 1" },
  { "crewqueue.lua", "queue with an empty status",
    { kind = "CrewQueue", metadata = { name = "idle" }, spec = { maxRunning = 1 }, status = {} },
    "Healthy", "running 0/1, queued 0, succeeded 0, failed 0" },
}

local passed, failed = 0, 0
for _, case in ipairs(cases) do
  local script, name, object, want_status, want_message = case[1], case[2], case[3], case[4], case[5]
  local ok, result = pcall(health, script, object)
  if not ok then
    failed = failed + 1
    print("FAIL " .. script .. ": " .. name .. ": error: " .. tostring(result))
  elseif type(result) ~= "table" or result.status ~= want_status or result.message ~= want_message then
    failed = failed + 1
    local got = type(result) == "table" and (tostring(result.status) .. " / " .. tostring(result.message))
      or tostring(result)
    print("FAIL " .. script .. ": " .. name .. ": want " .. want_status .. " / " .. want_message .. ", got " .. got)
  else
    passed = passed + 1
    print("ok   " .. script .. ": " .. name .. " -> " .. result.status)
  end
end
print(string.format("%s: %d passed, %d failed", _VERSION, passed, failed))
if failed > 0 then
  os.exit(1)
end
