import FuzzDriver

runFuzzer(target: "web-form")
