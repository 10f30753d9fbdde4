import FuzzDriver

runFuzzer(target: "rewind-yaml")
