import ArgumentParser
import DeployModel
import GitKit
import Remote
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind unpin APP`.
struct UnpinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Release an app's pin.")

    @Argument(help: "The app to unpin.", completion: AppNames.completion) var app: String
    @OptionGroup var write: WriteOptions

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func run() throws { try write.execute(.unpin(app), repoOptions: options) }
}
