import Testing
@testable import LifeboatCore
@testable import LifeboatEngine

@Suite struct EncryptionConfiguration {
    @Test func aKeyFileOrAnEnvironmentVariableIsRead() throws {
        let configuration = try parse(main: """
            repositories:
              a: { path: /a, encryption: { key_file: keys/a.key } }
              b: { path: /b, encryption: { key_env: LIFEBOAT_B_KEY } }
              c: { path: /c }
            """).get()
        #expect(try configuration.repository(named: "a").encryption == EncryptionConfig(key: .file("/etc/lifeboat/keys/a.key")))
        #expect(try configuration.repository(named: "b").encryption == EncryptionConfig(key: .environment("LIFEBOAT_B_KEY")))
        #expect(try configuration.repository(named: "c").encryption == nil)
    }

    @Test func aKeyInlineIsRefusedAtItsLineWithAHint() {
        let result = parse(main: "repositories:\n  a:\n    path: /a\n    encryption: { key: c2VjcmV0c2VjcmV0 }\n")
        let messages = errors(result)
        #expect(messages.count == 1)
        #expect(messages.first?.hasPrefix("lifeboat.yaml:4:") == true, "\(messages)")
        #expect(messages.first?.contains("an encryption key is never written in the configuration") == true)
        #expect(messages.first?.contains("c2VjcmV0c2VjcmV0") == false)
        guard case .failure(let failure) = result else { return }
        #expect(failure.errors.first?.hint?.contains("key_file") == true)
    }

    @Test func bothOrNeitherKeySourceAndAValueForAVariableNameAreRefused() {
        #expect(errors(parse(main: "repositories:\n  a: { path: /a, encryption: { key_file: /k, key_env: K } }\n")).first?
            .contains("encryption must have only one of: key_file, key_env") == true)
        #expect(errors(parse(main: "repositories:\n  a: { path: /a, encryption: {} }\n")).first?
            .contains("encryption must have one of: key_file, key_env") == true)
        #expect(errors(parse(main: "repositories:\n  a: { path: /a, encryption: { key_env: \"ab/cd==\" } }\n")).first?
            .contains("is not the name of an environment variable") == true)
    }
}
