import FuzzDriver

runFuzzer(target: "durations")
