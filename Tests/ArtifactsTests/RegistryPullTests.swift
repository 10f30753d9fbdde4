import DeployModel
import Foundation
import SystemSupport
import Testing
import TestSupport
@testable import Artifacts

/// Pulls from Debian's docker-registry on loopback, published with skopeo.
@Suite(.serialized) struct RegistryPullTests {
    static func store(_ dir: String, registry: TestRegistry, maxSize: Int64 = 1 << 30) -> ArtifactStore {
        var options = ArtifactOptions(directory: dir + "/cache")
        options.plainHTTP = [registry.host]
        options.maxArtifactSize = maxSize
        options.timeoutMilliseconds = 10_000
        return ArtifactStore(options: options)
    }

    /// Pulled by digest, verified, unpacked with modes; a second pull is the cache.
    @Test func anArtifactIsPulledByDigestUnpackedAndCached() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        try withTemporaryDirectory { dir in
            let digest = try registry.publish("team/api", tag: "1.0", files: ["bin/api": ("#!/bin/sh\necho 1.0\n", true), "VERSION": ("1.0\n", false)])
            let reference = try OCIReference.parse("\(registry.host)/team/api:1.0@\(digest)").get()
            let store = Self.store(dir, registry: registry)
            let path = try store.pull(reference)
            #expect(path == dir + "/cache/oci/" + digest.dropFirst(7))
            #expect(try String(contentsOfFile: path + "/VERSION", encoding: .utf8) == "1.0\n")
            #expect(FileManager.default.isExecutableFile(atPath: path + "/bin/api"))
            #expect(store.cached(reference) == path)
            #expect(try store.existsInRegistry(reference))
            registry.stop()
            #expect(try store.pull(reference) == path, "the cache answers with the registry down")
        }
    }

    /// HTTPS with a certificate from a test CA, and htpasswd basic
    /// authentication: without the CA the error names --ca-file, without
    /// or with wrong credentials it names --registry-auth, and no error or
    /// description ever carries the password.
    @Test func httpsWithATestCAAndBasicAuthentication() throws {
        let password = "s3cret-registry-pass"
        let registry = try TestRegistry(tls: true, user: ("deployer", password))
        defer { registry.close() }
        try withTemporaryDirectory { dir in
            let digest = try registry.publish("team/api", tag: "1.0", files: ["VERSION": ("1.0\n", false)])
            let reference = try OCIReference.parse("\(registry.host)/team/api:1.0@\(digest)").get()
            var options = ArtifactOptions(directory: dir + "/cache")
            options.timeoutMilliseconds = 10_000
            func failure(_ options: ArtifactOptions) -> String {
                do {
                    _ = try ArtifactStore(options: options).pull(reference)
                    return "pulled"
                } catch {
                    return "\(error)"
                }
            }
            let untrusted = failure(options)
            #expect(untrusted.contains("TLS") && untrusted.contains("--ca-file"), "\(untrusted)")
            options.caFile = registry.caFile
            let anonymous = failure(options)
            #expect(anonymous.contains("401") && anonymous.contains("--registry-auth"), "\(anonymous)")
            let wrongAuth = Data("deployer:wrong-pass".utf8).base64EncodedString()
            try writeFile(dir + "/wrong.json", #"{"auths": {"\#(registry.host)": {"auth": "\#(wrongAuth)"}}}"#)
            options.credentials = try RegistryCredentials.load(dir + "/wrong.json")
            let refused = failure(options)
            #expect(refused.contains("401") && !refused.contains("wrong-pass") && !refused.contains(wrongAuth), "\(refused)")
            try writeFile(dir + "/config.json", #"{"auths": {"https://\#(registry.host)": {"username": "deployer", "password": "\#(password)"}}}"#)
            options.credentials = try RegistryCredentials.load(dir + "/config.json")
            #expect(!"\(options.credentials)".contains(password))
            let path = try ArtifactStore(options: options).pull(reference)
            #expect(try String(contentsOfFile: path + "/VERSION", encoding: .utf8) == "1.0\n")
            // A malformed credentials file names the file and the entry, not the secret.
            try writeFile(dir + "/bad.json", #"{"auths": {"\#(registry.host)": {"auth": "not-base64-\#(password)"}}}"#)
            do {
                _ = try RegistryCredentials.load(dir + "/bad.json")
                Issue.record("a malformed auth must be refused")
            } catch {
                #expect("\(error)".contains("bad.json") && !"\(error)".contains(password), "\(error)")
            }
        }
    }

    /// The bearer-token flow of `WWW-Authenticate` against docker-registry's
    /// `auth: token` and a token service (RS256 JWTs, fixtures/
    /// registry-token-service.py): the credentials go to the token service,
    /// the token to the registry; without them the error says what to pass.
    @Test func bearerTokensFromATokenService() throws {
        let password = "token-service-pass"
        let registry = try TestRegistry(user: ("deployer", password), tokens: true)
        defer { registry.close() }
        try withTemporaryDirectory { dir in
            let digest = try registry.publish("team/api", tag: "1.0", files: ["VERSION": ("1.0\n", false)])
            let reference = try OCIReference.parse("\(registry.host)/team/api:1.0@\(digest)").get()
            var options = ArtifactOptions(directory: dir + "/cache")
            options.plainHTTP = [registry.host]
            options.timeoutMilliseconds = 10_000
            do {
                _ = try ArtifactStore(options: options).pull(reference)
                Issue.record("without credentials the token service must refuse")
            } catch {
                #expect("\(error)".contains("token service refused (401)") && "\(error)".contains("--registry-auth"), "\(error)")
            }
            try writeFile(dir + "/config.json", #"{"auths": {"\#(registry.host)": {"username": "deployer", "password": "\#(password)"}}}"#)
            options.credentials = try RegistryCredentials.load(dir + "/config.json")
            let path = try ArtifactStore(options: options).pull(reference)
            #expect(try String(contentsOfFile: path + "/VERSION", encoding: .utf8) == "1.0\n")
        }
    }

    /// A restarted reconciler (a new store) checks a cache entry against
    /// what it recorded: a damaged layer or unpacked file is pulled again;
    /// with the registry down, the damaged entry is refused, not used.
    @Test func aDamagedCacheEntryIsDetectedAndPulledAgain() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        try withTemporaryDirectory { dir in
            let digest = try registry.publish("team/api", tag: "1.0", files: ["bin/api": ("#!/bin/sh\necho 1.0\n", true)])
            let reference = try OCIReference.parse("\(registry.host)/team/api:1.0@\(digest)").get()
            let path = try Self.store(dir, registry: registry).pull(reference)
            // A hand edit of an unpacked file.
            try writeFile(path + "/bin/api", "#!/bin/sh\necho tampered\n", executable: true)
            #expect(try Self.store(dir, registry: registry).pull(reference) == path)
            #expect(try String(contentsOfFile: path + "/bin/api", encoding: .utf8) == "#!/bin/sh\necho 1.0\n", "pulled again")
            // A damaged layer blob in the cache.
            let blobs = try FileManager.default.contentsOfDirectory(atPath: dir + "/cache/blobs/sha256")
            for blob in blobs { try Data("garbage".utf8).write(to: URL(fileURLWithPath: dir + "/cache/blobs/sha256/" + blob)) }
            registry.stop()
            do {
                _ = try Self.store(dir, registry: registry).pull(reference)
                Issue.record("a damaged entry must not be used while the registry is down")
            } catch {
                #expect("\(error)".contains("registry \(registry.host)"), "\(error)")
            }
            try registry.start()
            #expect(try Self.store(dir, registry: registry).pull(reference) == path)
            #expect(try String(contentsOfFile: path + "/bin/api", encoding: .utf8) == "#!/bin/sh\necho 1.0\n")
        }
    }

    /// A deleted manifest (garbage collection) and a stopped registry are
    /// refused, naming the registry and what is missing; nothing is left in the cache.
    @Test func aMissingManifestOrAStoppedRegistryIsRefusedClearly() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        try withTemporaryDirectory { dir in
            let digest = try registry.publish("team/api", tag: "1.0", files: ["VERSION": ("1.0\n", false)])
            let reference = try OCIReference.parse("\(registry.host)/team/api:1.0@\(digest)").get()
            try registry.delete("team/api", digest: digest)
            let store = Self.store(dir, registry: registry)
            #expect(try !store.existsInRegistry(reference))
            #expect(throws: ArtifactError.self) { try store.pull(reference) }
            do { _ = try store.pull(reference) } catch {
                #expect("\(error)".contains("\(registry.host) has no manifest \(digest) of team/api (404"), "\(error)")
            }
            registry.stop()
            let other = try OCIReference.parse("\(registry.host)/team/web:2.0@sha256:" + String(repeating: "a", count: 64)).get()
            do {
                _ = try store.pull(other)
                Issue.record("a stopped registry must fail the pull")
            } catch {
                #expect("\(error)".contains("registry \(registry.host)"), "\(error)")
            }
            #expect(store.cached(other) == nil)
            #expect((try? FileManager.default.contentsOfDirectory(atPath: dir + "/cache/oci"))?.isEmpty ?? true, "nothing half-written")
        }
    }

    /// A layer over --max-artifact-size is refused before it is downloaded.
    @Test func aLayerOverTheSizeLimitIsRefused() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        try withTemporaryDirectory { dir in
            let random = (0..<20_000).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
            let digest = try registry.publish("team/big", tag: "1", files: ["data": (random, false)])
            let reference = try OCIReference.parse("\(registry.host)/team/big:1@\(digest)").get()
            do {
                _ = try Self.store(dir, registry: registry, maxSize: 1_000).pull(reference)
                Issue.record("an oversized layer must be refused")
            } catch {
                #expect("\(error)".contains("over --max-artifact-size (1000)"), "\(error)")
            }
        }
    }

    /// A local file's sha256 is checked; a mismatch names both digests.
    @Test func aLocalFileWithTheWrongSHA256IsRefused() throws {
        try withTemporaryDirectory { dir in
            try writeFile(dir + "/api.tar", "the artifact\n")
            let right = try run("/usr/bin/sha256sum", [dir + "/api.tar"]).stdout.prefix(64)
            try ArtifactStore.verify(file: dir + "/api.tar", sha256: String(right))
            let wrong = String(repeating: "0", count: 64)
            do {
                try ArtifactStore.verify(file: dir + "/api.tar", sha256: wrong)
                Issue.record("a wrong sha256 must be refused")
            } catch {
                #expect("\(error)".contains("has sha256 \(right), but app.yaml expects \(wrong)"), "\(error)")
            }
        }
    }
}

