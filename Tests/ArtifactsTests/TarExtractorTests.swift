import Foundation
import Testing
import TestSupport
@testable import Artifacts

#if canImport(Glibc)
import Glibc
#endif

/// Layers are built by Python's tarfile (a real tar writer), including the
/// hostile ones no honest tool writes, and unpacked by `TarExtractor`.
@Suite struct TarExtractorTests {
    /// Builds a tar (gzip when `gzip`) from Python entry specs: (name, type, data or link target).
    static func tarball(_ entries: [(name: String, kind: String, value: String)], gzip: Bool, in directory: String) throws -> String {
        let spec = entries.map { "(\(pyString($0.name)), \(pyString($0.kind)), \(pyString($0.value)))" }.joined(separator: ", ")
        let path = directory + "/layer.tar" + (gzip ? ".gz" : "")
        let script = """
            import io, tarfile
            entries = [\(spec)]
            with tarfile.open(\(pyString(path)), "w:gz" if \(gzip ? "True" : "False") else "w", format=tarfile.PAX_FORMAT) as t:
                for name, kind, value in entries:
                    info = tarfile.TarInfo(name)
                    if kind == "file":
                        data = value.encode(); info.size = len(data); info.mode = 0o755
                        t.addfile(info, io.BytesIO(data))
                    elif kind == "dir":
                        info.type = tarfile.DIRTYPE; info.mode = 0o755; t.addfile(info)
                    elif kind == "symlink":
                        info.type = tarfile.SYMTYPE; info.linkname = value; t.addfile(info)
                    elif kind == "hardlink":
                        info.type = tarfile.LNKTYPE; info.linkname = value; t.addfile(info)
            """
        let result = try run("/usr/bin/python3", ["-c", script])
        guard result.status == 0 else { throw TestFailure("python tarfile: \(result.stderr)") }
        return path
    }

    static func pyString(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'").replacingOccurrences(of: "\n", with: "\\n") + "'"
    }

    /// Unpacks `tarball` into `directory/root`; the error, if any.
    static func unpack(_ tarball: String, into root: String, maxBytes: Int64 = 1 << 20) -> ArtifactError? {
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let fd = open(root, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        let extractor = TarExtractor(root: fd, maxBytes: maxBytes)
        let gunzip = GunzipStream(detect: true)
        do {
            try ArtifactStore.readChunks(tarball) { chunk in try extractor.push(try gunzip.push(chunk)) }
            try gunzip.finish()
            try extractor.finish()
            return nil
        } catch let error as ArtifactError {
            return error
        } catch {
            return ArtifactError("\(error)")
        }
    }

    struct Hostile: CustomTestStringConvertible, Sendable {
        let name: String
        let entries: [(name: String, kind: String, value: String)]
        let says: String
        var testDescription: String { name }
    }

    static let hostile: [Hostile] = [
        Hostile(name: "a .. path", entries: [("../escaped", "file", "x")], says: "climbs out"),
        Hostile(name: "a .. inside a path", entries: [("a/../../escaped", "file", "x")], says: "climbs out"),
        Hostile(name: "an absolute path", entries: [("/tmp/escaped-abs", "file", "x")], says: "absolute path"),
        Hostile(name: "an absolute symlink", entries: [("etc", "symlink", "/etc")], says: "absolute path"),
        Hostile(name: "a symlink that climbs out", entries: [("sub", "dir", ""), ("sub/up", "symlink", "../../escaped")], says: "leaves the artifact's directory"),
        Hostile(name: "a symlink with .. after a name", entries: [("s", "symlink", "."), ("t", "symlink", "s/../../escaped")], says: "leaves the artifact's directory"),
        Hostile(name: "a file written through a symlink", entries: [("sub", "dir", ""), ("link", "symlink", "sub"), ("link/file", "file", "x")], says: "symbolic link"),
        Hostile(name: "a hard link to outside", entries: [("hard", "hardlink", "../escaped")], says: "climbs out"),
    ]

    /// Each hostile entry is refused, naming it, and nothing lands outside the directory.
    @Test(arguments: hostile)
    func entriesThatLeaveTheDirectoryAreRefused(_ c: Hostile) throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/work", withIntermediateDirectories: true)
            let layer = try Self.tarball(c.entries, gzip: true, in: dir + "/work")
            let error = Self.unpack(layer, into: dir + "/out/root")
            #expect(error?.description.contains(c.says) == true, "\(String(describing: error))")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/out") == ["root"], "nothing beside the directory")
            #expect(!FileManager.default.fileExists(atPath: dir + "/escaped"))
            #expect(!FileManager.default.fileExists(atPath: "/tmp/escaped-abs"))
        }
    }

    /// Directories, modes, links inside, long names, and a second layer's whiteouts.
    @Test func layersUnpackWithModesLinksLongNamesAndWhiteouts() throws {
        try withTemporaryDirectory { dir in
            let long = String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 120)
            try FileManager.default.createDirectory(atPath: dir + "/one", withIntermediateDirectories: true)
            let first = try Self.tarball([("./bin", "dir", ""), ("./bin/api", "file", "#!/bin/sh\necho hi\n"), ("./bin/same", "hardlink", "bin/api"),
                                          ("./current", "symlink", "bin/api"), ("./old/a", "file", "a"), ("./gone", "file", "x"), (long, "file", "long")],
                                         gzip: true, in: dir + "/one")
            #expect(Self.unpack(first, into: dir + "/root") == nil)
            try FileManager.default.createDirectory(atPath: dir + "/two", withIntermediateDirectories: true)
            let second = try Self.tarball([("./.wh.gone", "file", ""), ("./old/.wh..wh..opq", "file", ""), ("./old/b", "file", "b")], gzip: false, in: dir + "/two")
            #expect(Self.unpack(second, into: dir + "/root") == nil)
            let root = dir + "/root"
            #expect(FileManager.default.isExecutableFile(atPath: root + "/bin/api"))
            #expect(try String(contentsOfFile: root + "/bin/same", encoding: .utf8) == "#!/bin/sh\necho hi\n")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/current") == "bin/api")
            #expect(try String(contentsOfFile: root + "/" + long, encoding: .utf8) == "long")
            #expect(!FileManager.default.fileExists(atPath: root + "/gone"), "whited out")
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/old") == ["b"], "the opaque whiteout emptied old/")
        }
    }

    /// A layer past the size limit, a truncated gzip, and bytes that are no tar are refused.
    @Test func oversizedTruncatedAndGarbageLayersAreRefused() throws {
        try withTemporaryDirectory { dir in
            let big = try Self.tarball([("big", "file", String(repeating: "x", count: 5_000))], gzip: true, in: dir)
            #expect(Self.unpack(big, into: dir + "/a", maxBytes: 4_096)?.description.contains("over 4096 bytes") == true)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: big))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: dir + "/half.tar.gz"))
            #expect(Self.unpack(dir + "/half.tar.gz", into: dir + "/b")?.description.contains("truncated") == true)
            try Data(repeating: 7, count: 2_048).write(to: URL(fileURLWithPath: dir + "/garbage"))
            #expect(Self.unpack(dir + "/garbage", into: dir + "/c")?.description.contains("not a tar stream") == true)
        }
    }
}
