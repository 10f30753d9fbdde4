import FuzzDriver

runFuzzer(target: "remote-urls")
