import DeployModel
import GitKit
import SystemSupport

/// Planning of the two commits of `updates:`: an update moves an app's OCI
/// artifact to a newer digest by a minimal edit of its app.yaml; an allow
/// lets a rolled-back digest be proposed again, and changes no file.
extension Planner {
    func planUpdate(_ name: String, to new: OCIReference) throws -> PlanOutcome {
        let app = try appRef(name)
        if pins.pins[name] != nil {
            throw RewindError(.refused, "app \(name) is held by a pin: no update is proposed", hint: "release the hold with `rewind unpin \(name)` to let updates through")
        }
        guard let digest = new.digest else {
            throw RewindError(.usage, "an update needs a digest: \(new)", hint: "name the artifact as REGISTRY/REPOSITORY:TAG@sha256:DIGEST")
        }
        guard let appTree = try repo.appTree(app, in: tipTree), let text = try repo.text(tree: appTree, path: AppSpec.fileName) else {
            throw RewindError(.notFound, "app \(name) has no \(AppSpec.fileName) at \(tip.short)", hint: "updates move the artifact.oci of an app.yaml")
        }
        let current = AppSpec.parse(text, file: "\(app.path)/\(AppSpec.fileName)").spec
        guard case .oci(let old)? = current?.artifact?.source else {
            throw RewindError(.refused, "app \(name) has no OCI artifact at \(tip.short) to update", hint: "give its app.yaml artifact: {oci: REGISTRY/REPOSITORY:TAG@sha256:DIGEST}")
        }
        if old.digest == digest {
            return .alreadyDone("\(name) is already at \(new.tag ?? digest) (\(digest.prefix(19))…)")
        }
        let memory = try RolledBackDigests.load(repo, config: config, tip: tip, app: app)
        if let blocked = memory.blocking(digest) {
            throw RewindError(.refused, "not proposed: \(blocked.describe(app: name))",
                              hint: "it is proposed again once a newer version appears, or after `rewind allow \(name) \(blocked.tag ?? blocked.digest)`")
        }
        let edited: (text: String, version: String?)
        do {
            edited = try AppYAMLEdit.movingArtifact(in: text, to: new, file: "\(app.path)/\(AppSpec.fileName)")
        } catch {
            throw RewindError(.refused, "cannot update \(name): \(error.message)", hint: "edit \(app.path)/\(AppSpec.fileName) as asked; the next check proposes the update")
        }
        let tree = try gitStep("writing \(app.path)/\(AppSpec.fileName)") {
            let blob = try repo.git.writeBlob(Array(edited.text.utf8))
            let path = "\(app.path)/\(AppSpec.fileName)"
            let mode = try repo.git.entry(in: tipTree, path: path)?.mode ?? 0o100644
            return try repo.git.replacingEntry(in: tipTree, path: path, with: TreeEntry(name: AppSpec.fileName, id: blob, kind: .blob, mode: mode))
        }
        let label = new.tag ?? String(digest.prefix(19))
        let message = "Update \(name) to \(label)\n\n\(old.registry)/\(old.repository)@\(old.digest ?? "?") becomes\n\(new.registry)/\(new.repository)@\(digest)\n"
        return try finish(newTree: tree, action: .update, targets: [], message: message, namedApps: [name]) { trailers in
            (trailers.oldDigest, trailers.newDigest, trailers.tag) = (old.digest, digest, new.tag)
        }
    }

    func planAllow(_ name: String, version: String) throws -> PlanOutcome {
        let app = try appRef(name)
        let memory = try RolledBackDigests.load(repo, config: config, tip: tip, app: app)
        guard let entry = memory.named(version) else {
            let known = memory.entries.filter { $0.allowedBy == nil }.map { $0.tag ?? $0.version ?? $0.digest }
            throw RewindError(.notFound, "no rolled-back release of \(name) is '\(Bounded.text(version, limit: 80))'",
                              hint: known.isEmpty ? "\(name) has no rolled-back version that blocks an update" : "blocked versions of \(name): \(known.prefix(10).joined(separator: ", "))")
        }
        if let by = entry.allowedBy {
            return .alreadyDone("\(entry.tag ?? entry.digest) of \(name) is already allowed by \(by.short)")
        }
        let label = entry.tag ?? entry.version ?? String(entry.digest.prefix(19))
        let message = "Allow \(name) \(label) to be proposed again\n\n\(entry.describe(app: name)).\n"
        return try finish(newTree: tipTree, action: .allow, targets: [entry.commit], message: message, namedApps: [name]) { trailers in
            trailers.allowed = entry.digest
            trailers.tag = entry.tag
        }
    }
}
