import ArgumentParser
import DeployModel
import GitKit
import ReconcilerStatus
import Remote
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Options shared by the commands that write a rollback commit.
struct WriteOptions: ParsableArguments {
    @Option(help: "Why; recorded as the Rewind-Reason trailer.")
    var reason: String?

    @Flag(help: "Print the commit that would be written, and write nothing.")
    var dryRun = false

    @Option(help: "Directory for relative artifact paths (default: REWIND_ARTIFACT_ROOT, else rewind.yaml's artifactRoot).")
    var artifactRoot: String?

    @Option(help: "Output format: table (text) or json.")
    var format: OutputFormat = .table

    @Flag(help: "After writing, wait until the apps it changes run it and are healthy (exit codes as `rewind wait`).")
    var wait = false

    @OptionGroup var waiting: WaitOptions

    func request(_ operation: Operation, force: Bool) -> RollbackRequest {
        var request = RollbackRequest(operation, reason: reason, by: RequestAuthor(trigger: .manual, actor: nil, artifactRoot: artifactRoot ?? environmentArtifactRoot(),
                                                                                 artifacts: nil))
        request.force = force
        return request
    }

    /// Runs the request and reports the outcome.
    /// `force`: the commands that can cross a migration take `--force`; unpin does not.
    func execute(_ operation: Operation, repoOptions: RepoOptions, force: Bool = false) throws {
        try runReporting(format: format) {
            let (repo, mirror) = try repoOptions.openWithMirror()
            // The process exits right after this command: freeing libgit2's
            // caches and unmapping its pack windows first took 0.5 ms of a
            // 10 ms revert, so the repository is left to the exit.
            _ = Unmanaged.passRetained(repo)
            var writer = CommitWriter(repo: repo)
            writer.diffs = true
            var request = request(operation, force: force)
            request.artifacts = DaemonArtifactCheck(stateDirectory: waiting.stateDir ?? StateStore.defaultDirectory(repo))
            let result = try writer.run(request, dryRun: dryRun)
            report(result)
            if let mirror, !dryRun, case .written(let commit?, let plan, _) = result {
                // A host that stalled the first sync would stall this one too:
                // the commit stays queued for the next sync instead.
                reportPush(mirror.lastSyncTimedOut ? mirror.skippedSync() : mirror.sync(), mirror: mirror, commit: commit, proposal: MirrorJournal(repo)?.proposal(for: plan))
            }
            // Nothing to roll out when the commit changes no app (a pin at the current state).
            if wait, !dryRun, case .written(let commit?, let plan, _) = result, !plan.changes.isEmpty {
                try waiting.wait(for: WaitCondition(apps: plan.changes.map(\.app)), in: repo, since: commit, format: format)
            }
        }
    }

    /// Says whether the remote took the commit, or that it is queued.
    private func reportPush(_ sync: SyncReport, mirror: Mirror, commit: OID, proposal: String?) {
        let pushed = sync.pushed.contains(commit.hex)
        let proposalBranch = proposal.map(shortBranchName)
        if format == .json {
            Terminal.print(JSON.object([
                ("remote", .string(mirror.url.text)), ("pushed", .bool(pushed)), ("alreadyOnRemote", .bool(sync.alreadyOnRemote.contains(commit.hex))),
                ("unpushed", .number(Int64(sync.unpushed))),
                ("proposalBranch", .optional(proposalBranch)), ("replanned", .array(sync.replanned.map { .string($0) })),
                ("alreadyDone", .array(sync.alreadyDone.map { .string($0) })), ("error", .optional(sync.error)),
            ]).pretty)
            return
        }
        if pushed, let proposalBranch {
            Terminal.print("Pushed to \(mirror.url) on branch \(proposalBranch) (the followed branch is protected): merge it to roll back.")
        } else if pushed {
            Terminal.print("Pushed to \(mirror.url).")
        } else if !sync.replanned.isEmpty {
            Terminal.print("The remote had moved: planned again as \(sync.replanned.joined(separator: ", "))\(sync.unpushed == 0 ? " and pushed" : "").")
        } else if let why = sync.alreadyDone.first {
            Terminal.print("The remote had moved and needs no commit: \(why).")
        } else if sync.alreadyOnRemote.contains(commit.hex) || (sync.unpushed == 0 && sync.error == nil) {
            Terminal.print("The remote has this commit already (another writer pushed the same rollback).")
        }
        if sync.unpushed > 0 {
            Terminal.print("Queued, not pushed yet: \(sync.error ?? "the remote did not take it"). `rewind status` lists it as unpushed; the next sync (any rewind command, or rewind reconcile/serve) pushes it.")
        }
    }

