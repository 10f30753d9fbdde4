import FuzzDriver

runFuzzer(target: "pins")
