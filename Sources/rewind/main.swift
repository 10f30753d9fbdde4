import RewindCLI

RewindCommand.main()