/// `WWW-Authenticate` challenges as registries send them.
@Suite struct ChallengeTests {
    @Test func bearerAndBasicChallengesParse() {
        let (bearer, parameters) = RegistryClient.parseChallenge(#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/api:pull""#)
        #expect(bearer == "bearer")
        #expect(parameters == ["realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:team/api:pull"])
        let (basic, realm) = RegistryClient.parseChallenge(#"Basic realm="rewind \"test\"""#)
        #expect(basic == "basic" && realm == ["realm": #"rewind "test""#])
        let (_, bare) = RegistryClient.parseChallenge("Bearer realm=https://a.example/t, service=r")
        #expect(bare == ["realm": "https://a.example/t", "service": "r"])
        #expect(HTTPEndpoint.encode("repository:team/api:pull") == "repository%3Ateam%2Fapi%3Apull")
    }
}

/// Tag policies against a real registry's tag list.
@Suite(.serialized) struct TagListTests {
    @Test func theNewestMatchingTagAndItsDigestAreFound() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        try withTemporaryDirectory { dir in
            var digests: [String: String] = [:]
            for tag in ["1.3.0", "1.4.0", "1.10.0", "2.0.0", "latest"] {
                digests[tag] = try registry.publish("team/api", tag: tag, files: ["VERSION": ("\(tag)\n", false)])
            }
            let store = RegistryPullTests.store(dir, registry: registry)
            let repository = OCIReference(registry: registry.host, repository: "team/api")
            let found = try store.newest(UpdatePolicy(repository: repository, tags: .semver(try #require(SemverRange("^1.4")))))
            #expect(found.tag == "1.10.0" && found.digest == digests["1.10.0"])
            do {
                _ = try store.newest(UpdatePolicy(repository: repository, tags: .regex(#"nightly-(\d+)"#)))
                Issue.record("a policy that matches nothing must say so")
            } catch {
                #expect("\(error)".contains("none of the 5 tags of \(registry.host)/team/api matches regex"), "\(error)")
            }
        }
    }
}
