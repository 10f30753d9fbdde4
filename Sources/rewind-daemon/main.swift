import RewindCLI
import RewindDaemon

RewindCommand.prepareProcess()
await DaemonCommand.runAsync()
