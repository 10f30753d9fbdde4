import FuzzDriver

runFuzzer(target: "tokens")
