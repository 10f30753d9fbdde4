import DeployModel
import GitKit
import Rollback
import SystemSupport

/// What the audit knows whatever the query: per release its time, kind,
/// failure, health and recovery; every rollback row and escalation of the
/// history; the guards' refusals; the warnings. Computed from `AuditFacts`
/// once per state of the branch and the notes, and kept in the git
/// directory (`rewind/audit-*`), so that an audit of an unchanged history
/// reads one small file instead of every note. Deleting it is always safe.
public struct AuditDigest: Sendable {
    public let branch: String
    public let tip: OID
    public let apps: [String]
    /// Per app (in `apps` order): every release of the history, oldest first.
    let releases: [[ReleaseFacts]]
    /// Every rollback of the history, oldest first.
    let rows: [RollbackRow]
    let escalations: [EscalationRow]
    let refusals: [(time: Int64, app: String, name: String)]
    public let warnings: [String]

    /// The digest of `repo`'s branch and notes: from the cache when it was
    /// made for the same tip, apps and notes, else computed and cached.
    /// With `rowsOnly`, a cached digest is read without its per-release
    /// facts (an incident needs the rows only).
    public static func load(_ repo: DeployRepository, useCache: Bool = true, rowsOnly: Bool = false) throws -> AuditDigest {
        let tip = try repo.tip()
        let notes = try gitStep("reading \(ReleaseNote.notesRef)") { try repo.git.referenceTarget(ReleaseNote.notesRef) }
        let listing = try repo.configForListing(at: tip)
        let key = ([repo.branchRef, tip.hex, notes?.hex ?? "-", listing.warning ?? ""] + listing.config.apps.map { "\($0.name)=\($0.path)" }).joined(separator: ";")
        let file = repo.git.gitDirectory + "rewind/audit-" + String(fnv1a(repo.branchRef), radix: 16)
        if useCache, let bytes = FileIO.read(file), let cached = decode(bytes, key: key, rowsOnly: rowsOnly) { return cached }
        let digest = compute(try AuditFacts.read(repo, tip: tip, listing: listing, useCache: useCache))
        if useCache { _ = FileIO.writeAtomically(file, digest.encoded(key: key)) }
        return digest
    }

    /// Computes the digest from the facts.
    public static func compute(_ facts: AuditFacts) -> AuditDigest {
        let apps = facts.config.apps.map(\.name)
        let analysis = Analysis(facts: facts)
        let escalations = apps.flatMap { app in
            facts.history.of(app).compactMap { release -> EscalationRow? in
                guard let event = facts.event(.escalated, app, on: release.commit) else { return nil }
                return EscalationRow(time: event.time, app: app, release: release.commit, reason: event.note.value("reason") ?? "")
            }
        }.sorted { ($0.time, $0.app) < ($1.time, $1.app) }
        return AuditDigest(
            branch: facts.repo.branchName, tip: facts.history.tip, apps: apps, releases: apps.map(analysis.releaseFacts),
            rows: analysis.rollbackRows(), escalations: escalations,
            refusals: facts.refusals.map { ($0.event.time, $0.event.note.app, $0.event.note.value("guard") ?? "other") }, warnings: facts.warnings)
    }
}

// MARK: the cache file

extension AuditDigest {
    static let magic = Array("rewind-audit-digest 3\n".utf8)

    func encoded(key: String) -> [UInt8] {
        var w = BinaryWriter()
        w.bytes(Self.magic)
        w.string(key)
        w.string(branch)
        w.string(tip.hex)
        w.strings(apps)
        w.int(Int64(rows.count))
        for row in rows {
            w.string(row.commit.hex)
            w.int(row.time)
            w.string(row.kind)
            w.string(row.trigger)
            w.optional(row.alert)
            w.optional(row.reason)
            w.string(row.author)
            w.optional(row.actor)
            w.strings(row.forced)
            w.int(row.breakGlass ? 1 : 0)
            w.int(Int64(row.apps.count))
            for a in row.apps {
                w.string(a.app)
                w.optional(a.from)
                w.optional(a.to)
                w.optional(a.badRelease?.hex)
                w.optional(a.target?.hex)
            }
            w.optional(row.detectMilliseconds)
            w.optional(row.decisionMilliseconds)
            w.optional(row.recoveryMilliseconds)
            w.string(row.outcome)
        }
        w.int(Int64(escalations.count))
        for e in escalations {
            w.int(e.time)
            w.string(e.app)
            w.string(e.release.hex)
            w.string(e.reason)
        }
        w.int(Int64(refusals.count))
        for r in refusals {
            w.int(r.time)
            w.string(r.app)
            w.string(r.name)
        }
        w.strings(warnings)
        // Last: a reader that needs only the rows (an incident) stops before them.
        for list in releases {
            w.int(Int64(list.count))
            for r in list {
                w.int(r.time)
                w.byte(UInt8(ReleaseKind.allCases.firstIndex(of: r.kind) ?? 0))
                w.byte(r.failed ? 1 : 0)
                w.optional(r.failedAt)
                w.optional(r.healthyAt)
                w.optional(r.recovery)
            }
        }
        return w.out
    }

