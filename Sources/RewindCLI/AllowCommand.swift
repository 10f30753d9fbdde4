import ArgumentParser
import Rollback

/// `rewind allow APP VERSION`.
struct AllowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allow",
        abstract: "Let a version that was rolled back be proposed by updates again.",
        discussion: """
            serve's update watch never proposes a digest that a rollback undid: the rollback \
            history is its memory. This writes a commit (Rewind-Action: allow, changing no file) \
            after which that digest may be proposed again. VERSION is the rolled-back release's \
            tag, version label or digest (see `rewind status APP`).
            """)

    @Argument(help: "The app.", completion: AppNames.completion) var app: String
    @Argument(help: "The rolled-back version: its tag, version label or sha256 digest.") var version: String
    @OptionGroup var write: WriteOptions

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func run() throws { try write.execute(.allow(app, version: version), repoOptions: options) }
}
