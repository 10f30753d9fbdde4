import Foundation
import Testing
import TestSupport
@testable import GitKit

/// libgit2 1.5 has no server timeouts; Rewind's socket stream bounds every
/// transfer. Each test stands a misbehaving host on loopback in for the
/// git host and checks that the call ends with the right error instead of
/// hanging or killing the process.
@Suite(.serialized) struct DeadlineTests {
    static let short = NetworkDeadlines(connectMilliseconds: 500, idleMilliseconds: 400)

    func hooks(_ deadlines: NetworkDeadlines = short) -> TransportHooks {
        var hooks = TransportHooks()
        hooks.deadlines = deadlines
        return hooks
    }

    /// For ssh, libssh2 reads the socket itself: the watchdog shuts the
    /// connection down once no byte has moved for the idle deadline.
    @Test(arguments: ["git", "http", "ssh"])
    func aHostThatNeverAnswersEndsAtTheIdleDeadline(scheme: String) throws {
        let host = try FaultyHost(.silent)
        defer { host.stop() }
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            let url = "\(scheme)://127.0.0.1:\(host.port)/deploy.git"
            let error = try #require(throws: GitError.self) {
                try repo.fetch(url: url, refspecs: ["+refs/heads/*:refs/rewind/remote/heads/*"], hooks: hooks())
            }
            #expect(error.code == .timedOut, "\(error)")
            #expect(error.message.contains("idle deadline"), "\(error.message)")
            if scheme != "ssh" { #expect(error.message.contains("sent nothing for 0.4 s"), "\(error.message)") }
            #expect(host.connections == 1)
        }
        #expect(NetworkDeadlines.openStreams == 0)
    }

    @Test func aConnectionThatNeverCompletesEndsAtTheConnectDeadline() throws {
        let host = try FaultyHost(.blackHole)
        defer { host.stop() }
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            let error = try #require(throws: GitError.self) {
                try repo.fetch(url: "git://127.0.0.1:\(host.port)/deploy.git", refspecs: ["+refs/heads/*:refs/x/*"], hooks: hooks())
            }
            #expect(error.code == .timedOut, "\(error)")
            #expect(error.message.contains("connect deadline"), "\(error.message)")
        }
    }

    /// A push to a host that resets the connection is an error, not SIGPIPE
    /// (which would end this very test process).
    @Test(arguments: ["git", "http"])
    func aHostThatHangsUpIsAnErrorNotADeath(scheme: String) throws {
        let host = try FaultyHost(.hangsUp)
        defer { host.stop() }
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            let url = "\(scheme)://127.0.0.1:\(host.port)/deploy.git"
            for _ in 0..<20 {
                #expect(throws: GitError.self) { try repo.push(url: url, refspecs: ["refs/heads/main:refs/heads/main"], hooks: hooks()) }
                #expect(throws: GitError.self) { try repo.fetch(url: url, refspecs: ["+refs/heads/*:refs/x/*"], hooks: hooks()) }
            }
            #expect(host.connections >= 40)
        }
        #expect(NetworkDeadlines.openStreams == 0)
    }

    /// The deadline is for silence, not for the whole transfer: a fetch
    /// from a host that answers works with a short idle deadline.
    @Test func aHostThatAnswersIsUnaffected() throws {
        try withFixtureRepo("three-apps") { fixture in
            let served = fixture.path + "-served"
            try TestSupport.git(["clone", "-q", "--bare", fixture.path, served + "/deploy.git"], in: "/")
            defer { try? FileManager.default.removeItem(atPath: served) }
            let daemon = try GitDaemon(base: served)
            defer { daemon.stop() }
            let repo = try Repository.open(fixture.path)
            try repo.fetch(url: daemon.url("deploy.git"), refspecs: ["+refs/heads/*:refs/served/*"], hooks: hooks())
            #expect(try repo.referenceTarget("refs/served/main") == repo.referenceTarget("refs/heads/main"))
        }
    }
}
