import FuzzDriver

runFuzzer(target: "state")
