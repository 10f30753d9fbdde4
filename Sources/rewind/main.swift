import RewindCLI

RewindCommand.prepareProcess()
await RewindCommand.runAsync()
