import DeployModel
import Testing

/// `platform: container` in app.yaml.
@Suite struct ContainerSpecTests {
    static let image = "registry.example.com/team/api:1.4.0@sha256:" + String(repeating: "a", count: 64)

    static func parse(_ container: String) -> (spec: AppSpec?, diagnostics: [Diagnostic]) {
        AppSpec.parse("platform: container\nversion: \"1.4.0\"\ncontainer:\n" + container, file: "apps/api/app.yaml")
    }

    @Test func everySettingIsRead() throws {
        let (spec, diagnostics) = Self.parse("""
              image: \(Self.image)
              command: [/bin/api]
              args: [--verbose]
              env: {MODE: prod}
              port: 8080
              volumes: [data:/var/lib/api, ./config:/etc/api]
              user: "1000"
              memory: 512m
              cpus: 0.5
              stopTimeout: 20s

            """)
        let container = try #require(spec?.container, "\(diagnostics)")
        #expect(container.image.digest == "sha256:" + String(repeating: "a", count: 64) && container.image.tag == "1.4.0")
        #expect(container.command == ["/bin/api"] && container.args == ["--verbose"] && container.env == ["MODE": "prod"] && container.port == 8080)
        #expect(container.volumes.map(\.source) == ["data", "./config"] && container.volumes.map(\.isBind) == [false, true])
        #expect(container.user == "1000" && container.memory == 512 << 20 && container.cpus == 0.5 && container.stopTimeout.milliseconds == 20_000)
    }

    @Test(arguments: [
        ("  port: 8080\n", "container.image"),
        ("  image: registry.example.com/team/api:1.4.0\n", "names a tag but no digest"),
        ("  image: \(image)\n  volumes: [/etc:/etc]\n", "neither a volume name nor a directory of the app"),
        ("  image: \(image)\n  volumes: [./../secrets:/s]\n", "leaves the app's files"),
        ("  image: \(image)\n  volumes: [data]\n", "is not SOURCE:/path"),
        ("  image: \(image)\n  memory: lots\n", "is not an amount of memory"),
        ("  image: \(image)\n  cpus: 0\n", "is not a number of CPUs"),
        ("  image: \(image)\n  command: []\n", "must not be empty"),
    ])
    func badSettingsAreRefusedWithFileLineAndField(_ yaml: String, _ says: String) {
        let (spec, diagnostics) = Self.parse(yaml)
        #expect(spec == nil)
        #expect(diagnostics.contains { $0.severity == .error && "\($0)".contains(says) && "\($0)".contains("apps/api/app.yaml:") }, "\(diagnostics)")
    }

    @Test func aContainerAppNeedsItsSection() {
        let (spec, diagnostics) = AppSpec.parse("platform: container\nversion: \"1\"\n", file: "apps/api/app.yaml")
        #expect(spec == nil && diagnostics.contains { "\($0)".contains("container") && "\($0)".contains("required field is missing") })
    }
}