    private func report(_ result: RollbackResult) {
        switch result {
        case .alreadyDone(let why):
            if format == .json {
                Terminal.print(JSON.object([("result", .string("unchanged")), ("message", .string(why))]).pretty)
            } else {
                Terminal.print("Nothing to do: \(why)")
            }
        case let .written(commit, plan, _):
            if format == .json {
                Terminal.print(JSON.object([
                    ("result", .string(commit == nil ? "dry-run" : "written")), ("commit", .optional(commit?.hex)),
                    ("parent", .string(plan.parent.hex)), ("tree", .string(plan.tree.hex)), ("message", .string(plan.message)),
                    ("apps", .array(plan.changes.map { c in
                        .object([("app", .string(c.app)), ("versionBefore", .optional(c.fromVersion)), ("version", .optional(c.toVersion)),
                                 ("treeBefore", .optional(c.fromTree?.hex)), ("tree", .optional(c.toTree?.hex))])
                    })),
                    ("skipped", .array(plan.skipped.map { .string($0) })),
                    ("guardsChecked", .array(plan.guardsChecked.map { .string($0) })),
                    ("diffs", .array(plan.diffs.map { .object([("app", .string($0.app)), ("diff", .string($0.diff))]) })),
                ]).pretty)
                return
            }
            if let commit {
                Terminal.print("Wrote \(commit.short) on top of \(plan.parent.short): \(plan.message.prefix { $0 != "\n" })")
            } else {
                Terminal.print("Dry run: would write on top of \(plan.parent.short):\n")
                Terminal.print(plan.message.split(separator: "\n", omittingEmptySubsequences: false).map { "    \($0)" }.joined(separator: "\n"))
            }
            for c in plan.changes {
                Terminal.print("  \(c.app): \(c.fromVersion ?? "-") -> \(c.toVersion ?? "-") (tree \(c.fromTree?.short ?? "none") -> \(c.toTree?.short ?? "none"))")
            }
            for f in plan.forced { Terminal.print("  forced: \(f)") }
            for s in plan.skipped { Terminal.print("  left alone: \(s)") }
            if !plan.guardsChecked.isEmpty { Terminal.print("Guards checked:\n" + plan.guardsChecked.map { "  ok: \($0)" }.joined(separator: "\n")) }
            for (app, diff) in plan.diffs where !diff.isEmpty {
                Terminal.print("\n\(app == PinSet.fileName ? app : "\(app):") \(commit == nil ? "would change" : "changed")\n" + Colour.diff(diff.withoutTrailingNewlines))
            }
        }
    }
}

extension WriteOptions {
    /// These options as ArgumentParser would read them (QuickLine).
    static func quick(_ line: inout QuickLine) -> Self {
        var options = Self()
        options.reason = line.option("--reason")
        options.dryRun = line.flag("--dry-run")
        options.artifactRoot = line.option("--artifact-root")
        options.format = line.option("--format") ?? .table
        options.wait = line.flag("--wait")
        options.waiting = WaitOptions.quick(&line)
        return options
    }
}

/// REWIND_ARTIFACT_ROOT, when set and not empty.
package func environmentArtifactRoot() -> String? {
    getenv("REWIND_ARTIFACT_ROOT").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
}
