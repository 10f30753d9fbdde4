import FuzzDriver

runFuzzer(target: "trailers")
