import FuzzDriver

runFuzzer(target: "notes")
