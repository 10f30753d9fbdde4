import ArgumentParser
import DeployModel
import FoundationEssentials
import Rollback
import SystemSupport

/// `rewind promote APP`.
struct PromoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Skip a canary's remaining steps (or a blue-green's scaleDownDelay): the new version takes all traffic and the old one stops.")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.promote) }
}
