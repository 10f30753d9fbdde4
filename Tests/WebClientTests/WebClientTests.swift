import Foundation
import SystemSupport
import Testing
import TestSupport
@testable import WebClient

/// Rewind's HTTP client against nginx with TLS and a private certificate authority.
@Suite(.serialized) struct WebClientTests {
    @Test func urlsWithHostNamesParseAndDescribeThemselvesWithoutTheirPath() {
        let url = WebURL("https://hooks.slack.com/services/T000/B000/secret")
        #expect(url?.host == "hooks.slack.com" && url?.port == 443 && url?.secure == true)
        #expect(url?.description == "https://hooks.slack.com:443", "the path may be the secret")
        #expect(WebURL("http://prometheus:9090")?.port == 9090)
        #expect(WebURL("http://[::1]:9090/x")?.host == "::1")
        for bad in ["ftp://x", "http://", "http://user:pw@host/", "https://host:99999/", "prometheus:9090"] { #expect(WebURL(bad) == nil, "\(bad)") }
    }

    @Test func httpsWithItsAuthorityRedirectsAndTheSystemResolver() throws {
        try withTemporaryDirectory { dir in
            let proxy = try TLSProxy(directory: dir)
            let client = try WebClient.shared(caFile: proxy.caFile)
            // `localhost` goes through the system resolver like any host name.
            let ok = try client.request("GET", try #require(WebURL(proxy.url("/ok"))), timeoutMilliseconds: 5_000)
            #expect(ok.status == 200 && String(decoding: ok.body, as: UTF8.self) == "fine")
            let redirected = try client.request("GET", try #require(WebURL(proxy.url("/redirect"))), timeoutMilliseconds: 5_000)
            #expect(redirected.status == 200 && String(decoding: redirected.body, as: UTF8.self) == "fine")
            // Without the authority: refused, with what to do.
            do {
                _ = try WebClient.shared().request("GET", try #require(WebURL(proxy.url("/ok"))), timeoutMilliseconds: 5_000)
                Issue.record("an unknown certificate authority was trusted")
            } catch {
                #expect("\(error)".contains("TLS failed") && "\(error)".contains("--ca-file") && !"\(error)".contains("/ok"), "\(error)")
            }
        }
    }

    @Test func aServerThatStallsHitsTheTimeout() throws {
        // Accepts connections and never answers.
        let port = try #require(Loopback.freeAppPort())
        let stall = try Spawn.start(SpawnOptions(program: "/usr/bin/python3", arguments: ["-c", """
            import socket, time
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", \(port))); s.listen(8)
            held = []
            while True:
                c, _ = s.accept(); held.append(c)
            """], environment: ProcessInfo.processInfo.environment, outputFile: "/dev/null"))
        defer { _ = Spawn.stop(stall, graceMilliseconds: 1_000) }
        try waitFor("the stalling server listens", timeout: 10) { Loopback.canConnect(port: port) }
        do {
            _ = try WebClient.shared().request("GET", try #require(WebURL("http://localhost:\(port)/api/v1/query")), timeoutMilliseconds: 500)
            Issue.record("a stalled server answered")
        } catch {
            #expect("\(error)".contains("timed out"), "\(error)")
        }
    }

    @Test func aCAFileThatIsNotPEMIsAClearError() throws {
        try withTemporaryDirectory { dir in
            try writeFile(dir + "/bad.pem", "not a certificate\n")
            do {
                _ = try WebClient.shared(caFile: dir + "/bad.pem")
                Issue.record("a bad CA file was accepted")
            } catch {
                #expect("\(error)".contains("cannot read the certificate authorities in \(dir)/bad.pem"), "\(error)")
            }
        }
    }
}

/// Prometheus or a notification target that never answers, or hangs up:
/// an error within the request's deadline, never a death or a hang.
@Suite struct WebClientFaultTests {
    @Test func aPeerThatNeverAnswersTimesOut() throws {
        let host = try FaultyHost(.silent)
        defer { host.stop() }
        let url = try #require(WebURL("http://127.0.0.1:\(host.port)/api/v1/query"))
        let error = try #require(throws: WebError.self) { try WebClient.shared().request("GET", url, timeoutMilliseconds: 300) }
        #expect("\(error)".contains("timed out"), "\(error)")
    }

    @Test func aPeerThatHangsUpIsAnError() throws {
        let host = try FaultyHost(.hangsUp)
        defer { host.stop() }
        let url = try #require(WebURL("http://127.0.0.1:\(host.port)/hook"))
        for _ in 0..<10 {
            #expect(throws: WebError.self) { try WebClient.shared().request("POST", url, body: Array(repeating: 65, count: 256 * 1024), timeoutMilliseconds: 2_000) }
        }
    }
}
