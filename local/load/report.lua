-- Shared by post.lua and get.lua: counts answers by status; at the end, one JSON line with the
-- run's figures (and the first body of an answer that was not 2xx).
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
    sample = ""
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if status >= 300 and sample == "" then
        sample = body
    end
end

function done(summary, latency, requests)
    local counts, first = {}, ""
    for _, t in ipairs(threads) do
        for status, n in pairs(t:get("statuses")) do
            counts[status] = (counts[status] or 0) + n
        end
        if first == "" then first = t:get("sample") end
    end
    local parts = {}
    for status, n in pairs(counts) do
        table.insert(parts, string.format('"%d": %d', status, n))
    end
    local e = summary.errors
    io.write(string.format(
        '{"requests": %d, "seconds": %.3f, "connect_errors": %d, "read_errors": %d, ' ..
        '"write_errors": %d, "timeouts": %d, "non_2xx": %d, ' ..
        '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
        '"statuses": {%s}, "first_failure": %q}\n',
        summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.timeout, e.status,
        latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
        latency.max / 1e3, table.concat(parts, ", "), first))
end
