import FuzzDriver

runFuzzer(target: "oci-manifest")
