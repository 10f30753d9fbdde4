import FuzzDriver

runFuzzer(target: "git-push")
