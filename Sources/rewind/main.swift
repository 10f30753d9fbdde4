import RewindCLI

// `rewind reconcile` and `rewind serve` become rewind-daemon here.
DaemonHandOver.execIfDaemonCommand(Array(CommandLine.arguments.dropFirst()))
RewindCommand.prepareProcess()
RewindCommand.runMain()