    /// The cached digest, or nil when it was made for another key or is damaged.
    static func decode(_ bytes: [UInt8], key: String, rowsOnly: Bool = false) -> AuditDigest? {
        var r = BinaryReader(bytes)
        guard r.bytes(magic.count) == magic, r.string() == key, let branch = r.string(), let tip = r.string().flatMap(OID.init(hex:)),
              let apps = r.strings() else { return nil }
        guard let rowCount = r.count() else { return nil }
        var rows: [RollbackRow] = []
        for _ in 0..<rowCount {
            guard let commit = r.string().flatMap(OID.init(hex:)), let time = r.int(), let kind = r.string(), let trigger = r.string(),
                  let alert = r.optionalString(), let reason = r.optionalString(), let author = r.string(), let actor = r.optionalString(),
                  let forced = r.strings(), let breakGlass = r.int(), let appCount = r.count() else { return nil }
            var members: [RollbackApp] = []
            for _ in 0..<appCount {
                guard let app = r.string(), let from = r.optionalString(), let to = r.optionalString(), let bad = r.optionalString(), let target = r.optionalString() else { return nil }
                members.append(RollbackApp(app: app, from: from.value, to: to.value, badRelease: bad.value.flatMap(OID.init(hex:)), target: target.value.flatMap(OID.init(hex:))))
            }
            guard let detect = r.optionalInt(), let decision = r.optionalInt(), let recovery = r.optionalInt(), let outcome = r.string() else { return nil }
            rows.append(RollbackRow(commit: commit, time: time, kind: kind, trigger: trigger, alert: alert.value, reason: reason.value, author: author,
                                    actor: actor.value, forced: forced, apps: members, detectMilliseconds: detect.value, decisionMilliseconds: decision.value,
                                    recoveryMilliseconds: recovery.value, outcome: outcome))
            rows[rows.count - 1].breakGlass = breakGlass == 1
        }
        guard let escalationCount = r.count() else { return nil }
        var escalations: [EscalationRow] = []
        for _ in 0..<escalationCount {
            guard let time = r.int(), let app = r.string(), let release = r.string().flatMap(OID.init(hex:)), let reason = r.string() else { return nil }
            escalations.append(EscalationRow(time: time, app: app, release: release, reason: reason))
        }
        guard let refusalCount = r.count() else { return nil }
        var refusals: [(Int64, String, String)] = []
        for _ in 0..<refusalCount {
            guard let time = r.int(), let app = r.string(), let name = r.string() else { return nil }
            refusals.append((time, app, name))
        }
        guard let warnings = r.strings() else { return nil }
        var releases: [[ReleaseFacts]] = []
        for _ in apps where !rowsOnly {
            guard let count = r.count() else { return nil }
            var list: [ReleaseFacts] = []
            list.reserveCapacity(count)
            for _ in 0..<count {
                guard let time = r.int(), let kind = r.byte().flatMap({ ReleaseKind.allCases.indices.contains(Int($0)) ? ReleaseKind.allCases[Int($0)] : nil }),
                      let failed = r.byte(), let failedAt = r.optionalInt(), let healthyAt = r.optionalInt(), let recovery = r.optionalInt() else { return nil }
                list.append(ReleaseFacts(time: time, kind: kind, failedAt: failedAt.value, healthyAt: healthyAt.value, failed: failed == 1, recovery: recovery.value))
            }
            releases.append(list)
        }
        guard rowsOnly || r.atEnd else { return nil }
        return AuditDigest(branch: branch, tip: tip, apps: apps, releases: releases, rows: rows, escalations: escalations,
                           refusals: refusals.map { (time: $0.0, app: $0.1, name: $0.2) }, warnings: warnings)
    }
}

/// Little-endian numbers and length-prefixed UTF-8 strings.
struct BinaryWriter {
    var out: [UInt8] = []

    mutating func bytes(_ b: [UInt8]) { out += b }
    mutating func byte(_ b: UInt8) { out.append(b) }
    mutating func int(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func string(_ s: String) {
        int(Int64(s.utf8.count))
        out += s.utf8
    }
    mutating func strings(_ list: [String]) {
        int(Int64(list.count))
        list.forEach { string($0) }
    }
    mutating func optional(_ v: Int64?) {
        byte(v == nil ? 0 : 1)
        if let v { int(v) }
    }
    mutating func optional(_ s: String?) {
        byte(s == nil ? 0 : 1)
        if let s { string(s) }
    }
}

/// Reads what `BinaryWriter` wrote; every read is checked (a damaged or
/// truncated file reads as nil, never out of bounds).
struct BinaryReader {
    /// A value that may be absent, read successfully.
    struct Present<T> { let value: T? }

    private let data: [UInt8]
    private var at = 0

    init(_ data: [UInt8]) { self.data = data }

    var atEnd: Bool { at == data.count }

    mutating func bytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, at + n <= data.count else { return nil }
        defer { at += n }
        return Array(data[at..<(at + n)])
    }
    mutating func byte() -> UInt8? {
        guard at < data.count else { return nil }
        defer { at += 1 }
        return data[at]
    }
    mutating func int() -> Int64? {
        guard at + 8 <= data.count else { return nil }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(data[at + i]) << (8 * UInt64(i)) }
        at += 8
        return Int64(bitPattern: v)
    }
    mutating func count() -> Int? {
        guard let n = int(), n >= 0, n <= Int64(data.count) else { return nil }
        return Int(n)
    }
    mutating func string() -> String? {
        guard let n = count(), at + n <= data.count else { return nil }
        defer { at += n }
        return String(decoding: data[at..<(at + n)], as: UTF8.self)
    }
    mutating func strings() -> [String]? {
        guard let n = count() else { return nil }
        var list: [String] = []
        for _ in 0..<n {
            guard let s = string() else { return nil }
            list.append(s)
        }
        return list
    }
    mutating func optionalInt() -> Present<Int64>? {
        guard let flag = byte() else { return nil }
        if flag == 0 { return Present(value: nil) }
        guard flag == 1, let v = int() else { return nil }
        return Present(value: v)
    }
    mutating func optionalString() -> Present<String>? {
        guard let flag = byte() else { return nil }
        if flag == 0 { return Present(value: nil) }
        guard flag == 1, let s = string() else { return nil }
        return Present(value: s)
    }
}
