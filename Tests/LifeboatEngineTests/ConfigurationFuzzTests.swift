import Foundation
import Testing
import TestSupport
@testable import LifeboatCore
@testable import LifeboatEngine

/// The configuration fuzz of `LifeboatCoreTests` with every source kind's parser (postgres,
/// files, redis, s3 mirror): the policies and runbooks of README.md's examples and of the
/// repository, mutated, must each parse into problems with a message, quickly, never crash.
@Suite(.serialized) struct ConfigurationFuzzing {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The YAML examples of README.md that are policies or runbooks, and the shipped files.
    static func seeds() throws -> (policies: [String], runbooks: [String]) {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```yaml") {
                current = []
            } else if line.hasPrefix("```"), let lines = current {
                blocks.append(lines.joined(separator: "\n") + "\n")
                current = nil
            } else {
                current?.append(line)
            }
        }
        let shipped = { (path: String) in try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) }
        let policies = blocks.filter { $0.contains("policy:") && $0.contains("source:") }
            + [try shipped("policies/hub-postgres.yaml"), try shipped("policies/lifeboat-config.yaml")]
        let runbooks = blocks.filter { $0.contains("runbook:") } + [try shipped("runbooks/platform-recovery.yaml")]
        return (policies, runbooks)
    }

    @Test func policiesAndRunbooksWithEverySourceKindNeverCrashTheParser() throws {
        let (policies, runbooks) = try Self.seeds()
        #expect(policies.count >= 4 && runbooks.count >= 2, "README.md's examples were not found")
        let seeds = (policies + runbooks).map { Array($0.utf8) }
        let tokens: [[UInt8]] = ["postgres:", "files:", "redis:", "s3_mirror:", "conninfo:", "paths:", "exclude:", "mode: physical",
                                 "bucket:", "tls:", "wal:", "compression:", "threads:", "{", "}", "[", "]", ": ", "- ", "\n  ",
                                 "&a ", "*a", "${", "${X:-y}", "'", "\"", "0", "-1", "99999999999999999999", "1e999"].map { Array($0.utf8) }
        let report = Fuzz.run("configuration-kinds", seeds: seeds, dictionary: tokens, iterations: 100, accept: { _ in false }) { input in
            let text = String(decoding: input, as: UTF8.self)
            for configuration in [
                load(main: validMain, policies: ["p.yaml": text, "hub-postgres.yaml": validPostgresPolicy], environment: ["PGPASS": "x"]),
                load(main: validMain, policies: ["hub-postgres.yaml": validPostgresPolicy], runbooks: ["r.yaml": text],
                     environment: ["PGPASS": "x"]),
            ] where configuration.problems.contains(where: { $0.error.message.isEmpty }) {
                throw FuzzProblem("a configuration problem without a message")
            }
        }
        #expect(report.failures.isEmpty, "\(report)")
    }
}

private struct FuzzProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
