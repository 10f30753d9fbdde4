import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// An answer with its headers.
public struct WebAnswer: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    /// The body (for a download: only a refusal's first 64 KiB; the rest went to the sink).
    public let body: [UInt8]

    /// The first value of a header (names compare without case).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

extension WebClient {
    /// Sends a request with `headers` and reads the answer's body, which
    /// may be at most `limit` bytes (more fails the request).
    public func exchange(_ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, limit: Int, timeoutMilliseconds: Int64) throws -> WebAnswer {
        var collected: [UInt8] = []
        let gathered = Mutex<[UInt8]>([])
        let answer = try stream(method, url, headers: headers, body: body, limit: Int64(limit), timeoutMilliseconds: timeoutMilliseconds) { buffer in
            gathered.withLock { $0 += buffer.readableBytesView }
        }
        collected = gathered.withLock { $0 }
        // Only a 200's body goes to the sink; any other status keeps its own (up to 64 KiB).
        return WebAnswer(status: answer.status, headers: answer.headers, body: answer.status == 200 ? collected : answer.body)
    }

    /// Sends a request and hands a 200 answer's body to `sink` piece by
    /// piece as it arrives (at most `limit` bytes in all; more fails the
    /// request). Any other status keeps up to 64 KiB of its body in the answer.
    public func stream(_ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, limit: Int64, timeoutMilliseconds: Int64,
                       sink: @escaping @Sendable (ByteBuffer) throws -> Void) throws -> WebAnswer {
        let described = WebURL(url)?.description ?? (url.hasPrefix("http+unix://") ? "the unix socket" : "the URL")
        let request: HTTPClient.Request
        do {
            var fields = HTTPHeaders()
            fields.add(name: "User-Agent", value: "rewind")
            for (name, value) in headers { fields.add(name: name, value: value) }
            if body != nil, !fields.contains(name: "Content-Type") { fields.add(name: "Content-Type", value: "application/json") }
            request = try HTTPClient.Request(url: url, method: HTTPMethod(rawValue: method), headers: fields, body: body.map { .bytes($0) })
        } catch {
            throw WebError("\(method) \(described): not a URL Rewind can send to")
        }
        let delegate = StreamingDelegate(limit: limit, sink: sink)
        do {
            return try client.execute(request: request, delegate: delegate, deadline: .now() + .milliseconds(timeoutMilliseconds)).wait()
        } catch let error as WebError {
            throw error
        } catch {
            throw WebError("\(method) \(described): \(Self.describe(error, timeout: timeoutMilliseconds, url: WebURL(url) ?? WebURL("http://unknown")!))")
        }
    }
}

/// Receives an answer on the client's event loop: the head, then the body
/// to the sink (200) or kept (anything else), bounded by `limit`.
final class StreamingDelegate: HTTPClientResponseDelegate, Sendable {
    typealias Response = WebAnswer

    private struct Received {
        var status = 0
        var headers: [(name: String, value: String)] = []
        var bytes: Int64 = 0
        var kept: [UInt8] = []
    }

    private let limit: Int64
    private let sink: @Sendable (ByteBuffer) throws -> Void
    private let received = Mutex(Received())

    init(limit: Int64, sink: @escaping @Sendable (ByteBuffer) throws -> Void) {
        self.limit = limit
        self.sink = sink
    }

    func didReceiveHead(task: HTTPClient.Task<WebAnswer>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        received.withLock { state in
            state.status = Int(head.status.code)
            state.headers = head.headers.map { ($0.name, $0.value) }
        }
        if let length = head.headers.first(name: "Content-Length").flatMap(Int64.init), length > limit {
            return task.eventLoop.makeFailedFuture(WebError("the answer is \(length) bytes, over the limit of \(limit)"))
        }
        return task.eventLoop.makeSucceededFuture(())
    }

    func didReceiveBodyPart(task: HTTPClient.Task<WebAnswer>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let (total, status) = received.withLock { state in
            state.bytes += Int64(buffer.readableBytes)
            if state.status != 200 && state.kept.count < 65_536 { state.kept += buffer.readableBytesView.prefix(65_536 - state.kept.count) }
            return (state.bytes, state.status)
        }
        if total > limit { return task.eventLoop.makeFailedFuture(WebError("the answer is over the limit of \(limit) bytes")) }
        guard status == 200 else { return task.eventLoop.makeSucceededFuture(()) }
        do {
            try sink(buffer)
            return task.eventLoop.makeSucceededFuture(())
        } catch {
            return task.eventLoop.makeFailedFuture(error)
        }
    }

    func didFinishRequest(task: HTTPClient.Task<WebAnswer>) throws -> WebAnswer {
        received.withLock { WebAnswer(status: $0.status, headers: $0.headers, body: $0.kept) }
    }
}
