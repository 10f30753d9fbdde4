import FuzzTargets

#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's own driver, linked in by `-sanitize=fuzzer`.
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                       _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The target this executable fuzzes; set once, before libFuzzer starts.
nonisolated(unsafe) private var selected: (@Sendable ([UInt8]) -> Void)?

/// What libFuzzer calls for each input (also the symbol it looks for when
/// its own `main` is the one linked).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected?(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// Starts libFuzzer on one target of `FuzzTargets`, with the command line's
/// options and corpus folders (see `make fuzz`).
public func runFuzzer(target: String) -> Never {
    guard let run = FuzzTargets.named(target) else {
        let message = Array("no fuzz target named \(target)\n".utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(64)
    }
    selected = run
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(runDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
}
