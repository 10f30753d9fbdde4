import FuzzDriver

runFuzzer(target: "known-hosts")
