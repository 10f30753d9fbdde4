import DeployModel
import FoundationEssentials
import GitKit
import Platforms
import Rollback
import SystemSupport

/// A release being rolled out behind the proxy while the previous one still runs.
public struct Rollout: Sendable, Codable, Equatable {
    public var strategy: TrafficSettings.Strategy
    /// The previous version: it serves what the new one does not, and takes everything back on an abort.
    public var stable: Instance
    /// The stable version's release commit.
    public var stableRelease: OID?
    /// Canary: the index in `steps`. Blue-green: 0.
    public var step: Int
    /// The new version's share of requests, in percent.
    public var weight: Int
    /// When the current step began (wall ms); a pause moves it on by its length.
    public var stepStartedAt: Int64
    /// Set while an operator holds the rollout where it is (wall ms).
    public var pausedAt: Int64?

    public init(strategy: TrafficSettings.Strategy, stable: Instance, stableRelease: OID?, step: Int, weight: Int, stepStartedAt: Int64) {
        self.strategy = strategy
        self.stable = stable
        self.stableRelease = stableRelease
        self.step = step
        self.weight = weight
        self.stepStartedAt = stepStartedAt
    }

    public var paused: Bool { pausedAt != nil }
}

/// An operator's request to a running reconciler (`rewind promote|abort|pause|resume APP`),
/// left in `<state>/requests/<app>.json` and answered in `<app>.answer.json`.
public struct RolloutRequest: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable, CaseIterable { case promote, abort, pause, resume }
    public var id: String
    public var action: Action
    public var reason: String?
    public var actor: String

    public init(id: String, action: Action, reason: String?, actor: String) {
        self.id = id
        self.action = action
        self.reason = reason
        self.actor = actor
    }
}

/// The reconciler's answer to a `RolloutRequest`.
public struct RolloutAnswer: Sendable, Codable, Equatable {
    public var id: String
    public var ok: Bool
    public var message: String
    /// The rollback commit an abort wrote.
    public var commit: String?

    public init(id: String, ok: Bool, message: String, commit: String? = nil) {
        self.id = id
        self.ok = ok
        self.message = message
        self.commit = commit
    }
}

extension StateStore {
    /// Leaves `request` for the running reconciler, which acts on it
    /// within a tick and answers (`answer(to:app:)`); throws when the
    /// state directory cannot take it.
    public func post(_ request: RolloutRequest, app: String) throws(RewindError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        FileIO.makeDirectory(requestsDirectory)
        guard let data = try? encoder.encode(request), FileIO.writeAtomically(requestFile(app), Array(data)) else {
            throw RewindError(.internalFailure, "cannot write \(requestFile(app))", hint: "check that the state directory is writable")
        }
    }

    /// The reconciler's answer to the request `id` for `app`, once it is
    /// there (and then taken away); nil until then.
    public func answer(to id: String, app: String) -> RolloutAnswer? {
        guard let bytes = FileIO.read(answerFile(app)), let answer = try? JSONDecoder().decode(RolloutAnswer.self, from: Data(bytes)), answer.id == id else { return nil }
        FileIO.removeTree(answerFile(app))
        return answer
    }

    /// Takes back a request nobody answered.
    public func withdraw(app: String) { FileIO.removeTree(requestFile(app)) }

    public var requestsDirectory: String { directory + "/requests" }
    public func requestFile(_ app: String) -> String { "\(requestsDirectory)/\(app).json" }
    public func answerFile(_ app: String) -> String { "\(requestsDirectory)/\(app).answer.json" }
    public var trafficDirectory: String { directory + "/traffic" }
    /// Prometheus file_sd targets: every version of every app behind a proxy, with app, version and role labels.
    public var targetsFile: String { trafficDirectory + "/targets.json" }
}
