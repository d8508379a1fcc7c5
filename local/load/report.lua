-- Shared by post.lua and get.lua: at the end, one JSON line with the run's figures.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests": %d, "seconds": %.3f, "connect_errors": %d, "read_errors": %d, ' ..
        '"write_errors": %d, "timeouts": %d, "non_2xx": %d, ' ..
        '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
        summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.timeout, e.status,
        latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
        latency.max / 1e3))
end
