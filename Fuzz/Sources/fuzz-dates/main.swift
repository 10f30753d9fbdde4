import FuzzDriver

runFuzzer(target: "dates")
