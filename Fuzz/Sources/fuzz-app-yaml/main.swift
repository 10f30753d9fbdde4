import FuzzDriver

runFuzzer(target: "app-yaml")
