import FuzzDriver

runFuzzer(target: "tar-paths")
