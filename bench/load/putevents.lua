-- wrk script: PutEvents with pre-built bodies (bench/load/run.sh).
--
--   ENTRIES=10|1   entries per call (default 10)
--   DETAIL_BYTES   approximate size of each entry's Detail (default 1000)
--   KINDS          number of rules / kinds (default 10): entry j of body i has
--                  kind "k<(i+j) % KINDS>", matched by exactly one rule
--   CHECK=0        do not look at the answers (no Lua response hook)
--
-- Every answer must be 200 with "FailedEntryCount":0; done() prints the
-- counts of answers that are not, and a summary line for run.sh:
--   RESULT calls=N calls_per_s=X events_per_s=Y p50_ms=A p99_ms=B non200=C failed=D errors=E

local entries = tonumber(os.getenv("ENTRIES") or "10")
local detail_bytes = tonumber(os.getenv("DETAIL_BYTES") or "1000")
local kinds = tonumber(os.getenv("KINDS") or "10")
local check = os.getenv("CHECK") ~= "0"

local NBODIES = 64
local requests = {}
local counter = 0
local threads = {}

local function detail(kind, i)
    local head = string.format('{\\"kind\\":\\"%s\\",\\"seq\\":%d,\\"pad\\":\\"', kind, i)
    local tail = '\\"}'
    local pad = detail_bytes - 40
    if pad < 0 then pad = 0 end
    return head .. string.rep("x", pad) .. tail
end

local function body(i)
    local parts = {}
    for j = 0, entries - 1 do
        local kind = "k" .. tostring((i + j) % kinds)
        parts[#parts + 1] = string.format(
            '{"Source":"bench.load","DetailType":"load","Detail":"%s"}', detail(kind, i * entries + j))
    end
    return '{"Entries":[' .. table.concat(parts, ",") .. "]}"
end

function setup(thread)
    thread:set("id", #threads)
    threads[#threads + 1] = thread
end

function init(args)
    non200 = 0
    failed = 0
    answers = 0
    local headers = {
        ["X-Amz-Target"] = "AWSEvents.PutEvents",
        ["Content-Type"] = "application/x-amz-json-1.1",
    }
    for i = 1, NBODIES do
        requests[i] = wrk.format("POST", "/", headers, body(i + (id or 0) * NBODIES))
    end
    counter = 0
end

function request()
    counter = counter + 1
    if counter > NBODIES then counter = 1 end
    return requests[counter]
end

if check then
    function response(status, headers, resp_body)
        answers = answers + 1
        if status ~= 200 then
            non200 = non200 + 1
            if non200 <= 3 then
                io.stderr:write("non-200 answer " .. status .. ": " .. string.sub(resp_body or "", 1, 300) .. "\n")
            end
        elseif not string.find(resp_body, '"FailedEntryCount":0', 1, true) then
            failed = failed + 1
            if failed <= 3 then
                io.stderr:write("failed entries: " .. string.sub(resp_body or "", 1, 300) .. "\n")
            end
        end
    end
end

function done(summary, latency, requests_)
    local n200, nfailed, nanswers = 0, 0, 0
    for _, t in ipairs(threads) do
        n200 = n200 + (t:get("non200") or 0)
        nfailed = nfailed + (t:get("failed") or 0)
        nanswers = nanswers + (t:get("answers") or 0)
    end
    local secs = summary.duration / 1e6
    local calls = summary.requests
    local errs = summary.errors
    local nerr = errs.connect + errs.read + errs.write + errs.status + errs.timeout
    io.write(string.format("checked answers: %d, non-200: %d, with failed entries: %d, socket errors: %d%s\n",
        nanswers, n200, nfailed, nerr, check and "" or " (CHECK=0: answers not checked)"))
    io.write(string.format(
        "RESULT calls=%d calls_per_s=%.0f events_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non200=%d failed=%d errors=%d\n",
        calls, calls / secs, calls * entries / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        latency.max / 1000, check and n200 or errs.status, nfailed, nerr))
end
