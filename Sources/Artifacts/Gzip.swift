import CZlib

/// Decompresses a gzip stream piece by piece (zlib's inflate). Input that
/// is not gzip (a plain tar layer) passes through unchanged when `detect` is set.
final class GunzipStream {
    private var stream = z_stream()
    private var open = false
    private var passthrough = false
    private var decided: Bool
    private var finished = false
    /// Where inflate writes, reused for every piece.
    private var chunk = [UInt8](repeating: 0, count: 256 * 1024)

    init(detect: Bool) {
        decided = !detect
        if decided { start() }
    }

    deinit {
        if open { inflateEnd(&stream) }
    }

    private func start() {
        // 15 + 16: a gzip header and trailer, with the largest window.
        open = inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
    }

    /// The decompressed bytes of the next piece of input.
    func push(_ input: [UInt8]) throws(ArtifactError) -> [UInt8] {
        if !decided {
            decided = true
            passthrough = !(input.count >= 2 && input[0] == 0x1f && input[1] == 0x8b)
            if !passthrough { start() }
        }
        if passthrough { return input }
        guard open else { throw ArtifactError("cannot start gzip decompression (zlib)") }
        if finished {
            guard input.allSatisfy({ $0 == 0 }) else { throw ArtifactError("data after the end of the gzip stream") }
            return []
        }
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 2)
        var input = input
        let count = input.count
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { (inBuffer: inout UnsafeMutableBufferPointer<UInt8>) throws(ArtifactError) in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = uInt(count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { out -> Int in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                if status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR {
                    throw ArtifactError("the layer is not valid gzip (zlib error \(status))")
                }
                output += chunk[0..<produced]
                if status == Z_STREAM_END {
                    finished = true
                    let rest = UnsafeBufferPointer(start: stream.next_in, count: Int(stream.avail_in))
                    guard rest.allSatisfy({ $0 == 0 }) else { throw ArtifactError("data after the end of the gzip stream") }
                    break
                }
            } while stream.avail_in > 0 || stream.avail_out == 0
            stream.next_in = nil
        }
        return output
    }

    /// Fails when the stream ended early (a truncated layer).
    func finish() throws(ArtifactError) {
        if !passthrough && decided && !finished { throw ArtifactError("the gzip stream is truncated") }
    }
}
