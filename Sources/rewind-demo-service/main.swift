// rewind-demo-service: a small HTTP service whose behaviour its app.yaml
// sets (through args or environment), for the demo and the tests.
//
//   GET /         work: 200, or 500 for a share of requests (--fail-rate), or
//                 for all while --fail-file exists
//   GET /health   200 "ok", or 500 (--health fail, or while --health-fail-file exists)
//   GET /metrics  Prometheus text: http_requests_total{app,version,code},
//                 http_request_duration_seconds histogram, demo_build_info
//
// Options (each also as an environment variable, e.g. DEMO_FAIL_RATE):
//   --name NAME            app label (default $REWIND_APP, else "demo")
//   --port N               port (default $PORT, else 8080)
//   --address A            IPv4 address to listen on (default 127.0.0.1; 0.0.0.0 in a container)
//   --fail-rate R          share of / requests that fail, 0...1
//   --health ok|fail
//   --health-fail-file P   /health fails while file P exists
//   --fail-file P          / fails while file P exists
//   --crash-after D        exit with status 1 after D (e.g. 2s)
//   --ready-after D        /health fails for the first D after start (a slow start)
//   --latency D            delay added to every / request

import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

struct UsageError: Error {
    let message: String
}

struct Settings {
    var name = "demo"
    var version = "dev"
    var port = 8080
    var failRate = 0.0
    var healthFails = false
    var healthFailFile: String?
    var failFile: String?
    var crashAfterMilliseconds: Int64?
    var latencyMilliseconds: Int64 = 0
    var readyAfterMilliseconds: Int64 = 0
    var address = "127.0.0.1"

    static func parse(_ arguments: [String], environment: [String: String]) -> Result<Settings, UsageError> {
        var s = Settings()
        var values: [String: String] = [:]
        for key in ["name", "port", "address", "fail-rate", "health", "health-fail-file", "fail-file", "crash-after", "latency", "ready-after"] {
            let envKey = "DEMO_" + key.uppercased().replacing("-", with: "_")
            if let value = environment[envKey] { values[key] = value }
        }
        if let app = environment["REWIND_APP"], values["name"] == nil { values["name"] = app }
        if let port = environment["PORT"], values["port"] == nil { values["port"] = port }
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            guard arg.hasPrefix("--"), i + 1 < arguments.count else { return .failure(UsageError(message: "unexpected argument '\(arg)'; see the comment at the top of main.swift")) }
            values[String(arg.dropFirst(2))] = arguments[i + 1]
            i += 2
        }
        s.version = environment["REWIND_VERSION"] ?? s.version
        for (key, value) in values {
            switch key {
            case "name": s.name = value
            case "port": guard let p = Int(value), (1...65535).contains(p) else { return .failure(UsageError(message: "--port: '\(value)' is not a port")) }; s.port = p
            case "address":
                var parsed = in_addr()
                guard inet_pton(AF_INET, value, &parsed) == 1 else { return .failure(UsageError(message: "--address: '\(value)' is not an IPv4 address")) }
                s.address = value
            case "fail-rate": guard let r = Double(value), (0...1).contains(r) else { return .failure(UsageError(message: "--fail-rate: '\(value)' is not between 0 and 1")) }; s.failRate = r
            case "health": guard value == "ok" || value == "fail" else { return .failure(UsageError(message: "--health: use ok or fail")) }; s.healthFails = value == "fail"
            case "health-fail-file": s.healthFailFile = value
            case "fail-file": s.failFile = value
            case "crash-after": guard let d = milliseconds(value) else { return .failure(UsageError(message: "--crash-after: '\(value)' is not a duration such as 2s")) }; s.crashAfterMilliseconds = d
            case "ready-after": guard let d = milliseconds(value) else { return .failure(UsageError(message: "--ready-after: '\(value)' is not a duration such as 2s")) }; s.readyAfterMilliseconds = d
            case "latency": guard let d = milliseconds(value) else { return .failure(UsageError(message: "--latency: '\(value)' is not a duration such as 50ms")) }; s.latencyMilliseconds = d
            default: return .failure(UsageError(message: "unknown option --\(key)"))
            }
        }
        return .success(s)
    }
}

/// `250ms`, `2s`, `1m` in milliseconds.
func milliseconds(_ text: String) -> Int64? {
    for (unit, factor) in [("ms", 1.0), ("s", 1_000.0), ("m", 60_000.0)] where text.hasSuffix(unit) {
        if let n = Double(text.dropLast(unit.count)), n >= 0 { return Int64(n * factor) }
    }
    return Int64(text)
}

/// Request counters and a latency histogram, in Prometheus text format.
struct Metrics {
    static let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
    var byCode: [Int: Int] = [:]
    var bucketCounts = [Int](repeating: 0, count: Metrics.buckets.count)
    var count = 0
    var sum = 0.0

    mutating func observe(code: Int, seconds: Double) {
        byCode[code, default: 0] += 1
        count += 1
        sum += seconds
        for (i, bound) in Metrics.buckets.enumerated() where seconds <= bound { bucketCounts[i] += 1 }
    }

