import DeployModel
import GitKit

#if canImport(Glibc)
import Glibc
#endif

/// The checks that run before any rollback commit is written.
struct Guards {
    let repo: DeployRepository
    let config: RepoConfig
    let artifactRoot: String?
    var artifacts: (any ArtifactAvailability)? = nil

    /// Every changed app's new app.yaml must be valid and its artifact must
    /// exist. (The planner validates the whole new state first, so a missing
    /// or invalid app.yaml has normally been reported in detail already.)
    /// Returns what it checked, in words.
    /// An OCI or download artifact must be cached or still published;
    /// `force` (a human's) lets a missing one through, recorded in `forced`.
    @discardableResult
    func checkArtifacts(changes: [AppChange], force: Bool = false, forced: inout [String]) throws -> [String] {
        var checked: [String] = []
        for change in changes {
            guard let app = config.app(named: change.app), change.toTree != nil else { continue }
            guard let spec = change.toSpec else {
                let file = "\(app.path)/\(AppSpec.fileName)"
                throw RewindError(.refused, "the target state of \(change.app) has no valid \(file)",
                                  hint: "choose a target where the app is complete; `rewind validate REV` shows what is wrong")
            }
            if let image = spec.container?.image {
                let check = artifacts?.availability(ofImage: image) ?? .missing("this command cannot check a container engine or registry")
                checked.append(try checkAtHand(check, what: "image of \(change.app) \(spec.version)", reference: "\(image)", cache: "the container engine's store",
                                               app: change.app, force: force, forced: &forced))
            }
            guard let artifact = spec.artifact else { continue }
            guard artifact.path != nil else {
                let check = artifacts?.availability(of: artifact) ?? .missing("this command cannot check a registry")
                checked.append(try checkAtHand(check, what: "artifact of \(change.app) \(spec.version)", reference: "\(artifact)", cache: "the artifact cache",
                                               app: change.app, force: force, forced: &forced))
                continue
            }
            let path = try resolve(artifact, app: change.app)
            guard access(path, F_OK) == 0 else {
                var error = RewindError(.refused, "artifact for \(change.app) \(spec.version) is missing: \(path)",
                                        hint: "publish the artifact first, or choose a target whose artifact exists")
                error.refusal = ("artifact", [change.app])
                throw error
            }
            checked.append("artifact of \(change.app) \(spec.version) is present: \(path)")
        }
        return checked
    }

    /// Seed 002's "Registry That Forgot": the target's artifact (or image)
    /// must still exist before a rollback to it is written.
    private func checkAtHand(_ check: ArtifactCheck, what: String, reference: String, cache: String, app: String, force: Bool,
                             forced: inout [String]) throws -> String {
        switch check {
        case .cached(let path): return "\(what) is in \(cache): \(path)"
        case .published(let place): return "\(what) is published: \(place)"
        case .missing(let why):
            if force {
                forced.append("\(what) (\(reference)) is not at hand: \(why)")
                return "\(what) is not at hand, forced: \(why)"
            }
            var error = RewindError(.refused, "the \(what) (\(reference)) is not at hand: \(why)",
                                    hint: "push it to the registry again, or choose a target whose artifact exists; a human who accepts the risk may pass --force")
            error.refusal = ("artifact", [app])
            throw error
        }
    }

    private func resolve(_ artifact: Artifact, app: String) throws -> String {
        try Artifacts.path(of: artifact, app: app, root: artifactRoot ?? config.artifactRoot)
    }

    /// Refuses to undo an irreversible migration unless forced. Migrations are
    /// cumulative in app.yaml, so those in the current state but not in the new
    /// one are the ones a rollback would cross. Returns what was forced.
    func checkMigrations(changes: [AppChange], force: Bool) throws -> [String] {
        var crossed: [String] = []
        var apps: [String] = []
        for change in changes {
            let current = change.fromSpec?.irreversibleMigrations ?? []
            let target = change.toSpec?.irreversibleMigrations ?? []
            let these = current.subtracting(target).sorted()
            crossed += these.map { "\(change.app) migration \($0) is irreversible" }
            if !these.isEmpty { apps.append(change.app) }
        }
        if !crossed.isEmpty && !force {
            var error = RewindError(.refused, "rolling back would cross an irreversible migration: \(crossed.joined(separator: "; "))",
                                    hint: "roll forward with a fix instead; a human who has checked the data may pass --force (recorded in the commit)")
            error.refusal = ("migration", apps)
            throw error
        }
        return crossed
    }
}

/// Where artifacts are.
public enum Artifacts {
    /// The absolute path of an artifact: absolute and file:// paths as they
    /// are, relative ones under `root` (--artifact-root,
    /// REWIND_ARTIFACT_ROOT, or rewind.yaml's artifactRoot).
    public static func path(of artifact: Artifact, app: String, root: String?) throws -> String {
        guard var path = artifact.path else {
            throw RewindError(.refused, "the artifact of \(app) (\(artifact)) is not a file on this host", hint: "the reconciler pulls it into its artifact cache")
        }
        if path.hasPrefix("file://") { path = String(path.dropFirst("file://".count)) }
        if path.hasPrefix("/") { return path }
        guard let root else {
            throw RewindError(.refused, "artifact path '\(path)' of \(app) is relative and no artifact root is set",
                              hint: "set artifactRoot in rewind.yaml, REWIND_ARTIFACT_ROOT, or --artifact-root")
        }
        return root.hasSuffix("/") ? root + path : root + "/" + path
    }

    /// Nil when the artifact exists, else what is wrong.
    public static func problem(_ artifact: Artifact?, app: String, version: String, root: String?) -> (path: String?, problem: String?) {
        guard let artifact else { return (nil, nil) }
        do {
            let path = try path(of: artifact, app: app, root: root)
            return access(path, F_OK) == 0 ? (path, nil) : (path, "artifact for \(app) \(version) is missing: \(path)")
        } catch {
            return (nil, "\(error)")
        }
    }
}

/// Chooses the default rollback target: the newest earlier release that was
/// verified healthy (a git note under refs/notes/rewind says so), else the
/// newest earlier release that was not itself rolled back.
enum LastGoodRelease {

    static func find(_ releases: [Release], git: Repository) -> Release? {
        guard let current = releases.last else { return nil }
        let candidates = releases.dropLast().reversed().filter {
            $0.rolledBackBy == nil && $0.tree != nil && $0.tree != current.tree
        }
        let hasNotes = (try? git.referenceTarget(ReleaseNote.notesRef)) != nil
        if hasNotes, let verified = candidates.first(where: { isVerified($0, git: git) }) { return verified }
        return candidates.first
    }

    static func isVerified(_ release: Release, git: Repository) -> Bool {
        guard let note = try? git.note(on: release.commit, notesRef: ReleaseNote.notesRef) else { return false }
        return ReleaseNote.parseAll(note).contains { ($0.outcome == .verified || $0.outcome == .healthy) && $0.app == release.app }
    }
}
