import FuzzDriver

runFuzzer(target: "alertmanager")