    func text(_ s: Settings) -> String {
        let app = "app=\"\(s.name)\""
        var lines = ["# HELP http_requests_total Requests to / by status code.", "# TYPE http_requests_total counter"]
        for code in [200, 500] { lines.append("http_requests_total{\(app),version=\"\(s.version)\",code=\"\(code)\"} \(byCode[code] ?? 0)") }
        lines += ["# HELP http_request_duration_seconds Time to answer / requests.", "# TYPE http_request_duration_seconds histogram"]
        for (i, bound) in Metrics.buckets.enumerated() {
            lines.append("http_request_duration_seconds_bucket{\(app),le=\"\(bound)\"} \(bucketCounts[i])")
        }
        lines.append("http_request_duration_seconds_bucket{\(app),le=\"+Inf\"} \(count)")
        lines.append("http_request_duration_seconds_sum{\(app)} \(sum)")
        lines.append("http_request_duration_seconds_count{\(app)} \(count)")
        lines += ["# HELP demo_build_info The version this process runs.", "# TYPE demo_build_info gauge",
                  "demo_build_info{\(app),version=\"\(s.version)\"} 1"]
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The service: one thread, one connection at a time (enough for a demo).
struct Service {
    let settings: Settings
    var metrics = Metrics()
    var served = 0
    let startedAt = Clock.monotonicMilliseconds()

    mutating func respond(to path: String) -> (Int, String, String) {
        switch path {
        case "/health":
            let starting = Clock.monotonicMilliseconds() - startedAt < settings.readyAfterMilliseconds
            let failing = starting || settings.healthFails || settings.healthFailFile.map { access($0, F_OK) == 0 } ?? false
            return failing ? (500, "text/plain", "unhealthy\n") : (200, "text/plain", "ok \(settings.name) \(settings.version)\n")
        case "/metrics":
            return (200, "text/plain; version=0.0.4", metrics.text(settings))
        case "/":
            let start = Clock.monotonicMilliseconds()
            if settings.latencyMilliseconds > 0 { Clock.sleep(milliseconds: settings.latencyMilliseconds) }
            // Deterministic share of failures: request n fails when n * rate crosses an integer.
            let n = Double(served)
            served += 1
            let fails = ((n + 1) * settings.failRate).rounded(.down) > (n * settings.failRate).rounded(.down)
                || settings.failFile.map { access($0, F_OK) == 0 } ?? false
            let code = fails ? 500 : 200
            metrics.observe(code: code, seconds: Double(Clock.monotonicMilliseconds() - start) / 1000)
            return (code, "text/plain", fails ? "failed\n" : "hello from \(settings.name) \(settings.version)\n")
        default:
            return (404, "text/plain", "not found\n")
        }
    }
}

func listen(port: Int, address text: String) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    var yes: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    guard inet_pton(AF_INET, text, &address.sin_addr) == 1 else { close(fd); return nil }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, Glibc.listen(fd, 128) == 0 else { close(fd); return nil }
    return fd
}

/// Reads a request head (up to 8 KiB, 2 s) and returns its path.
func readPath(_ fd: Int32) -> String? {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 2048)
    let deadline = Clock.monotonicMilliseconds() + 2_000
    while data.count < 8192, data.firstRange(of: [13, 10, 13, 10]) == nil {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let left = deadline - Clock.monotonicMilliseconds()
        guard left > 0, poll(&p, 1, Int32(left)) > 0 else { return nil }
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        data += buffer[0..<n]
    }
    let line = String(decoding: data.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
    guard line.count >= 2, line[0] == "GET" else { return nil }
    return String(line[1].prefix { $0 != "?" })
}

func send(_ fd: Int32, _ status: Int, _ type: String, _ body: String) {
    let reason = [200: "OK", 404: "Not Found", 500: "Internal Server Error"][status] ?? "Error"
    let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
    _ = FileIO.writeAll(fd, Array((head + body).utf8)[...])
}

/// Writes a line to standard output, unbuffered.
func say(_ line: String) {
    _ = FileIO.writeAll(1, Array((line + "\n").utf8)[...])
}

let environment = Spawn.currentEnvironment()
switch Settings.parse(Array(CommandLine.arguments.dropFirst()), environment: environment) {
case .failure(let error):
    FileIO.writeAll(2, Array("rewind-demo-service: \(error.message)\n".utf8)[...])
    exit(64)
case .success(let settings):
    signal(SIGPIPE, SIG_IGN)
    // As a container's PID 1, a signal without a handler is ignored: SIGTERM ends the service either way.
    signal(SIGTERM) { _ in _exit(0) }
    guard let server = listen(port: settings.port, address: settings.address) else {
        FileIO.writeAll(2, Array("rewind-demo-service: cannot listen on \(settings.address):\(settings.port): \(String(cString: strerror(errno)))\n".utf8)[...])
        exit(1)
    }
    say("demo service \(settings.name) \(settings.version) listening on \(settings.address):\(settings.port)")
    let crashAt = settings.crashAfterMilliseconds.map { Clock.monotonicMilliseconds() + $0 }
    var service = Service(settings: settings)
    while true {
        if let crashAt, Clock.monotonicMilliseconds() >= crashAt {
            say("crashing, as configured (--crash-after)")
            exit(1)
        }
        var p = pollfd(fd: server, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 50) > 0 else { continue }
        let client = accept(server, nil, nil)
        guard client >= 0 else { continue }
        if let path = readPath(client) {
            let (status, type, body) = service.respond(to: path)
            send(client, status, type, body)
        }
        close(client)
    }
}
